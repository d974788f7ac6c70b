//! The workloads of a cluster, as `gracehook audit` reads them: Deployments,
//! StatefulSets, DaemonSets, ReplicaSets and Pods without an owner, CronJobs.
//! Listed page by page with list permission only (`manifests/audit`), by
//! [`calls`]; each page is handed on and dropped, so memory does not grow
//! with the cluster.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::calls::{self, Retry};
use super::error::ClusterError;

/// A workload's pod template, as listed.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `Deployment`, `Pod`, ...
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The pod template, as a Pod.
    pub template: Pod,
}

/// A kind of workload: where its pod template is, and whether an object of
/// it is a workload of its own rather than managed by another one.
trait Kind:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
    const KIND: &'static str;
    /// For progress messages.
    const PLURAL: &'static str;
    /// The pod template, or `None` when something else owns the object.
    fn template(self) -> Option<Pod>;
}

fn pod_of(template: Option<PodTemplateSpec>) -> Option<Pod> {
    let template = template.unwrap_or_default();
    Some(Pod {
        metadata: template.metadata.unwrap_or_default(),
        spec: template.spec,
        status: None,
    })
}

fn owned(meta: &ObjectMeta) -> bool {
    meta.owner_references
        .as_ref()
        .is_some_and(|o| !o.is_empty())
}

impl Kind for Deployment {
    const KIND: &'static str = "Deployment";
    const PLURAL: &'static str = "deployments";
    fn template(self) -> Option<Pod> {
        pod_of(self.spec.map(|s| s.template))
    }
}

impl Kind for StatefulSet {
    const KIND: &'static str = "StatefulSet";
    const PLURAL: &'static str = "statefulsets";
    fn template(self) -> Option<Pod> {
        pod_of(self.spec.map(|s| s.template))
    }
}

impl Kind for DaemonSet {
    const KIND: &'static str = "DaemonSet";
    const PLURAL: &'static str = "daemonsets";
    fn template(self) -> Option<Pod> {
        pod_of(self.spec.map(|s| s.template))
    }
}

impl Kind for ReplicaSet {
    const KIND: &'static str = "ReplicaSet";
    const PLURAL: &'static str = "replicasets";
    fn template(self) -> Option<Pod> {
        // A Deployment's ReplicaSets are assessed through the Deployment.
        (!owned(&self.metadata)).then(|| pod_of(self.spec.and_then(|s| s.template)))?
    }
}

impl Kind for CronJob {
    const KIND: &'static str = "CronJob";
    const PLURAL: &'static str = "cronjobs";
    fn template(self) -> Option<Pod> {
        pod_of(self.spec.job_template.spec.map(|j| j.template))
    }
}

impl Kind for Pod {
    const KIND: &'static str = "Pod";
    const PLURAL: &'static str = "pods";
    fn template(self) -> Option<Pod> {
        (!owned(&self.metadata)).then_some(self)
    }
}

/// Every Namespace, for its mode label and default annotations.
pub async fn namespaces(client: &Client, retry: &Retry) -> Result<Vec<Namespace>, ClusterError> {
    let mut found = Vec::new();
    let url = Api::<Namespace>::all(client.clone())
        .resource_url()
        .to_string();
    calls::for_each_page(client, retry, &url, "namespaces", |page| found.extend(page)).await?;
    Ok(found)
}

/// The Namespace `name` alone (`get` permission on it is enough, which a
/// RoleBinding in that namespace can grant); an error when there is none.
pub async fn namespace(
    client: &Client,
    retry: &Retry,
    name: &str,
) -> Result<Namespace, ClusterError> {
    let url = Api::<Namespace>::all(client.clone())
        .resource_url()
        .to_string();
    calls::get_one(
        client,
        retry,
        &url,
        name,
        format!("getting namespace {name}"),
    )
    .await?
    .ok_or_else(|| ClusterError::NoSuchNamespace(name.to_string()))
}

/// Hands every workload of `namespace` (all when `None`) to `visit`, and the
/// count of each kind listed to `progress`.
pub async fn visit(
    client: &Client,
    retry: &Retry,
    namespace: Option<&str>,
    mut progress: impl FnMut(&'static str, usize),
    mut visit: impl FnMut(Workload),
) -> Result<(), ClusterError> {
    let lister = Lister {
        client,
        retry,
        namespace,
    };
    progress(
        Deployment::PLURAL,
        lister.kind::<Deployment>(&mut visit).await?,
    );
    progress(
        StatefulSet::PLURAL,
        lister.kind::<StatefulSet>(&mut visit).await?,
    );
    progress(
        DaemonSet::PLURAL,
        lister.kind::<DaemonSet>(&mut visit).await?,
    );
    progress(
        ReplicaSet::PLURAL,
        lister.kind::<ReplicaSet>(&mut visit).await?,
    );
    progress(CronJob::PLURAL, lister.kind::<CronJob>(&mut visit).await?);
    progress(Pod::PLURAL, lister.kind::<Pod>(&mut visit).await?);
    Ok(())
}

struct Lister<'a> {
    client: &'a Client,
    retry: &'a Retry,
    namespace: Option<&'a str>,
}

impl Lister<'_> {
    async fn kind<K: Kind>(&self, visit: &mut impl FnMut(Workload)) -> Result<usize, ClusterError> {
        let (api, what) = match self.namespace {
            Some(ns) => (
                Api::<K>::namespaced(self.client.clone(), ns),
                format!("{} in namespace {ns}", K::PLURAL),
            ),
            None => (Api::<K>::all(self.client.clone()), K::PLURAL.to_string()),
        };
        let url = api.resource_url().to_string();
        calls::for_each_page(self.client, self.retry, &url, &what, |page: Vec<K>| {
            for object in page {
                let meta = object.meta();
                let (namespace, name) = (meta.namespace.clone(), meta.name.clone());
                if let Some(template) = object.template() {
                    visit(Workload {
                        kind: K::KIND,
                        namespace: namespace.unwrap_or_default(),
                        name: name.unwrap_or_default(),
                        template,
                    });
                }
            }
        })
        .await
    }
}
