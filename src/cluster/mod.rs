//! The cluster side, never on the request path: the API client, the watched
//! namespace defaults ([`namespaces`]), and `gracehook audit` — listing the
//! workloads ([`workloads`]) and assessing them ([`audit`]).

pub mod audit;
pub mod namespaces;
pub mod workloads;

use thiserror::Error;

use crate::planner::settings::parse_minor;

/// A failure to talk to the API server; the message says what was asked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// No in-cluster configuration and no kubeconfig.
    #[error("no usable cluster configuration (in-cluster or kubeconfig): {0}")]
    Config(#[source] kube::Error),
    /// The kubeconfig cannot be read or used.
    #[error("reading the kubeconfig: {0}")]
    Kubeconfig(String),
    /// A list call failed (permissions, connectivity).
    #[error("listing {what}: {source}")]
    List {
        /// The resource.
        what: &'static str,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// `/version` failed.
    #[error("asking the API server for its version: {0}")]
    Version(#[source] kube::Error),
    /// `/version` answered something unreadable.
    #[error("the API server reported an unreadable version {0:?}")]
    UnreadableVersion(String),
}

/// The API server's version: its minor, and the full text for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// `37` for v1.37.2.
    pub minor: u32,
    /// `v1.37.2`.
    pub git_version: String,
}

/// Asks the API server (in-cluster config, or the kubeconfig outside) for its
/// version. Discovery needs no RBAC beyond what every service account has.
pub async fn server_version() -> Result<ServerVersion, ClusterError> {
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
    Ok(ServerVersion {
        minor,
        git_version: info.git_version,
    })
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
