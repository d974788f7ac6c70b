//! The serving certificate: loading, hot reloading and the rustls config.
//!
//! The certificate is served through a resolver that reads the current
//! `CertifiedKey` on every handshake, so a reload takes effect for the next
//! connection while open connections keep theirs. Files are polled rather than
//! watched: the kubelet updates a mounted Secret by swapping a `..data`
//! symlink, which inotify on the file paths does not see, while reading
//! through the paths always follows the swap.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

use crate::metrics::Metrics;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no usable PEM private key: {detail}")]
    NoKey { path: PathBuf, detail: String },
    #[error("{cert} and {key} are not a usable pair: {source}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{path}: no usable CA certificate: {detail}")]
    ClientCa { path: PathBuf, detail: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Parses a PEM chain (leaf first, then intermediates) and key into a pair,
/// refusing a key that does not match the leaf.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::NoKey {
        path: files.key.clone(),
        detail: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    })
}

/// The leaf's notAfter as a Unix timestamp.
pub fn not_after(key: &CertifiedKey) -> Option<i64> {
    let leaf = key.cert.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

/// The certificate currently served.
#[derive(Debug)]
pub struct ServingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServingCert {
    pub fn new(key: CertifiedKey) -> Self {
        ServingCert {
            current: RwLock::new(Arc::new(key)),
        }
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a valid certificate.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Reloads the pair when the bytes on disk change.
pub struct Reloader {
    files: TlsFiles,
    serving: Arc<ServingCert>,
    metrics: Arc<Metrics>,
    provider: Arc<CryptoProvider>,
    /// The bytes last tried, good or bad, so a bad pair is reported once and
    /// not at every poll.
    last: (Vec<u8>, Vec<u8>),
}

impl Reloader {
    /// Loads the pair for the first time; a failure here stops start-up.
    pub fn start(
        files: TlsFiles,
        metrics: Arc<Metrics>,
        provider: Arc<CryptoProvider>,
    ) -> Result<(Reloader, Arc<ServingCert>), TlsError> {
        let cert = read(&files.cert)?;
        let key = read(&files.key)?;
        let pair = certified_key(&cert, &key, &files, &provider)?;
        if let Some(t) = not_after(&pair) {
            metrics.set_cert_not_after(t);
        }
        let serving = Arc::new(ServingCert::new(pair));
        Ok((
            Reloader {
                files,
                serving: serving.clone(),
                metrics,
                provider,
                last: (cert, key),
            },
            serving,
        ))
    }

    /// One poll: `None` when nothing changed.
    pub fn poll(&mut self) -> Option<Result<(), TlsError>> {
        let read_both = read(&self.files.cert).and_then(|c| Ok((c, read(&self.files.key)?)));
        let (cert, key) = match read_both {
            Ok(pair) => pair,
            Err(e) => return Some(Err(e)),
        };
        if (&cert, &key) == (&self.last.0, &self.last.1) {
            return None;
        }
        let result = certified_key(&cert, &key, &self.files, &self.provider);
        self.last = (cert, key);
        Some(result.map(|pair| {
            if let Some(t) = not_after(&pair) {
                self.metrics.set_cert_not_after(t);
            }
            self.serving.replace(pair);
        }))
    }

    pub async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticker.tick().await;
            match self.poll() {
                None => {}
                Some(Ok(())) => {
                    failing = false;
                    self.metrics.tls_reload(true);
                    tracing::info!(cert = %self.files.cert.display(), "reloaded the serving certificate");
                }
                Some(Err(error)) => {
                    // An unreadable file fails every poll: report it once.
                    let repeated = failing && matches!(error, TlsError::Read { .. });
                    if !repeated {
                        self.metrics.tls_reload(false);
                        tracing::error!(%error, "kept the previous serving certificate");
                    }
                    failing = matches!(error, TlsError::Read { .. });
                }
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// TLS 1.2 and 1.3 only, HTTP/2 and HTTP/1.1 by ALPN, client certificates
/// required when a client CA is given.
pub fn server_config(
    serving: Arc<ServingCert>,
    client_ca: Option<&Path>,
    provider: Arc<CryptoProvider>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let ca_error = |detail: String| TlsError::ClientCa {
                path: path.to_path_buf(),
                detail,
            };
            let pem = read(path)?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots
                    .add(cert.map_err(|e| ca_error(e.to_string()))?)
                    .map_err(|e| ca_error(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_error("the file holds no certificate".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(serving);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
