//! Which requests the policies see: the CREATE of pods, in the namespaces
//! that opt in by label and are not excluded, minus the pods gracehook
//! leaves alone — as the webhook configuration and `plan::skip_reason`
//! select them (`docs/admission.md`, "Opting in").

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, NamedRuleWithOperations,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

use super::cel;
use crate::planner::Settings;
use crate::planner::annotations as ann;

/// The label a namespace opts in with (`gracehook.io/mode`).
pub const NAMESPACE_LABEL: &str = ann::MODE;
/// The label every namespace carries with its name.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The objects' metadata: a name and the labels that find them all
/// (`kubectl delete ... -l app.kubernetes.io/component=policy`).
pub fn metadata(name: &str) -> ObjectMeta {
    let labels = [
        ("app.kubernetes.io/name", "gracehook"),
        ("app.kubernetes.io/part-of", "gracehook"),
        ("app.kubernetes.io/component", "policy"),
    ];
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

/// The policies' constraints: the CREATE of a pod, subresources excluded.
pub fn pod_creates() -> MatchResources {
    MatchResources {
        resource_rules: Some(vec![NamedRuleWithOperations {
            api_groups: Some(vec![String::new()]),
            api_versions: Some(vec!["v1".to_string()]),
            operations: Some(vec!["CREATE".to_string()]),
            resources: Some(vec!["pods".to_string()]),
            scope: Some("Namespaced".to_string()),
            ..Default::default()
        }]),
        match_policy: Some("Equivalent".to_string()),
        ..Default::default()
    }
}

/// A binding's selection: namespaces labelled with one of `modes`, minus
/// `--exclude-namespaces`, minus pods labelled `gracehook.io/inject: "false"`.
pub fn namespaces(modes: &[&str], settings: &Settings) -> MatchResources {
    let requirement = |key: &str, operator: &str, values: Vec<String>| LabelSelectorRequirement {
        key: key.to_string(),
        operator: operator.to_string(),
        values: Some(values),
    };
    let mut expressions = vec![requirement(
        NAMESPACE_LABEL,
        "In",
        modes.iter().map(|m| m.to_string()).collect(),
    )];
    // NotIn needs at least one value.
    if !settings.exclude_namespaces.is_empty() {
        let excluded = settings.exclude_namespaces.iter().cloned().collect();
        expressions.push(requirement(NAME_LABEL, "NotIn", excluded));
    }
    MatchResources {
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(expressions),
            match_labels: None,
        }),
        object_selector: Some(LabelSelector {
            match_expressions: Some(vec![requirement(
                ann::INJECT,
                "NotIn",
                vec!["false".to_string()],
            )]),
            match_labels: None,
        }),
        ..Default::default()
    }
}

fn condition(name: &str, expression: String) -> MatchCondition {
    MatchCondition {
        name: name.to_string(),
        expression,
    }
}

/// `object.metadata.annotations[key]`, trimmed, or ''.
fn pod_annotation(key: &str) -> String {
    format!(
        "object.metadata.?annotations[?{}].orValue('').trim()",
        cel::string(key)
    )
}

/// The pods gracehook leaves alone whatever its mode: mirror pods, and pods
/// opted out with the annotation `gracehook.io/inject: "false"`.
pub fn handled(settings: &Settings) -> Vec<MatchCondition> {
    vec![
        condition(
            "not-a-mirror-pod",
            format!(
                "!({} in object.metadata.?annotations.orValue({{}}))",
                cel::string(ann::MIRROR)
            ),
        ),
        condition(
            "not-opted-out",
            format!("{} != 'false'", pod_annotation(ann::INJECT)),
        ),
        // Skip::TooManyContainers, without the webhook's warning.
        condition(
            "not-too-many-containers",
            format!(
                "size(object.spec.containers) <= {}",
                i64::try_from(settings.max_containers).unwrap_or(i64::MAX)
            ),
        ),
    ]
}

/// Enforce mode, unless the pod downgrades itself with
/// `gracehook.io/mode: audit`.
pub fn enforced(settings: &Settings) -> Vec<MatchCondition> {
    let mut conditions = handled(settings);
    conditions.push(condition(
        "not-downgraded-to-audit",
        format!("{} != 'audit'", pod_annotation(ann::MODE)),
    ));
    conditions
}

/// Audit mode: a namespace labelled audit, or a pod that downgrades itself.
/// A CEL variable, not a match condition: match conditions do not see the
/// Namespace.
pub fn audited() -> String {
    format!(
        "namespaceObject.metadata.?labels[?{}].orValue('') == 'audit' || {} == 'audit'",
        cel::string(NAMESPACE_LABEL),
        pod_annotation(ann::MODE)
    )
}
