//! Turns a [`Plan`] into an RFC 6902 JSON patch the API server will accept
//! (`docs/plan.md`, "The patch"):
//! `add` where a path is new (creating `annotations` or `lifecycle` when absent,
//! never clobbering a sibling such as `postStart`), `replace` only where the
//! path exists, and keys escaped as JSON pointers (`gracehook.io~1status`).

use json_patch::jsonptr::{Pointer, PointerBuf};
use json_patch::{AddOperation, Patch, PatchOperation, ReplaceOperation};
use serde_json::{Value, json};
use thiserror::Error;

use super::annotations as ann;
use super::plan::Plan;

/// The patch could not be built (a hook that does not serialise).
#[derive(Debug, Error)]
#[error("could not serialise the preStop hook: {0}")]
pub struct PatchError(#[from] serde_json::Error);

/// Where the pod lives in the patched document: the root for a Pod,
/// `/spec/template` for a Deployment.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Where the pod (template) starts.
    pub root: &'a Pointer,
    /// A pod template may omit `metadata` altogether.
    pub metadata_present: bool,
}

impl Target<'static> {
    /// A Pod as the API server sends it: at the root, with metadata.
    pub const POD: Target<'static> = Target {
        root: Pointer::root(),
        metadata_present: true,
    };
}

/// The patch that applies `plan` to the pod at `target`.
pub fn to_patch(plan: &Plan, target: Target<'_>) -> Result<Patch, PatchError> {
    let mut ops = Vec::new();
    let at = |tokens: &[&str]| {
        let mut p = target.root.to_buf();
        for t in tokens {
            p.push_back(*t);
        }
        p
    };

    for (container, hook) in plan.added_hooks() {
        let index = container.index.to_string();
        let handler = serde_json::to_value(hook.handler())?;
        ops.push(if container.lifecycle_present {
            add(
                at(&["spec", "containers", &index, "lifecycle", "preStop"]),
                handler,
            )
        } else {
            add(
                at(&["spec", "containers", &index, "lifecycle"]),
                json!({ "preStop": handler }),
            )
        });
    }

    if let Some(grace) = plan.new_grace() {
        let path = at(&["spec", "terminationGracePeriodSeconds"]);
        ops.push(if plan.current_grace.is_some() {
            replace(path, grace.into())
        } else {
            add(path, grace.into())
        });
    }

    if plan.status_changes() {
        let status = Value::String(plan.status.clone());
        ops.push(if !target.metadata_present {
            add(
                at(&["metadata"]),
                json!({ "annotations": { (ann::STATUS): status } }),
            )
        } else if !plan.annotations_present {
            add(
                at(&["metadata", "annotations"]),
                json!({ (ann::STATUS): status }),
            )
        } else if plan.current_status.is_some() {
            replace(at(&["metadata", "annotations", ann::STATUS]), status)
        } else {
            add(at(&["metadata", "annotations", ann::STATUS]), status)
        });
    }
    Ok(Patch(ops))
}

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}

fn replace(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation { path, value })
}
