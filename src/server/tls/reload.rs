//! The serving certificate, the client CA, and their hot reload.
//!
//! The certificate is served through a resolver that reads the current
//! `CertifiedKey` on every handshake, so a reload takes effect for the next
//! connection while open connections keep theirs; the client CA likewise
//! ([`ClientCa`]). Files are polled rather than watched: the kubelet updates a
//! mounted Secret by swapping a `..data` symlink, which inotify on the file
//! paths does not see, while reading through the paths always follows the
//! swap.
//!
//! A poll that reads files which do not load (a key that does not match, a
//! truncated block) reads them again after [`SETTLE`] before it counts a
//! failure: it may have read in the middle of an update, the new certificate
//! with the old key. Only the bytes of that second read are remembered, so a
//! torn read never hides the consistent files that follow it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::checks::{RequiredName, check_leaf, dns_names};
use super::client_ca::ClientCa;
use super::error::{NameRule, TlsError};
use super::pair::{TlsFiles, certified_key, not_after, read};
use crate::server::metrics::Metrics;

/// How long a poll waits before it reads files that did not load once more.
pub const SETTLE: Duration = Duration::from_millis(500);

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

/// What is reloaded from files: checked, then put in place.
trait Source: Send {
    /// The files, read in this order.
    fn paths(&self) -> Vec<&Path>;
    /// Checks the files' bytes and uses them from the next handshake on.
    fn install(&self, bytes: &[Vec<u8>]) -> Result<(), TlsError>;
    /// What it is, for the log.
    fn what(&self) -> &'static str;
}

/// What makes a serving pair: refused when the key does not match, when
/// expired or not yet valid, or when it does not cover the names it must.
struct PairRules {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    server_names: Vec<String>,
}

impl PairRules {
    /// `--tls-server-names`, or else (on a reload) the DNS names of the
    /// certificate served now: a renewal keeps its names.
    fn required(&self, current: Option<&CertifiedKey>) -> Vec<RequiredName> {
        let (names, why) = match current {
            _ if !self.server_names.is_empty() => (self.server_names.clone(), NameRule::Listed),
            Some(key) => (
                key.cert.first().map(dns_names).unwrap_or_default(),
                NameRule::Kept,
            ),
            None => (Vec::new(), NameRule::Listed),
        };
        names
            .into_iter()
            .map(|name| RequiredName { name, why })
            .collect()
    }

    /// The pair from the bytes of the certificate and key files, in that order.
    fn load(
        &self,
        bytes: &[Vec<u8>],
        current: Option<&CertifiedKey>,
    ) -> Result<CertifiedKey, TlsError> {
        let file = |i: usize| bytes.get(i).map_or(&[][..], Vec::as_slice);
        let pair = certified_key(file(0), file(1), &self.files, &self.provider)?;
        if let Some(leaf) = pair.cert.first() {
            check_leaf(leaf, &self.files.cert, &self.required(current))?;
        }
        Ok(pair)
    }
}

/// The serving pair.
struct Serving {
    rules: PairRules,
    serving: Arc<ServingCert>,
}

impl Source for Serving {
    fn paths(&self) -> Vec<&Path> {
        vec![&self.rules.files.cert, &self.rules.files.key]
    }

    fn install(&self, bytes: &[Vec<u8>]) -> Result<(), TlsError> {
        let pair = self.rules.load(bytes, Some(&self.serving.current()))?;
        self.serving.replace(pair);
        Ok(())
    }

    fn what(&self) -> &'static str {
        "serving certificate"
    }
}

/// The client CA bundle.
struct Ca {
    path: PathBuf,
    verifier: Arc<ClientCa>,
    provider: Arc<CryptoProvider>,
}

impl Source for Ca {
    fn paths(&self) -> Vec<&Path> {
        vec![&self.path]
    }

    fn install(&self, bytes: &[Vec<u8>]) -> Result<(), TlsError> {
        let pem = bytes.first().map_or(&[][..], Vec::as_slice);
        self.verifier
            .replace(pem, &self.path, self.provider.clone())
    }

    fn what(&self) -> &'static str {
        "client CA"
    }
}

/// One source and what its polls have seen.
struct Watch {
    source: Box<dyn Source>,
    /// The bytes last loaded or refused, so a bad file is reported once and
    /// not at every poll; never the bytes of a read that was retried.
    last: Vec<Vec<u8>>,
    /// The last bytes were refused for a reason time may lift (not valid
    /// yet): try them again at every poll, quietly.
    retry: bool,
    /// The last poll could not read a file: an unreadable file fails every
    /// poll, and is reported once.
    unreadable: bool,
}

impl Watch {
    fn read(&self) -> Result<Vec<Vec<u8>>, TlsError> {
        self.source.paths().into_iter().map(read).collect()
    }

    /// One poll: `None` when nothing changed.
    async fn poll(&mut self, settle: Duration) -> Option<Result<(), TlsError>> {
        if let Ok(bytes) = self.read() {
            self.unreadable = false;
            if bytes == self.last {
                return self.retry_same().then_some(Ok(()));
            }
            if self.source.install(&bytes).is_ok() {
                self.remember(bytes, false);
                return Some(Ok(()));
            }
        }
        if !self.unreadable {
            tracing::info!(
                what = self.source.what(),
                settle_ms = settle.as_millis() as u64,
                "the files did not load: reading them again before counting a failure"
            );
        }
        tokio::time::sleep(settle).await;
        let bytes = match self.read() {
            Ok(bytes) => bytes,
            Err(error) => return Some(Err(error)),
        };
        if bytes == self.last {
            // Back to what is in use: nothing changed after all.
            return None;
        }
        let result = self.source.install(&bytes);
        self.remember(bytes, matches!(&result, Err(e) if e.passes_with_time()));
        Some(result)
    }

    /// The same bytes as last time: loads them if they were refused only for
    /// now; `true` when they are in use from now on.
    fn retry_same(&mut self) -> bool {
        if !self.retry {
            return false;
        }
        match self.source.install(&self.last) {
            Ok(()) => self.retry = false,
            Err(error) => self.retry = error.passes_with_time(),
        }
        !self.retry
    }

    fn remember(&mut self, bytes: Vec<Vec<u8>>, retry: bool) {
        self.last = bytes;
        self.retry = retry;
    }

    async fn tick(&mut self, settle: Duration, metrics: &Metrics) {
        let what = self.source.what();
        match self.poll(settle).await {
            None => {}
            Some(Ok(())) => {
                self.unreadable = false;
                metrics.tls_reload(true);
                let file = self.source.paths().first().map(|p| p.display().to_string());
                tracing::info!(file, "reloaded the {what}");
            }
            Some(Err(error)) => {
                let unreadable = matches!(error, TlsError::Read { .. });
                if !(unreadable && self.unreadable) {
                    metrics.tls_reload(false);
                    tracing::error!(%error, "kept the previous {what}");
                }
                self.unreadable = unreadable;
            }
        }
    }
}

/// Loads the serving pair and the client CA at start, then reloads them when
/// the bytes on disk change. A failure at start stops start-up: a replica
/// that cannot serve a valid certificate should never become ready.
pub struct Reloader {
    watches: Vec<Watch>,
    metrics: Arc<Metrics>,
    provider: Arc<CryptoProvider>,
    server_names: Vec<String>,
}

impl Reloader {
    /// Nothing watched yet; `server_names` are `--tls-server-names`.
    pub fn new(
        metrics: Arc<Metrics>,
        provider: Arc<CryptoProvider>,
        server_names: Vec<String>,
    ) -> Reloader {
        Reloader {
            watches: Vec::new(),
            metrics,
            provider,
            server_names,
        }
    }

    /// Loads the pair for the first time (refusing it as a reload would,
    /// except that no earlier names need keeping) and watches its files.
    pub fn serving(&mut self, files: TlsFiles) -> Result<Arc<ServingCert>, TlsError> {
        let bytes = vec![read(&files.cert)?, read(&files.key)?];
        let rules = PairRules {
            files,
            provider: self.provider.clone(),
            server_names: self.server_names.clone(),
        };
        let pair = rules.load(&bytes, None)?;
        let serving = Arc::new(ServingCert::new(pair, self.metrics.clone()));
        let source = Serving {
            rules,
            serving: serving.clone(),
        };
        self.watch(Box::new(source), bytes);
        Ok(serving)
    }

    /// Loads the client CA bundle for the first time and watches its file.
    pub fn client_ca(&mut self, path: &Path) -> Result<Arc<ClientCa>, TlsError> {
        let pem = read(path)?;
        let verifier = Arc::new(ClientCa::new(&pem, path, self.provider.clone())?);
        let source = Ca {
            path: path.to_path_buf(),
            verifier: verifier.clone(),
            provider: self.provider.clone(),
        };
        self.watch(Box::new(source), vec![pem]);
        Ok(verifier)
    }

    fn watch(&mut self, source: Box<dyn Source>, last: Vec<Vec<u8>>) {
        self.watches.push(Watch {
            source,
            last,
            retry: false,
            unreadable: false,
        });
    }

    /// Whether any file is watched.
    pub fn watches_files(&self) -> bool {
        !self.watches.is_empty()
    }

    /// Polls every `interval`, forever.
    pub async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            for watch in &mut self.watches {
                watch.tick(SETTLE, &self.metrics).await;
            }
        }
    }
}
