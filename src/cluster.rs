//! What gracehook asks the API server, never on the request path: its version,
//! to choose the preStop style at start-up.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use thiserror::Error;

use crate::settings::PrestopStyle;

/// The native `sleep` action is on by default from this minor version.
pub const SLEEP_ACTION_SINCE: u32 = 30;

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("no usable cluster configuration (in-cluster or kubeconfig): {0}")]
    Config(#[source] kube::Error),
    #[error("reading the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("listing {what}: {source}")]
    List {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("asking the API server for its version: {0}")]
    Version(#[source] kube::Error),
    #[error("the API server reported an unreadable version {0:?}")]
    UnreadableVersion(String),
}

/// `"1.29"`, `"v1.30.2"`, `"30+"` (minor as some providers report it) -> minor.
pub fn parse_minor(version: &str) -> Option<u32> {
    let version = version.trim().trim_start_matches('v');
    let minor = match version.split_once('.') {
        Some(("1", rest)) => rest.split('.').next()?,
        Some(_) => return None,
        None => version,
    };
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub fn style_for_minor(minor: u32) -> PrestopStyle {
    if minor >= SLEEP_ACTION_SINCE {
        PrestopStyle::Sleep
    } else {
        PrestopStyle::Exec
    }
}

/// Asks the API server (in-cluster config, or the kubeconfig outside) for its
/// version. Discovery needs no RBAC beyond what every service account has.
pub async fn discover_style() -> Result<(PrestopStyle, String), ClusterError> {
    let client = kube::Client::try_default()
        .await
        .map_err(ClusterError::Config)?;
    let info = client
        .apiserver_version()
        .await
        .map_err(ClusterError::Version)?;
    let minor = parse_minor(&info.minor)
        .or_else(|| parse_minor(&info.git_version))
        .ok_or_else(|| ClusterError::UnreadableVersion(info.git_version.clone()))?;
    Ok((style_for_minor(minor), info.git_version))
}

/// A client from `--kubeconfig`/`--context`, or inferred as kubectl does.
pub async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<String>,
) -> Result<kube::Client, ClusterError> {
    use kube::config::{Config, KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context,
        ..Default::default()
    };
    let bad = |e: &dyn std::fmt::Display| ClusterError::Kubeconfig(e.to_string());
    let config = match (kubeconfig, &options.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path).map_err(|e| bad(&e))?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| bad(&e))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| bad(&e))?,
        (None, None) => Config::infer().await.map_err(|e| bad(&e))?,
    };
    kube::Client::try_from(config).map_err(ClusterError::Config)
}

/// Every object of a kind, page by page (500 at a time).
async fn list_all<K>(api: kube::Api<K>, what: &'static str) -> Result<Vec<K>, ClusterError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut params = kube::api::ListParams::default().limit(500);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|source| ClusterError::List { what, source })?;
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    eprintln!("audit: listed {} {what}", items.len());
    Ok(items)
}

fn pod_of(template: Option<k8s_openapi::api::core::v1::PodTemplateSpec>) -> Pod {
    let template = template.unwrap_or_default();
    Pod {
        metadata: template.metadata.unwrap_or_default(),
        spec: template.spec,
        status: None,
    }
}

fn owned(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.owner_references
        .as_ref()
        .is_some_and(|o| !o.is_empty())
}

/// The workloads of `namespace` (all when `None`) and the namespaces' labels
/// and annotations, read with list permission only.
pub async fn list_workloads(
    client: kube::Client,
    namespace: Option<&str>,
) -> Result<(Vec<crate::audit::Workload>, Vec<Namespace>), ClusterError> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::batch::v1::CronJob;
    use kube::Api;

    use crate::audit::Workload;

    fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let named = |kind: &'static str,
                 meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                 template: Pod| Workload {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        template,
    };

    let namespaces: Vec<Namespace> = list_all(Api::<Namespace>::all(client.clone()), "namespaces")
        .await?
        .into_iter()
        .filter(|ns| namespace.is_none() || ns.metadata.name.as_deref() == namespace)
        .collect();
    let mut workloads = Vec::new();
    for d in list_all(api::<Deployment>(&client, namespace), "deployments").await? {
        workloads.push(named(
            "Deployment",
            &d.metadata,
            pod_of(d.spec.map(|s| s.template)),
        ));
    }
    for s in list_all(api::<StatefulSet>(&client, namespace), "statefulsets").await? {
        workloads.push(named(
            "StatefulSet",
            &s.metadata,
            pod_of(s.spec.map(|s| s.template)),
        ));
    }
    for d in list_all(api::<DaemonSet>(&client, namespace), "daemonsets").await? {
        workloads.push(named(
            "DaemonSet",
            &d.metadata,
            pod_of(d.spec.map(|s| s.template)),
        ));
    }
    for r in list_all(api::<ReplicaSet>(&client, namespace), "replicasets").await? {
        if !owned(&r.metadata) {
            workloads.push(named(
                "ReplicaSet",
                &r.metadata,
                pod_of(r.spec.and_then(|s| s.template)),
            ));
        }
    }
    for c in list_all(api::<CronJob>(&client, namespace), "cronjobs").await? {
        let template = c
            .spec
            .as_ref()
            .and_then(|s| s.job_template.spec.as_ref())
            .map(|j| j.template.clone());
        workloads.push(named("CronJob", &c.metadata, pod_of(template)));
    }
    for p in list_all(api::<Pod>(&client, namespace), "pods").await? {
        if !owned(&p.metadata) {
            let meta = p.metadata.clone();
            workloads.push(named("Pod", &meta, p));
        }
    }
    Ok((workloads, namespaces))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_versions_as_clusters_report_them() {
        assert_eq!(parse_minor("1.29"), Some(29));
        assert_eq!(parse_minor("v1.30.2"), Some(30));
        assert_eq!(parse_minor("v1.37.2-eks-1234"), Some(37));
        assert_eq!(parse_minor("31+"), Some(31));
        assert_eq!(parse_minor("2.1"), None);
        assert_eq!(parse_minor("latest"), None);
        assert_eq!(style_for_minor(29), PrestopStyle::Exec);
        assert_eq!(style_for_minor(30), PrestopStyle::Sleep);
    }
}
