//! A certificate, key or CA that cannot be used.

use std::path::PathBuf;

use thiserror::Error;
use x509_parser::time::ASN1Time;

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
    /// A PEM block of a certificate file (or CA bundle) cannot be decoded: a
    /// truncated intermediate, say. It is never skipped.
    #[error("{path}: certificate number {index} (counting from 1) is not valid PEM: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Which certificate of the file, counting from 1.
        index: usize,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The key file holds no usable key.
    #[error("{path}: no usable PEM private key: {source}")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
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
    /// The leaf certificate cannot be parsed for its dates and names.
    #[error("{path}: the first certificate cannot be parsed: {source}")]
    Leaf {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: x509_parser::nom::Err<x509_parser::error::X509Error>,
    },
    /// The leaf's notAfter is in the past.
    #[error("{path}: the certificate expired on {not_after}")]
    Expired {
        /// The file.
        path: PathBuf,
        /// Its notAfter.
        not_after: ASN1Time,
    },
    /// The leaf's notBefore is in the future.
    #[error("{path}: the certificate is not valid before {not_before}")]
    NotYetValid {
        /// The file.
        path: PathBuf,
        /// Its notBefore.
        not_before: ASN1Time,
    },
    /// The leaf does not cover a name it must: one of `--tls-server-names`,
    /// or one the certificate it would replace covers.
    #[error("{path}: the certificate is not valid for {name} ({why}): {source}")]
    WrongName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
        /// Why the name is required.
        why: NameRule,
        /// What webpki said.
        #[source]
        source: rustls::Error,
    },
    /// `--client-ca` holds no certificate.
    #[error("{path}: no CA certificate found")]
    NoClientCa {
        /// The file.
        path: PathBuf,
    },
    /// A certificate of `--client-ca` is not a usable trust anchor.
    #[error("{path}: not a usable CA certificate: {source}")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused to build a client verifier from `--client-ca`.
    #[error("{path}: no client verifier from this CA bundle: {source}")]
    ClientVerifier {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Why a serving certificate must cover a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// It is one of `--tls-server-names`.
    Listed,
    /// The certificate it would replace covers it: a renewal keeps its names.
    Kept,
}

impl std::fmt::Display for NameRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameRule::Listed => "listed in --tls-server-names",
            NameRule::Kept => "covered by the certificate being replaced",
        })
    }
}

impl TlsError {
    /// A failure that the same bytes may not have later: a certificate that
    /// is not valid yet becomes valid without any change on disk.
    pub(crate) fn passes_with_time(&self) -> bool {
        matches!(self, TlsError::NotYetValid { .. })
    }
}
