//! Why the observer could not start or went down.

use thiserror::Error;

use crate::server::ServeError;

/// The observer's error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// No API client (no in-cluster config, no kubeconfig).
    #[error("creating the API client: {0}")]
    Client(#[source] kube::Error),
    /// The Lease could not be set up (its namespace, RBAC).
    #[error("setting up the Lease {namespace}/{name}: {source}")]
    Lease {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    /// The metrics port, or the signal handlers.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The metrics port cannot be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
