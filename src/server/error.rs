//! Why the server stopped with an error.

use std::net::SocketAddr;

use thiserror::Error;

use super::tls::{self, TlsError};

/// Why the server stopped with an error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The certificate, key or client CA cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The self-signed certificate could not be made.
    #[error(transparent)]
    SelfSigned(#[from] tls::certs::CertsError),
    /// A listen address is taken or not allowed.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// `--listen` or `--metrics-listen`.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A signal handler could not be installed.
    #[error("installing the {signal} handler: {source}")]
    Signal {
        /// Which.
        signal: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A second signal arrived during the shutdown: stopped at once, requests
    /// in flight cut.
    #[error("second {signal} during the shutdown: stopped at once")]
    Aborted {
        /// The second signal.
        signal: &'static str,
    },
}
