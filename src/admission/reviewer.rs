//! [`Admission`]: one AdmissionReview body in, the answer out, by the
//! planner. `serve` and `review` both call [`Admission::review_bytes`], so
//! the command line exercises exactly what the API server gets.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, Resource};

use super::endpoint::Endpoint;
use super::error::AdmissionError;
use super::namespaces::SharedLookup;
use super::request::{self, Asker};
use super::response;
use super::review::{Outcome, Reviewed};
use crate::planner::{Decision, Mode, NamespaceDefaults, Planned, Settings, Skip, plan_in};

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
            return self.answer(endpoint, review, request::VIEWED);
        }
        let review = request::parse_untyped(body)?;
        self.answer(endpoint, review, request::UNTYPED)
    }

    /// Answers a review in place: a Pod is a large struct, and moving it
    /// around costs more than planning it.
    fn answer<K: Resource>(
        &self,
        endpoint: Endpoint,
        mut review: AdmissionReview<K>,
        read: request::Reader<K>,
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
        let count = request.object.as_ref().map_or(0, read.containers);
        let max = self.settings.max_containers;
        let (asker, Planned { mode, decision }) = if count > max {
            // Not even built: a pod of thousands of containers costs tens of
            // MiB as a k8s-openapi Pod.
            let meta = request.object.as_ref().map(Resource::meta);
            let skip = Skip::TooManyContainers { count, max };
            let planned = Planned {
                mode,
                decision: Ok(Decision::Skip(skip)),
            };
            (asker.named_after(meta), planned)
        } else {
            let pod = request::pod(request, &asker.uid, read.to_pod)?;
            let namespace = request
                .namespace
                .as_deref()
                .or(pod.metadata.namespace.as_deref());
            let defaults = self.namespace_defaults(namespace);
            let planned = plan_in(&pod, namespace, &self.settings, &defaults, mode);
            (asker.named_after(Some(&pod.metadata)), planned)
        };
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
    fn named_after(mut self, metadata: Option<&ObjectMeta>) -> Asker {
        if let Some(m) = metadata.filter(|_| self.name.is_empty()) {
            self.name = m
                .name
                .clone()
                .or_else(|| m.generate_name.clone())
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
