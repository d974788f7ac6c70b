//! The serving certificate and its hot reload.
//!
//! The certificate is served through a resolver that reads the current
//! `CertifiedKey` on every handshake, so a reload takes effect for the next
//! connection while open connections keep theirs. Files are polled rather than
//! watched: the kubelet updates a mounted Secret by swapping a `..data`
//! symlink, which inotify on the file paths does not see, while reading
//! through the paths always follows the swap.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::error::TlsError;
use super::pair::{TlsFiles, certified_key, not_after, read};
use crate::server::metrics::Metrics;

/// The certificate currently served; its expiry is published as
/// `gracehook_tls_cert_not_after_seconds` whenever it is set.
#[derive(Debug)]
pub struct ServingCert {
    current: RwLock<Arc<CertifiedKey>>,
    metrics: Arc<Metrics>,
}

impl ServingCert {
    /// Serves `key` from now on.
    pub fn new(key: CertifiedKey, metrics: Arc<Metrics>) -> Self {
        publish_expiry(&metrics, &key);
        ServingCert {
            current: RwLock::new(Arc::new(key)),
            metrics,
        }
    }

    /// The certificate served to the next handshake.
    pub fn current(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a valid certificate.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, key: CertifiedKey) {
        publish_expiry(&self.metrics, &key);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }
}

fn publish_expiry(metrics: &Metrics, key: &CertifiedKey) {
    if let Some(t) = not_after(key) {
        metrics.set_cert_not_after(t);
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
        let serving = Arc::new(ServingCert::new(pair, metrics.clone()));
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
        Some(result.map(|pair| self.serving.replace(pair)))
    }

    /// Polls every `interval`, forever.
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
