//! The API client, from the in-cluster configuration or a kubeconfig, and
//! the API server's version.

use super::error::ClusterError;
use crate::planner::settings::parse_minor;

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

/// A client from `--kubeconfig`/`--context`, or inferred as kubectl does,
/// without kube's retry layer (see [`super::calls`]).
pub async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<String>,
) -> Result<kube::Client, ClusterError> {
    use kube::config::{Config, KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context,
        ..Default::default()
    };
    let mut config = match (kubeconfig, &options.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path).map_err(ClusterError::Kubeconfig)?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(ClusterError::Kubeconfig)?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(ClusterError::Kubeconfig)?,
        (None, None) => Config::infer().await.map_err(ClusterError::Infer)?,
    };
    // `calls` retries each call itself, also on 500 and 502, within bounds a
    // command line can wait for; kube's own layer (15 tries) would multiply.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(ClusterError::Config)
}
