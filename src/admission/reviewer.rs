//! [`Admission`]: one AdmissionReview body in, the answer out, by the
//! planner. `serve` and `review` both call [`Admission::review_bytes`], so
//! the command line exercises exactly what the API server gets.

use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, Resource};

use super::endpoint::Endpoint;
use super::error::AdmissionError;
use super::namespaces::SharedLookup;
use super::request::{self, Asker};
use super::response;
use super::review::{Outcome, Reviewed};
use crate::planner::{Mode, NamespaceDefaults, Planned, Settings, plan_in};

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
        let asker = Asker::take(request);
        let mode = self.mode_for(endpoint);
        if !request::is_pod_create(request) {
            return Ok(asker.reviewed(response.into_review(), Outcome::Ignored, mode));
        }
        let pod = request::pod(request, &asker.uid, to_pod)?;
        let namespace = request
            .namespace
            .as_deref()
            .or(pod.metadata.namespace.as_deref());
        let Planned { mode, decision } = plan_in(
            &pod,
            namespace,
            &self.settings,
            &self.namespace_defaults(namespace),
            mode,
        );
        let asker = asker.named_after(&pod);
        let answered = response::respond(response, decision, mode, &asker.name);
        let (response, outcome) = answered.map_err(|source| AdmissionError::Internal {
            uid: asker.uid.clone(),
            source,
        })?;
        Ok(asker.reviewed(response.into_review(), outcome, mode))
    }
}

impl Asker {
    /// Pods of a ReplicaSet have no name yet: their `generateName` stands in.
    fn named_after(mut self, pod: &Pod) -> Asker {
        if self.name.is_empty() {
            self.name = pod
                .metadata
                .name
                .clone()
                .or_else(|| pod.metadata.generate_name.clone())
                .unwrap_or_default();
        }
        self
    }

    fn reviewed(
        self,
        review: AdmissionReview<DynamicObject>,
        outcome: Outcome,
        mode: Mode,
    ) -> Reviewed {
        Reviewed {
            review,
            outcome,
            mode,
            uid: self.uid,
            namespace: self.namespace,
            name: self.name,
        }
    }
}
