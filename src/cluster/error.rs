//! Why a call to the API server failed; each message says what was asked.

use thiserror::Error;

/// A failure to talk to the API server; the message says what was asked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// No in-cluster configuration and no kubeconfig.
    #[error("no usable cluster configuration (in-cluster or kubeconfig): {0}")]
    Config(#[source] kube::Error),
    /// The kubeconfig cannot be read or used.
    #[error("reading the kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// No configuration could be inferred, in-cluster or from a kubeconfig.
    #[error("reading the kubeconfig: {0}")]
    Infer(#[source] kube::config::InferConfigError),
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
