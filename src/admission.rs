//! AdmissionReview in, AdmissionReview out: the webhook's behaviour without the
//! network. `serve` and `review` both call [`Admission::review`], so the
//! command line exercises exactly what the API server gets.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::core::admission::{AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::Status;
use kube::core::{DynamicObject, Resource};
use thiserror::Error;

use crate::namespaces::SharedLookup;
use crate::patch::{Target, to_patch};
use crate::plan::{Decision, plan};
use crate::settings::{Mode, NamespaceDefaults, Settings};
use crate::summary;

/// Which URL path the API server called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Mutate,
    Audit,
}

impl Endpoint {
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
    Patched,
    /// Audit mode: would have changed the pod.
    Audited,
    /// Enforce mode: invalid annotations.
    Denied,
    /// Audit mode: invalid annotations, reported as a warning.
    Invalid,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ignored,
        Outcome::Skipped,
        Outcome::Unchanged,
        Outcome::Patched,
        Outcome::Audited,
        Outcome::Denied,
        Outcome::Invalid,
    ];

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
    #[error("malformed AdmissionReview: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("request {uid}: a CREATE of a pod must carry the object")]
    NoObject { uid: String },
    #[error("request {uid}: the object is not a valid Pod: {source}")]
    InvalidPod {
        uid: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("request {uid}: internal error: {source}")]
    Internal {
        uid: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl AdmissionError {
    pub fn is_client_error(&self) -> bool {
        !matches!(self, AdmissionError::Internal { .. })
    }
}

/// A review and what the logs and metrics need to know about it.
#[derive(Debug)]
pub struct Reviewed {
    pub review: AdmissionReview<DynamicObject>,
    pub outcome: Outcome,
    pub mode: Mode,
    pub uid: String,
    pub namespace: String,
    /// The pod's name, or its `generateName` (pods of a ReplicaSet have no name yet).
    pub name: String,
}

#[derive(Clone)]
pub struct Admission {
    settings: Settings,
    /// Namespace-level defaults, when the server watches namespaces.
    namespaces: Option<SharedLookup>,
}

impl Admission {
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

    /// Parses and answers one AdmissionReview body.
    /// Parses and answers one AdmissionReview body.
    pub fn review_bytes(
        &self,
        endpoint: Endpoint,
        body: &[u8],
    ) -> Result<Reviewed, AdmissionError> {
        // The common case, a pod, is parsed straight into k8s-openapi's Pod in
        // one pass. Anything else (another kind, a pod that does not parse)
        // takes the untyped path, which decides between "not ours" and 400.
        if let Ok(review) = serde_json::from_slice::<AdmissionReview<Pod>>(body) {
            return self.answer(endpoint, review, |pod| Ok(Cow::Borrowed(pod)));
        }
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_slice(body).map_err(AdmissionError::Malformed)?;
        self.answer(endpoint, review, |object| into_pod(object).map(Cow::Owned))
    }

    /// Answers a review in place: a Pod is a large struct, and moving it
    /// around costs more than planning it.
    fn answer<K: Resource>(
        &self,
        endpoint: Endpoint,
        mut review: AdmissionReview<K>,
        to_pod: impl FnOnce(&K) -> Result<Cow<'_, Pod>, serde_json::Error>,
    ) -> Result<Reviewed, AdmissionError> {
        let types = review.types;
        let request = review.request.as_mut().ok_or(AdmissionError::NoRequest)?;
        // The response echoes the request's apiVersion and kind.
        request.types = types;
        let response = AdmissionResponse::from(&*request);
        let mode = match endpoint {
            Endpoint::Mutate if !self.settings.dry_run => Mode::Enforce,
            _ => Mode::Audit,
        };
        let mut reviewed = Reviewed {
            review: AdmissionReview {
                types: Default::default(),
                request: None,
                response: None,
            },
            outcome: Outcome::Ignored,
            mode,
            uid: std::mem::take(&mut request.uid),
            namespace: request.namespace.clone().unwrap_or_default(),
            name: std::mem::take(&mut request.name),
        };

        let is_pod_create = request.operation == Operation::Create
            && request.resource.group.is_empty()
            && request.resource.resource == "pods"
            && request.sub_resource.as_deref().unwrap_or("").is_empty();
        if !is_pod_create {
            reviewed.review = response.into_review();
            return Ok(reviewed);
        }
        let uid = &reviewed.uid;
        let object = request
            .object
            .as_ref()
            .ok_or_else(|| AdmissionError::NoObject { uid: uid.clone() })?;
        let pod = to_pod(object).map_err(|source| AdmissionError::InvalidPod {
            uid: uid.clone(),
            source,
        })?;
        if reviewed.name.is_empty() {
            reviewed.name = pod
                .metadata
                .name
                .clone()
                .or_else(|| pod.metadata.generate_name.clone())
                .unwrap_or_default();
        }
        let namespace = request
            .namespace
            .as_deref()
            .or(pod.metadata.namespace.as_deref());
        reviewed.mode = mode.for_pod(&pod);

        let (response, outcome) = self.respond(
            response,
            &pod,
            namespace,
            reviewed.mode,
            &reviewed.name,
            uid,
            &self.namespace_defaults(namespace),
        )?;
        reviewed.review = response.into_review();
        reviewed.outcome = outcome;
        Ok(reviewed)
    }

    #[allow(clippy::too_many_arguments)]
    fn respond(
        &self,
        response: AdmissionResponse,
        pod: &Pod,
        namespace: Option<&str>,
        mode: Mode,
        name: &str,
        uid: &str,
        namespace_defaults: &NamespaceDefaults,
    ) -> Result<(AdmissionResponse, Outcome), AdmissionError> {
        let internal =
            |source: Box<dyn std::error::Error + Send + Sync>| AdmissionError::Internal {
                uid: uid.to_string(),
                source,
            };
        Ok(
            match plan(pod, namespace, &self.settings, namespace_defaults) {
                Err(error) => match mode {
                    Mode::Enforce => {
                        let message = format!("gracehook: pod {name}: {error}");
                        let mut denied = response.deny(&message);
                        denied.result = Status::failure(&message, "BadRequest").with_code(400);
                        (denied, Outcome::Denied)
                    }
                    Mode::Audit => {
                        let mut warned = response;
                        warned.warnings = Some(vec![summary::audit_invalid(&error)]);
                        (warned, Outcome::Invalid)
                    }
                },
                Ok(Decision::Skip(_)) => (response, Outcome::Skipped),
                Ok(Decision::Plan(plan)) if plan.is_noop() => (response, Outcome::Unchanged),
                Ok(Decision::Plan(plan)) => {
                    let patch = to_patch(&plan, Target::POD).map_err(|e| internal(e.into()))?;
                    match mode {
                        Mode::Enforce => {
                            let warnings = summary::enforce_warnings(&plan);
                            let mut patched =
                                response.with_patch(patch).map_err(|e| internal(e.into()))?;
                            if !warnings.is_empty() {
                                patched.warnings = Some(warnings);
                            }
                            (patched, Outcome::Patched)
                        }
                        Mode::Audit => {
                            let warning = summary::audit_warning(&plan);
                            let mut audited = response;
                            audited.audit_annotations = HashMap::from([
                                ("patch".to_string(), patch_json(&patch)),
                                ("summary".to_string(), summary::would_change(&plan)),
                            ]);
                            audited.warnings = Some(vec![warning]);
                            (audited, Outcome::Audited)
                        }
                    }
                }
            },
        )
    }
}

fn patch_json(patch: &json_patch::Patch) -> String {
    serde_json::to_string(patch).unwrap_or_else(|e| format!("unserialisable patch: {e}"))
}

/// The slow path: a pod that did not parse as a typed Pod at first, converted
/// again to find out why.
fn into_pod(object: &DynamicObject) -> Result<Pod, serde_json::Error> {
    let spec = match object.data.get("spec") {
        None | Some(serde_json::Value::Null) => None,
        Some(spec) => Some(PodSpec::deserialize(spec)?),
    };
    Ok(Pod {
        metadata: object.metadata.clone(),
        spec,
        status: None,
    })
}
