//! The policies for a set of [`Options`]: the variables they share, then
//! each policy and its binding.

use k8s_openapi::api::admissionregistration::v1::{AuditAnnotation, Variable};
use serde_json::Value;

use super::matching;
use super::mutating::{self, Mutating};
use super::options::Options;
use super::validating::{self, Parts, Validating, validation};
use super::{decisions, inputs, problems, sentences, sidecars};
use crate::planner::Mode;

/// The MutatingAdmissionPolicy, and the ValidatingAdmissionPolicy that
/// denies invalid pods: the webhook's `enforce.gracehook.io`.
pub const ENFORCE: &str = "enforce.gracehook.io";
/// The ValidatingAdmissionPolicy that warns the enforce-mode notes.
pub const NOTES: &str = "notes.gracehook.io";
/// The ValidatingAdmissionPolicy of audit mode; its audit annotation is
/// `audit.gracehook.io/summary`, as the webhook's.
pub const AUDIT: &str = "audit.gracehook.io";

/// The generated objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    /// The MutatingAdmissionPolicy (none in audit mode).
    pub mutating: Option<Mutating>,
    /// The ValidatingAdmissionPolicies, each with its binding.
    pub validating: Vec<Validating>,
}

impl Policies {
    /// Every object, policies before their bindings, as JSON.
    pub fn documents(&self) -> Result<Vec<Value>, serde_json::Error> {
        let mut documents = Vec::new();
        if let Some(m) = &self.mutating {
            documents.push(serde_json::to_value(&m.policy)?);
            documents.push(serde_json::to_value(&m.binding)?);
        }
        for v in &self.validating {
            documents.push(serde_json::to_value(&v.policy)?);
            documents.push(serde_json::to_value(&v.binding)?);
        }
        Ok(documents)
    }
}

/// The variables every policy needs: the pod read, the plan, the problem.
fn core(options: &Options) -> Vec<Variable> {
    let mut variables = inputs::pod(options);
    variables.push(problems::pod());
    variables.extend(inputs::selection(options));
    variables.push(problems::containers());
    variables.push(inputs::eligible());
    variables.extend(decisions::hooks(options));
    variables.extend(sidecars::variables(options));
    variables.push(sidecars::problems(options));
    variables.extend(decisions::grace());
    variables.extend(decisions::outcome());
    variables.extend(problems::grace(options));
    variables
}

/// The policies for `options`.
pub fn generate(options: &Options) -> Policies {
    let core = core(options);
    let audit = audit(options, &core);
    if options.audit_only() {
        return Policies {
            mutating: None,
            validating: vec![audit],
        };
    }
    let selection = matching::namespaces(&[Mode::Enforce.as_str()], &options.settings);
    let mutating = mutating::mutating(
        ENFORCE,
        &matching::enforced(&options.settings),
        &core,
        &selection,
    );
    let deny = validating::validating(Parts {
        name: ENFORCE,
        conditions: matching::enforced(&options.settings),
        variables: core.clone(),
        validations: vec![validation(
            "variables.problem == ''",
            "'gracehook: pod ' + variables.name + ': ' + variables.problem",
        )],
        audit_annotations: None,
        failure_policy: "Fail",
        actions: &["Deny"],
        selection: selection.clone(),
    });
    let mut notes_variables = core;
    notes_variables.push(sentences::notes(true));
    notes_variables.extend(sentences::enforce_notes());
    let notes = validating::validating(Parts {
        name: NOTES,
        conditions: matching::enforced(&options.settings),
        variables: notes_variables,
        validations: vec![validation(
            "variables.problem != '' || size(variables.plan) == 0 || size(variables.notes) == 0",
            "variables.notesWarning",
        )],
        audit_annotations: None,
        failure_policy: "Ignore",
        actions: &["Warn"],
        selection,
    });
    Policies {
        mutating: Some(mutating),
        validating: vec![deny, notes, audit],
    }
}

/// The audit-mode policy: one warning per pod that would change or is
/// invalid, and the sentence in the audit log.
fn audit(options: &Options, core: &[Variable]) -> Validating {
    let mut variables = core.to_vec();
    variables.push(sentences::notes(false));
    variables.extend(sentences::would_change());
    variables.extend(sentences::audit_warning());
    // Enforce namespaces too: their pods may downgrade themselves, and in
    // audit-only mode every labelled namespace is audited.
    let modes = [Mode::Audit.as_str(), Mode::Enforce.as_str()];
    let audited = if options.audit_only() {
        "true".to_string()
    } else {
        matching::audited()
    };
    variables.push(inputs::var("audited", audited));
    let would = "variables.problem == '' && size(variables.plan) > 0 && variables.changes";
    validating::validating(Parts {
        name: AUDIT,
        conditions: matching::handled(&options.settings),
        variables,
        validations: vec![validation(
            &format!("!variables.audited || variables.problem == '' && !({would})"),
            "variables.auditWarning",
        )],
        audit_annotations: Some(vec![AuditAnnotation {
            key: "summary".to_string(),
            value_expression: format!(
                "variables.audited && {would} ? string(variables.wouldChange) : ''"
            ),
        }]),
        failure_policy: "Ignore",
        actions: &["Warn", "Audit"],
        selection: matching::namespaces(&modes, &options.settings),
    })
}

/// The documents as YAML, `---` between them, for `kubectl apply -f -`.
pub fn to_yaml(documents: &[Value]) -> Result<String, serde_yaml_ng::Error> {
    let mut text = String::new();
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&serde_yaml_ng::to_string(document)?);
    }
    Ok(text)
}
