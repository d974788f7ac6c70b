//! The answer to a planned pod, by mode (`docs/admission.md`): enforce patches
//! and warns, audit warns and records the would-be patch in audit
//! annotations, and an invalid annotation denies (enforce) or warns (audit).

use std::collections::HashMap;

use kube::core::admission::AdmissionResponse;
use kube::core::response::Status;

use super::error::AnswerError;
use super::review::Outcome;
use crate::planner::patch::{Target, to_patch};
use crate::planner::{Decision, Mode, Plan, PlanError, summary};

/// Answers the planner's `decision` for the pod `name` in `mode`.
pub(super) fn respond(
    response: AdmissionResponse,
    decision: Result<Decision, PlanError>,
    mode: Mode,
    name: &str,
) -> Result<(AdmissionResponse, Outcome), AnswerError> {
    Ok(match decision {
        Err(error) => invalid(response, &error, mode, name),
        Ok(Decision::Skip(skip)) => {
            let mut skipped = response;
            skipped.warnings = summary::skip_warning(&skip, name).map(|w| vec![w]);
            (skipped, Outcome::Skipped)
        }
        Ok(Decision::Plan(plan)) if plan.is_noop() => (response, Outcome::Unchanged),
        Ok(Decision::Plan(plan)) => match mode {
            Mode::Enforce => (patched(response, &plan)?, Outcome::Patched),
            Mode::Audit => (audited(response, &plan)?, Outcome::Audited),
        },
    })
}

fn invalid(
    response: AdmissionResponse,
    error: &PlanError,
    mode: Mode,
    name: &str,
) -> (AdmissionResponse, Outcome) {
    match mode {
        Mode::Enforce => {
            let message = format!("gracehook: pod {name}: {error}");
            let mut denied = response.deny(&message);
            denied.result = Status::failure(&message, "BadRequest").with_code(400);
            (denied, Outcome::Denied)
        }
        Mode::Audit => {
            let mut warned = response;
            warned.warnings = Some(vec![summary::audit_invalid(error)]);
            (warned, Outcome::Invalid)
        }
    }
}

fn patched(response: AdmissionResponse, plan: &Plan) -> Result<AdmissionResponse, AnswerError> {
    let patch = to_patch(plan, Target::POD)?;
    let warnings = summary::enforce_warnings(plan);
    let mut patched = response.with_patch(patch)?;
    if !warnings.is_empty() {
        patched.warnings = Some(warnings);
    }
    Ok(patched)
}

fn audited(response: AdmissionResponse, plan: &Plan) -> Result<AdmissionResponse, AnswerError> {
    let patch = to_patch(plan, Target::POD)?;
    let mut audited = response;
    audited.audit_annotations = HashMap::from([
        (
            "patch".to_string(),
            serde_json::to_string(&patch).map_err(AnswerError::AuditAnnotation)?,
        ),
        ("summary".to_string(), summary::would_change(plan)),
    ]);
    audited.warnings = Some(vec![summary::audit_warning(plan)]);
    Ok(audited)
}
