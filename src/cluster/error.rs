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
    /// A list or get call failed: refused (403, other 4xx) at once, or
    /// still failing (429, 5xx, connection) after the last try.
    #[error("{what}: {source}{}", after(*tries))]
    Call {
        /// What was asked: `listing deployments in namespace shop`.
        what: String,
        /// How many times it was asked.
        tries: u32,
        /// The last answer.
        #[source]
        source: CallError,
    },
    /// `audit -n` names a namespace that does not exist.
    #[error("namespace {0} not found")]
    NoSuchNamespace(String),
    /// `/version` failed.
    #[error("asking the API server for its version: {0}")]
    Version(#[source] kube::Error),
    /// `/version` answered something unreadable.
    #[error("the API server reported an unreadable version {0:?}")]
    UnreadableVersion(String),
}

fn after(tries: u32) -> String {
    if tries > 1 {
        format!(" (gave up after {tries} tries)")
    } else {
        String::new()
    }
}

/// Why one call to the API server failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CallError {
    /// The API server (or a proxy before it) answered an error status.
    #[error("the API server answered {code} {reason}: {message}")]
    Status {
        /// The HTTP status.
        code: u16,
        /// The Status' reason (`Forbidden`, `Expired`), or the HTTP reason
        /// phrase when the body is not a Status.
        reason: String,
        /// The Status' message, or the body's text.
        message: String,
    },
    /// No answer: connection refused, TLS, timeout, authentication.
    #[error("{0}")]
    Request(#[source] kube::Error),
    /// An answer that is not what was asked for.
    #[error("an unreadable answer: {0}")]
    Decode(#[source] serde_json::Error),
}
