//! The MutatingAdmissionPolicy and its binding.
//!
//! `admissionregistration.k8s.io/v1` MutatingAdmissionPolicy is GA since
//! Kubernetes 1.36, which is why the crate builds k8s-openapi with `v1_36`.

use k8s_openapi::api::admissionregistration::v1::{
    JSONPatch, MatchCondition, MatchResources, MutatingAdmissionPolicy,
    MutatingAdmissionPolicyBinding, MutatingAdmissionPolicyBindingSpec,
    MutatingAdmissionPolicySpec, Mutation, Variable,
};

use super::matching::{self, metadata};

/// A MutatingAdmissionPolicy and its binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutating {
    /// The MutatingAdmissionPolicy.
    pub policy: MutatingAdmissionPolicy,
    /// The MutatingAdmissionPolicyBinding, of the same name.
    pub binding: MutatingAdmissionPolicyBinding,
}

/// The JSON patch, op for op as `planner::patch::to_patch` writes it:
/// each new hook (adding `lifecycle` when absent, so a `postStart` is
/// kept), the grace period when set or raised, and the status record.
/// A JSON patch rather than an apply configuration: the API server refuses
/// an apply configuration that sets an atomic list, and `exec.command` is
/// one.
fn json_patch() -> String {
    let pre_stop = "Object.spec.containers.lifecycle.preStop";
    let hook = format!(
        "(p.hook == 'sleep' ? {pre_stop}{{sleep: {pre_stop}.sleep{{seconds: int(p.delay)}}}} : {pre_stop}{{exec: {pre_stop}.exec{{command: p.argv.map(a, string(a))}}}})"
    );
    let container = "'/spec/containers/' + string(p.index) + '/lifecycle'";
    let hooks = format!(
        "variables.adds.map(p, p.lifecycle ? JSONPatch{{op: 'add', path: {container} + '/preStop', value: {hook}}} : JSONPatch{{op: 'add', path: {container}, value: Object.spec.containers.lifecycle{{preStop: {hook}}}}})"
    );
    let current = "object.spec.terminationGracePeriodSeconds";
    let grace = format!(
        "(variables.raise ? [JSONPatch{{op: has({current}) ? 'replace' : 'add', path: '/spec/terminationGracePeriodSeconds', value: variables.required}}] : [])"
    );
    let key = super::cel::string(crate::planner::annotations::STATUS);
    let status = format!(
        "(variables.statusChanges ? [!has(object.metadata.annotations) ? JSONPatch{{op: 'add', path: '/metadata/annotations', value: {{{key}: variables.status}}}} : JSONPatch{{op: {key} in object.metadata.annotations ? 'replace' : 'add', path: '/metadata/annotations/' + jsonpatch.escapeKey({key}), value: variables.status}}] : [])"
    );
    format!(
        "variables.problem != '' || size(variables.plan) == 0 ? [] : {hooks} + {grace} + {status}"
    )
}

/// The policy, bound to the namespaces in `selection`.
pub(super) fn mutating(
    name: &str,
    conditions: &[MatchCondition],
    variables: &[Variable],
    selection: &MatchResources,
) -> Mutating {
    let policy = MutatingAdmissionPolicy {
        metadata: metadata(name),
        spec: Some(MutatingAdmissionPolicySpec {
            // As the webhook's failurePolicy: gracehook never blocks a pod.
            failure_policy: Some("Ignore".to_string()),
            // Run again if a later mutation (a sidecar injector) adds containers.
            reinvocation_policy: Some("IfNeeded".to_string()),
            match_constraints: Some(matching::pod_creates()),
            match_conditions: Some(conditions.to_vec()),
            variables: Some(variables.to_vec()),
            mutations: Some(vec![Mutation {
                patch_type: "JSONPatch".to_string(),
                json_patch: Some(JSONPatch {
                    expression: Some(json_patch()),
                }),
                apply_configuration: None,
            }]),
            param_kind: None,
        }),
    };
    let binding = MutatingAdmissionPolicyBinding {
        metadata: metadata(name),
        spec: Some(MutatingAdmissionPolicyBindingSpec {
            policy_name: Some(name.to_string()),
            match_resources: Some(selection.clone()),
            param_ref: None,
        }),
    };
    Mutating { policy, binding }
}
