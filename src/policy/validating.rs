//! The ValidatingAdmissionPolicies and their bindings, typed with
//! k8s-openapi: the denial of invalid pods (enforce), the notes as a warning
//! (enforce), and the audit-mode warning (`docs/policy.md`).

use k8s_openapi::api::admissionregistration::v1::{
    AuditAnnotation, MatchCondition, MatchResources, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation, Variable,
};

use super::matching::{self, metadata};

/// A policy and the binding that puts it to work.
#[derive(Debug, Clone, PartialEq)]
pub struct Validating {
    /// The policy.
    pub policy: ValidatingAdmissionPolicy,
    /// Its binding, of the same name.
    pub binding: ValidatingAdmissionPolicyBinding,
}

/// The parts that differ from one policy to the next.
pub(super) struct Parts {
    pub name: &'static str,
    pub conditions: Vec<MatchCondition>,
    pub variables: Vec<Variable>,
    pub validations: Vec<Validation>,
    pub audit_annotations: Option<Vec<AuditAnnotation>>,
    /// A policy that only warns must never fail a request.
    pub failure_policy: &'static str,
    pub actions: &'static [&'static str],
    pub selection: MatchResources,
}

pub(super) fn validating(parts: Parts) -> Validating {
    let policy = ValidatingAdmissionPolicy {
        metadata: metadata(parts.name),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some(parts.failure_policy.to_string()),
            match_constraints: Some(matching::pod_creates()),
            match_conditions: Some(parts.conditions),
            variables: Some(parts.variables),
            validations: Some(parts.validations),
            audit_annotations: parts.audit_annotations,
            param_kind: None,
        }),
        status: None,
    };
    let binding = ValidatingAdmissionPolicyBinding {
        metadata: metadata(parts.name),
        spec: ValidatingAdmissionPolicyBindingSpec {
            policy_name: parts.name.to_string(),
            validation_actions: parts.actions.iter().map(|a| a.to_string()).collect(),
            match_resources: Some(parts.selection),
            param_ref: None,
        },
    };
    Validating { policy, binding }
}

/// A validation that fails when `expression` is false, with a computed
/// message.
pub(super) fn validation(expression: &str, message: &str) -> Validation {
    Validation {
        expression: expression.to_string(),
        message_expression: Some(message.to_string()),
        message: None,
        reason: None,
    }
}
