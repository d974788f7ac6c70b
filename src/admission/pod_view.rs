//! The pod as the planner reads it, parsed without the rest.
//!
//! Parsing an AdmissionReview into k8s-openapi's full `Pod` was three
//! quarters of the time of a review (BENCHMARKS.md, "The review path"): every
//! field of every container — image, env, ports, probes, resources — is parsed
//! and owned, and none of them is read. [`PodView`] reads the few fields the
//! planner uses and skips the others, then becomes a k8s-openapi [`Pod`] with
//! exactly those fields set, so the plan and the patch are still built on the
//! typed model. The tests prove both paths plan every fixture and every
//! generated pod alike (`tests/it/properties.rs`).
//!
//! The one difference, documented in `docs/admission.md`: a field gracehook
//! does not read is not checked, so a pod whose `image` is a number is
//! planned rather than refused. The API server never sends such a pod.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Lifecycle, Pod, PodOS, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

/// A pod with only what the planner reads: names, annotations, each
/// container's name and lifecycle, the init containers' names, the OS and
/// the grace period.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodView {
    #[serde(default, deserialize_with = "slim_metadata")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<SpecView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataView {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    generate_name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// `metadata` as an `ObjectMeta` holding only the four fields gracehook
/// reads (labels, owner references and managed fields are skipped).
fn slim_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = MetadataView::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        generate_name: m.generate_name,
        namespace: m.namespace,
        annotations: m.annotations,
        ..ObjectMeta::default()
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecView {
    // Null and absent both mean "none", as k8s-openapi reads them.
    #[serde(default)]
    containers: Option<Vec<ContainerView>>,
    #[serde(default)]
    init_containers: Option<Vec<ContainerView>>,
    #[serde(default)]
    os: Option<PodOS>,
    #[serde(default)]
    termination_grace_period_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ContainerView {
    #[serde(default)]
    name: Option<String>,
    /// Boxed: most containers have none, and a pod may have thousands of
    /// containers (a `Lifecycle` is hundreds of bytes inline).
    #[serde(default)]
    lifecycle: Option<Box<Lifecycle>>,
    /// A native sidecar's `Always`.
    #[serde(default, rename = "restartPolicy")]
    restart_policy: Option<String>,
    /// Names and literal values only: a mesh proxy's settings
    /// (`planner::sidecars`); `valueFrom` is never read.
    #[serde(default)]
    env: Option<Vec<EnvView>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct EnvView {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: Option<String>,
}

impl ContainerView {
    fn into_container(self) -> Container {
        Container {
            name: self.name.unwrap_or_default(),
            lifecycle: self.lifecycle.map(|l| *l),
            restart_policy: self.restart_policy,
            env: self.env.map(|env| {
                env.into_iter()
                    .map(|e| EnvVar {
                        name: e.name,
                        value: e.value,
                        value_from: None,
                    })
                    .collect()
            }),
            ..Container::default()
        }
    }
}

impl PodView {
    /// How many containers `spec.containers` has.
    pub fn container_count(&self) -> usize {
        self.spec
            .as_ref()
            .and_then(|s| s.containers.as_ref())
            .map_or(0, Vec::len)
    }

    /// The k8s-openapi Pod with the fields read, every other field unset.
    pub fn into_pod(self) -> Pod {
        let spec = self.spec.map(|s| PodSpec {
            containers: s
                .containers
                .unwrap_or_default()
                .into_iter()
                .map(ContainerView::into_container)
                .collect(),
            init_containers: s
                .init_containers
                .map(|c| c.into_iter().map(ContainerView::into_container).collect()),
            os: s.os,
            termination_grace_period_seconds: s.termination_grace_period_seconds,
            ..PodSpec::default()
        });
        Pod {
            metadata: self.metadata,
            spec,
            status: None,
        }
    }
}

/// kube's `AdmissionReview<K>` takes any resource; a `PodView` is a pod.
impl kube::Resource for PodView {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}
