//! A review answered, and what the logs and metrics need to know about it.

use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;

use crate::planner::Mode;

/// How one admission ended; the `outcome` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not a pod CREATE: allowed untouched.
    Ignored,
    /// A pod gracehook must not touch (mirror, excluded namespace, opted out).
    Skipped,
    /// Nothing to change (already patched).
    Unchanged,
    /// Enforce mode: patched.
    Patched,
    /// Audit mode: would have changed the pod.
    Audited,
    /// Enforce mode: invalid annotations.
    Denied,
    /// Audit mode: invalid annotations, reported as a warning.
    Invalid,
}

impl Outcome {
    /// Every outcome of a review that was answered.
    pub const ALL: [Outcome; 7] = [
        Outcome::Ignored,
        Outcome::Skipped,
        Outcome::Unchanged,
        Outcome::Patched,
        Outcome::Audited,
        Outcome::Denied,
        Outcome::Invalid,
    ];

    /// The metric label and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ignored => "ignored",
            Outcome::Skipped => "skipped",
            Outcome::Unchanged => "unchanged",
            Outcome::Patched => "patched",
            Outcome::Audited => "audited",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
        }
    }
}

/// A review and what the logs and metrics need to know about it.
#[derive(Debug)]
pub struct Reviewed {
    /// The answer.
    pub review: AdmissionReview<DynamicObject>,
    /// How it ended.
    pub outcome: Outcome,
    /// The mode applied, after the pod's own `gracehook.io/mode`.
    pub mode: Mode,
    /// The request's uid.
    pub uid: String,
    /// The namespace of the request.
    pub namespace: String,
    /// The pod's name, or its `generateName` (pods of a ReplicaSet have no name yet).
    pub name: String,
}
