//! Reading an AdmissionReview: the common case, a pod, is parsed in one pass
//! into a [`PodView`] (only what the planner reads); anything else (another
//! kind, a pod that does not parse) takes the untyped path, which decides
//! between "not ours" and a 400.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::core::admission::{AdmissionRequest, AdmissionReview, Operation};
use kube::core::{DynamicObject, Resource};
use serde::Deserialize;

use super::error::AdmissionError;
use super::pod_view::PodView;

/// The fast path: a review of a pod that parses as one.
pub(super) fn parse_pod(body: &[u8]) -> Option<AdmissionReview<PodView>> {
    serde_json::from_slice(body).ok()
}

/// Any other review, or why the body is not one.
pub(super) fn parse_untyped(body: &[u8]) -> Result<AdmissionReview<DynamicObject>, AdmissionError> {
    serde_json::from_slice(body).map_err(AdmissionError::Malformed)
}

/// How the request's object becomes a Pod.
pub(super) type ToPod<K> = fn(K) -> Result<Pod, serde_json::Error>;

/// How a request's object of type `K` is read.
pub(super) struct Reader<K> {
    pub to_pod: ToPod<K>,
    pub containers: CountContainers<K>,
}

/// The fast path's object.
pub(super) const VIEWED: Reader<PodView> = Reader {
    to_pod: viewed_pod,
    containers: viewed_containers,
};

/// The slow path's object.
pub(super) const UNTYPED: Reader<DynamicObject> = Reader {
    to_pod: untyped_pod,
    containers: untyped_containers,
};

fn viewed_pod(view: PodView) -> Result<Pod, serde_json::Error> {
    Ok(view.into_pod())
}

/// How many containers the request's object has, counted before it becomes
/// a Pod: a pod of thousands is not planned, and not built either.
pub(super) type CountContainers<K> = fn(&K) -> usize;

fn viewed_containers(view: &PodView) -> usize {
    view.container_count()
}

fn untyped_containers(object: &DynamicObject) -> usize {
    object
        .data
        .pointer("/spec/containers")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len)
}

/// The slow path: a pod that did not parse as a view, converted again to
/// find out why.
fn untyped_pod(object: DynamicObject) -> Result<Pod, serde_json::Error> {
    let spec = match object.data.get("spec") {
        None | Some(serde_json::Value::Null) => None,
        Some(spec) => Some(PodSpec::deserialize(spec)?),
    };
    Ok(Pod {
        metadata: object.metadata,
        spec,
        status: None,
    })
}

/// Who asked about what, taken out of the request before it is answered.
pub(super) struct Asker {
    /// The request's uid.
    pub uid: String,
    /// The namespace of the request.
    pub namespace: String,
    /// The object's name; empty for pods of a ReplicaSet, named later.
    pub name: String,
}

impl Asker {
    pub(super) fn take<K: Resource>(request: &mut AdmissionRequest<K>) -> Asker {
        Asker {
            uid: std::mem::take(&mut request.uid),
            namespace: request.namespace.clone().unwrap_or_default(),
            name: std::mem::take(&mut request.name),
        }
    }
}

/// Only the CREATE of a pod itself is planned; subresources such as
/// `pods/binding` and every other operation are allowed untouched.
pub(super) fn is_pod_create<K: Resource>(request: &AdmissionRequest<K>) -> bool {
    request.operation == Operation::Create
        && request.resource.group.is_empty()
        && request.resource.resource == "pods"
        && request.sub_resource.as_deref().unwrap_or("").is_empty()
}

/// The pod of a pod CREATE, taken out of the request.
pub(super) fn pod<K: Resource>(
    request: &mut AdmissionRequest<K>,
    uid: &str,
    to_pod: ToPod<K>,
) -> Result<Pod, AdmissionError> {
    let object = request
        .object
        .take()
        .ok_or_else(|| AdmissionError::NoObject {
            uid: uid.to_string(),
        })?;
    to_pod(object).map_err(|source| AdmissionError::InvalidPod {
        uid: uid.to_string(),
        source,
    })
}
