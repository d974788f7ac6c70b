//! The admission layer: AdmissionReview in, AdmissionReview out, without the
//! network (`docs/admission.md`). `serve` and `review` both call
//! [`Admission::review_bytes`], so the command line exercises exactly what the
//! API server gets.
//!
//! - `request`: reading the review, with a fast path for pods through
//!   [`pod_view`] (only the fields the planner reads);
//! - `response`: the answer to a planned pod, by mode;
//! - [`wire`]: the JSON written back, with the patch in base64.

pub mod pod_view;
mod request;
mod response;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, Resource};
use thiserror::Error;

use crate::planner::{Mode, NamespaceDefaults, Settings, plan};

/// Which URL path the API server called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Endpoint {
    /// `/mutate`: enforce (unless `--dry-run`).
    #[value(name = "/mutate")]
    Mutate,
    /// `/audit`: report only.
    #[value(name = "/audit")]
    Audit,
}

impl Endpoint {
    /// Both paths, in the order metrics list them.
    pub const ALL: [Endpoint; 2] = [Endpoint::Audit, Endpoint::Mutate];

    /// The URL path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Mutate => "/mutate",
            Endpoint::Audit => "/audit",
        }
    }
}

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
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl AdmissionError {
    /// Whether the request was at fault (HTTP 400) rather than gracehook (500).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, AdmissionError::Internal { .. })
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

/// Where the admission layer gets a namespace's defaults.
pub trait NamespaceLookup: Send + Sync {
    /// The defaults the namespace's annotations set (none when unknown).
    fn defaults(&self, namespace: &str) -> NamespaceDefaults;
}

/// For tests and `review`: fixed defaults per namespace.
impl NamespaceLookup for HashMap<String, NamespaceDefaults> {
    fn defaults(&self, namespace: &str) -> NamespaceDefaults {
        self.get(namespace).copied().unwrap_or_default()
    }
}

/// A lookup shared by every request.
pub type SharedLookup = Arc<dyn NamespaceLookup>;

/// Answers AdmissionReviews with the planner.
#[derive(Clone)]
pub struct Admission {
    settings: Settings,
    /// Namespace-level defaults, when the server watches namespaces.
    namespaces: Option<SharedLookup>,
}

impl Admission {
    /// An admission layer with `settings` and no namespace defaults.
    pub fn new(settings: Settings) -> Self {
        Admission {
            settings,
            namespaces: None,
        }
    }

    /// Reads namespace-level defaults from `lookup` (precedence: container,
    /// pod, namespace, flags).
    pub fn with_namespaces(mut self, lookup: SharedLookup) -> Self {
        self.namespaces = Some(lookup);
        self
    }

    fn namespace_defaults(&self, namespace: Option<&str>) -> NamespaceDefaults {
        match (&self.namespaces, namespace) {
            (Some(lookup), Some(ns)) => lookup.defaults(ns),
            _ => NamespaceDefaults::default(),
        }
    }

    fn mode_for(&self, endpoint: Endpoint) -> Mode {
        match endpoint {
            Endpoint::Mutate if !self.settings.dry_run => Mode::Enforce,
            _ => Mode::Audit,
        }
    }

    /// Parses and answers one AdmissionReview body.
    pub fn review_bytes(
        &self,
        endpoint: Endpoint,
        body: &[u8],
    ) -> Result<Reviewed, AdmissionError> {
        if let Some(review) = request::parse_pod(body) {
            return self.answer(endpoint, review, request::viewed_pod);
        }
        let review = request::parse_untyped(body)?;
        self.answer(endpoint, review, request::untyped_pod)
    }

    /// Answers a review in place: a Pod is a large struct, and moving it
    /// around costs more than planning it.
    fn answer<K: Resource>(
        &self,
        endpoint: Endpoint,
        mut review: AdmissionReview<K>,
        to_pod: request::ToPod<K>,
    ) -> Result<Reviewed, AdmissionError> {
        let types = review.types;
        let request = review.request.as_mut().ok_or(AdmissionError::NoRequest)?;
        // The response echoes the request's apiVersion and kind.
        request.types = types;
        let response = AdmissionResponse::from(&*request);
        let mut reviewed = request::reviewed(request, self.mode_for(endpoint));
        if !request::is_pod_create(request) {
            reviewed.review = response.into_review();
            return Ok(reviewed);
        }
        let pod = request::pod(request, &reviewed.uid, to_pod)?;
        if reviewed.name.is_empty() {
            reviewed.name = display_name(&pod);
        }
        let namespace = request
            .namespace
            .as_deref()
            .or(pod.metadata.namespace.as_deref());
        reviewed.mode = reviewed.mode.for_pod(&pod);
        let decision = plan(
            &pod,
            namespace,
            &self.settings,
            &self.namespace_defaults(namespace),
        );
        let answered = response::respond(response, decision, reviewed.mode, &reviewed.name);
        let (response, outcome) = answered.map_err(|source| AdmissionError::Internal {
            uid: reviewed.uid.clone(),
            source,
        })?;
        reviewed.review = response.into_review();
        reviewed.outcome = outcome;
        Ok(reviewed)
    }
}

/// The pod's name, or its `generateName` when it has none yet.
fn display_name(pod: &Pod) -> String {
    pod.metadata
        .name
        .clone()
        .or_else(|| pod.metadata.generate_name.clone())
        .unwrap_or_default()
}
