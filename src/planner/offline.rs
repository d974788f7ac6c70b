//! The plan applied offline to manifests: Pods, workloads with a pod template,
//! and `List`s of them, so `gracehook mutate` shows what the webhook would do
//! before anything reaches a cluster. Objects of other kinds pass through.

use json_patch::Patch;
use json_patch::jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use thiserror::Error;

use super::patch::{Target, to_patch};
use super::plan::{Decision, Plan, PlanError, Planned, plan_in};
use super::settings::{Mode, NamespaceDefaults, Settings};
use super::summary;

/// A manifest that cannot be planned.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// Not YAML or JSON.
    #[error("document {document}: not valid YAML or JSON: {message}")]
    Parse {
        /// 1-based position of the document.
        document: usize,
        /// The parser's message.
        message: String,
    },
    /// An invalid annotation, in enforce mode.
    #[error("{object}: {source}")]
    Plan {
        /// `Deployment shop/web`.
        object: String,
        /// Why.
        #[source]
        source: PlanError,
    },
    /// The pod template does not parse as a Pod.
    #[error("{object}: the pod template is not a valid pod: {source}")]
    InvalidPod {
        /// `Deployment shop/web`.
        object: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A bug: the patch did not apply to the document it was made for.
    #[error("{object}: internal error: {message}")]
    Internal {
        /// `Deployment shop/web`.
        object: String,
        /// What failed.
        message: String,
    },
}

/// Splits multi-document YAML (or a JSON document) into objects; empty
/// documents are dropped.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = <Value as serde::Deserialize>::deserialize(document).map_err(|e| {
            ManifestError::Parse {
                document: index + 1,
                message: e.to_string(),
            }
        })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Where the pod template of each kind lives.
fn template_path(api_version: &str, kind: &str) -> Option<&'static [&'static str]> {
    match (api_version, kind) {
        ("v1", "Pod") => Some(&[]),
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch/v1", "Job")
        | ("v1", "ReplicationController") => Some(&["spec", "template"]),
        ("batch/v1", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

/// One pod (or pod template) found in a document.
#[derive(Debug)]
pub struct PodReport {
    /// `Deployment shop/web`, for messages.
    pub object: String,
    /// The mode, after the pod's own `gracehook.io/mode`.
    pub mode: Mode,
    /// In audit mode an invalid pod is reported, not refused.
    pub decision: Result<Decision, PlanError>,
    /// The pod (template) as it was planned.
    pub pod: Pod,
}

impl PodReport {
    /// The plan, when it changes something.
    pub fn plan(&self) -> Option<&Plan> {
        match &self.decision {
            Ok(Decision::Plan(plan)) if !plan.is_noop() => Some(plan),
            _ => None,
        }
    }

    /// The `gracehook audit:` line, or why nothing would change.
    pub fn audit_line(&self) -> String {
        match (&self.decision, self.plan()) {
            (Err(error), _) => summary::audit_invalid(error),
            (_, Some(plan)) => summary::audit_warning(plan),
            (Ok(Decision::Skip(why)), None) => format!("no change ({why})"),
            (Ok(Decision::Plan(_)), None) => "no change (already graceful)".to_string(),
        }
    }
}

/// The outcome for one document.
#[derive(Debug)]
pub struct Mutated {
    /// The document with the enforce-mode patch applied.
    pub object: Value,
    /// The patch against the original document (empty in audit mode).
    pub patch: Patch,
    /// Every pod (template) found in it.
    pub pods: Vec<PodReport>,
}

/// Plans every pod in `document` and applies the patches of pods in enforce mode.
pub fn mutate(
    document: &Value,
    position: usize,
    mode: Mode,
    settings: &Settings,
) -> Result<Mutated, ManifestError> {
    let mut ops = Vec::new();
    let mut pods = Vec::new();
    for location in pod_locations(document, position) {
        let (report, patch) = plan_location(document, &location, mode, settings)?;
        ops.extend(patch.0);
        pods.push(report);
    }
    let patch = Patch(ops);
    let mut object = document.clone();
    json_patch::patch(&mut object, &patch).map_err(|e| ManifestError::Internal {
        object: describe(document, position),
        message: format!("the patch does not apply: {e}"),
    })?;
    Ok(Mutated {
        object,
        patch,
        pods,
    })
}

struct Location {
    pointer: PointerBuf,
    object: String,
    namespace: Option<String>,
}

/// Every pod template in a document, recursing into `List` items.
fn pod_locations(document: &Value, position: usize) -> Vec<Location> {
    let mut found = Vec::new();
    collect(document, PointerBuf::root(), position, &mut found);
    found
}

fn collect(value: &Value, at: PointerBuf, position: usize, found: &mut Vec<Location>) {
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("");
    let kind = text("kind");
    // `List`, and the typed lists `kubectl get -o yaml` can print.
    if kind.ends_with("List") {
        for (i, item) in value
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let mut p = at.clone();
            p.push_back(i);
            collect(item, p, position, found);
        }
        return;
    }
    let Some(path) = template_path(text("apiVersion"), kind) else {
        return;
    };
    let mut pointer = at;
    for token in path {
        pointer.push_back(*token);
    }
    found.push(Location {
        pointer,
        object: describe(value, position),
        namespace: value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
    });
}

fn plan_location(
    document: &Value,
    location: &Location,
    mode: Mode,
    settings: &Settings,
) -> Result<(PodReport, Patch), ManifestError> {
    let object = location.object.clone();
    let template = location
        .pointer
        .resolve(document)
        .ok()
        .cloned()
        .unwrap_or(Value::Null);
    let metadata_present = template.get("metadata").is_some_and(|m| !m.is_null());
    let pod: Pod =
        serde_json::from_value(template).map_err(|source| ManifestError::InvalidPod {
            object: object.clone(),
            source,
        })?;
    let Planned { mode, decision } = plan_in(
        &pod,
        location.namespace.as_deref(),
        settings,
        &NamespaceDefaults::default(),
        mode,
    );
    let patch = match (&decision, mode) {
        (Err(source), Mode::Enforce) => {
            return Err(ManifestError::Plan {
                object,
                source: source.clone(),
            });
        }
        (Ok(Decision::Plan(plan)), Mode::Enforce) => to_patch(
            plan,
            Target {
                root: &location.pointer,
                metadata_present,
            },
        )
        .map_err(|e| ManifestError::Internal {
            object: object.clone(),
            message: e.to_string(),
        })?,
        _ => Patch(Vec::new()),
    };
    Ok((
        PodReport {
            object,
            mode,
            decision,
            pod,
        },
        patch,
    ))
}

/// `Deployment shop/web`, `Pod web`, or `Pod in document 3`.
fn describe(value: &Value, position: usize) -> String {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let name = value.pointer("/metadata/name").and_then(Value::as_str);
    let namespace = value.pointer("/metadata/namespace").and_then(Value::as_str);
    match (namespace, name) {
        (Some(ns), Some(name)) => format!("{kind} {ns}/{name}"),
        (None, Some(name)) => format!("{kind} {name}"),
        _ => format!("{kind} in document {position}"),
    }
}
