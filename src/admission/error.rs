//! Why a review could not be answered: the request's fault (HTTP 400) or
//! gracehook's (500, and so the webhook's `failurePolicy`).

use kube::core::admission::SerializePatchError;
use thiserror::Error;

use crate::planner::patch::PatchError;

/// A failed review. Client errors map to HTTP 400, the rest to 500 (and so to
/// the webhook's `failurePolicy`).
#[derive(Debug, Error)]
pub enum AdmissionError {
    /// The body is not an AdmissionReview.
    #[error("malformed AdmissionReview: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A review without a request.
    #[error("the AdmissionReview has no request")]
    NoRequest,
    /// A pod CREATE without the pod.
    #[error("request {uid}: a CREATE of a pod must carry the object")]
    NoObject {
        /// The request's uid.
        uid: String,
    },
    /// The object does not parse as a Pod.
    #[error("request {uid}: the object is not a valid Pod: {source}")]
    InvalidPod {
        /// The request's uid.
        uid: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A bug: the answer could not be built.
    #[error("request {uid}: internal error: {source}")]
    Internal {
        /// The request's uid.
        uid: String,
        /// What failed.
        #[source]
        source: AnswerError,
    },
}

impl AdmissionError {
    /// Whether the request was at fault (HTTP 400) rather than gracehook (500).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, AdmissionError::Internal { .. })
    }
}

/// A plan that could not be written into the answer: a bug.
#[derive(Debug, Error)]
pub enum AnswerError {
    /// The plan did not become a JSON patch.
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// The JSON patch did not serialise into the response.
    #[error(transparent)]
    SerializePatch(#[from] SerializePatchError),
    /// The would-be patch did not serialise into the audit annotation.
    #[error("serialising the audit annotation: {0}")]
    AuditAnnotation(#[source] serde_json::Error),
}
