//! A certificate, key or CA that cannot be used.

use std::path::PathBuf;

use thiserror::Error;

/// A certificate, key or CA that cannot be used; the message names the file.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{path}: no PEM certificate found")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no usable key.
    #[error("{path}: no usable PEM private key: {detail}")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The key does not match the certificate.
    #[error("{cert} and {key} are not a usable pair: {source}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// `--client-ca` holds no usable CA.
    #[error("{path}: no usable CA certificate: {detail}")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}
