//! The workloads of a cluster, as `gracehook audit` reads them: Deployments,
//! StatefulSets, DaemonSets, ReplicaSets and Pods without an owner, CronJobs.
//! Listed page by page with list permission only (`manifests/audit`); each
//! page is handed on and dropped, so memory does not grow with the cluster.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::error::ClusterError;

/// Objects per list call: a page of Deployments with large annotations can
/// be megabytes, and it is all in memory at once.
const PAGE_SIZE: u32 = 100;

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

/// The Namespaces in scope (all of them when `namespace` is `None`), for
/// their mode label and default annotations.
pub async fn namespaces(
    client: &Client,
    namespace: Option<&str>,
) -> Result<Vec<Namespace>, ClusterError> {
    let mut found = Vec::new();
    for_each_page(
        Api::<Namespace>::all(client.clone()),
        "namespaces",
        |page| {
            found.extend(
                page.into_iter()
                    .filter(|ns| namespace.is_none() || ns.metadata.name.as_deref() == namespace),
            );
        },
    )
    .await?;
    Ok(found)
}

/// Hands every workload of `namespace` (all when `None`) to `visit`, and the
/// count of each kind listed to `progress`.
pub async fn visit(
    client: &Client,
    namespace: Option<&str>,
    mut progress: impl FnMut(&'static str, usize),
    mut visit: impl FnMut(Workload),
) -> Result<(), ClusterError> {
    progress(
        Deployment::PLURAL,
        visit_kind::<Deployment>(client, namespace, &mut visit).await?,
    );
    progress(
        StatefulSet::PLURAL,
        visit_kind::<StatefulSet>(client, namespace, &mut visit).await?,
    );
    progress(
        DaemonSet::PLURAL,
        visit_kind::<DaemonSet>(client, namespace, &mut visit).await?,
    );
    progress(
        ReplicaSet::PLURAL,
        visit_kind::<ReplicaSet>(client, namespace, &mut visit).await?,
    );
    progress(
        CronJob::PLURAL,
        visit_kind::<CronJob>(client, namespace, &mut visit).await?,
    );
    progress(
        Pod::PLURAL,
        visit_kind::<Pod>(client, namespace, &mut visit).await?,
    );
    Ok(())
}

async fn visit_kind<K: Kind>(
    client: &Client,
    namespace: Option<&str>,
    visit: &mut impl FnMut(Workload),
) -> Result<usize, ClusterError> {
    let api = match namespace {
        Some(ns) => Api::<K>::namespaced(client.clone(), ns),
        None => Api::<K>::all(client.clone()),
    };
    for_each_page(api, K::PLURAL, |page| {
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

/// Lists `api` page by page, handing each page to `f`; returns the count.
async fn for_each_page<K>(
    api: Api<K>,
    what: &'static str,
    mut f: impl FnMut(Vec<K>),
) -> Result<usize, ClusterError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut params = ListParams::default().limit(PAGE_SIZE);
    let mut listed = 0;
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|source| ClusterError::List { what, source })?;
        listed += page.items.len();
        tracing::debug!(what, items = page.items.len(), "listed a page");
        let next = page.metadata.continue_.filter(|c| !c.is_empty());
        f(page.items);
        match next {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(listed),
        }
    }
}
