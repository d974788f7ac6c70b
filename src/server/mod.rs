//! `gracehook serve`: the webhook server.
//!
//! - [`routes`]: the HTTP surface (admission and operations routers);
//! - [`tls`]: the rustls configuration and the reloaded serving certificate;
//! - `connections`: accepting TCP, the TLS handshake, HTTP/1.1 and HTTP/2;
//! - `shutdown`: signals, and the shutdown gracehook teaches pods — fail
//!   readiness, keep serving for a while, stop accepting, finish what is in
//!   flight, exit 0;
//! - [`metrics`]: what `/metrics` reports.

mod body;
mod connections;
pub mod metrics;
pub mod routes;
mod shutdown;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admission::Admission;
use crate::planner::duration::parse_duration;
use metrics::Metrics;
use routes::{AppState, OpsState, admission_router, ops_router};
use tls::{Reloader, ServingCert, TlsError, TlsFiles};

/// The server's flags; the same struct is its configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address of the TLS admission endpoint.
    #[arg(long, env = "GRACEHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP /metrics, /healthz and /readyz endpoint.
    #[arg(long, env = "GRACEHOOK_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    pub metrics_listen: SocketAddr,
    /// Serving certificate (PEM, leaf first, then intermediates); reloaded when it changes.
    /// Without it, a throw-away self-signed certificate for localhost is used.
    #[arg(long, env = "GRACEHOOK_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key of the serving certificate (PEM).
    #[arg(long, env = "GRACEHOOK_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) for client certificates: when set, clients without a
    /// certificate signed by it are refused at the handshake.
    #[arg(long, env = "GRACEHOOK_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "GRACEHOOK_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = exact_duration)]
    pub tls_reload_interval: Duration,
    /// After SIGTERM: how long to keep serving with readiness failed, while
    /// endpoints and the API server stop sending to this replica.
    #[arg(long, env = "GRACEHOOK_SHUTDOWN_DELAY", default_value = "5s", value_parser = exact_duration)]
    pub shutdown_delay: Duration,
    /// After the delay: how long requests in flight may take to finish.
    #[arg(long, env = "GRACEHOOK_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = exact_duration)]
    pub shutdown_timeout: Duration,
    /// Open connections at most; further clients wait in the listen backlog.
    #[arg(long, env = "GRACEHOOK_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
}

fn exact_duration(value: &str) -> Result<Duration, String> {
    parse_duration(value).map_err(|e| format!("{e} (for example 5s or 500ms)"))
}

impl ServerArgs {
    fn tls_files(&self) -> Option<TlsFiles> {
        let (cert, key) = self.tls_cert.clone().zip(self.tls_key.clone())?;
        Some(TlsFiles { cert, key })
    }
}

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

/// Runs the server until a shutdown signal, then drains and returns.
pub async fn run(
    args: &ServerArgs,
    admission: Admission,
    provider: Arc<CryptoProvider>,
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let serving = serving_cert(args, &metrics, &provider)?;
    let tls_config = tls::server_config(serving, args.client_ca.as_deref(), provider)?;
    let acceptor = TlsAcceptor::from(Arc::new(tls_config));

    let mut signals = shutdown::Signals::install()?;
    let listener = bind(args.listen).await?;
    let ops_listener = bind(args.metrics_listen).await?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    let ops_addr = ops_listener.local_addr().unwrap_or(args.metrics_listen);

    let ops = Arc::new(OpsState {
        metrics: metrics.clone(),
        ready: true.into(),
    });
    let ops_server = shutdown::Stoppable::spawn(|stopped| {
        axum::serve(ops_listener, ops_router(ops.clone()))
            .with_graceful_shutdown(stopped)
            .into_future()
    });
    let app = admission_router(Arc::new(AppState { admission, metrics }));
    let server = shutdown::Stoppable::spawn(|stopped| {
        connections::accept_loop(listener, acceptor, app, args.max_connections, stopped)
    });
    tracing::info!(%addr, metrics = %ops_addr, "serving admission webhook");

    let signal = signals.next().await;
    ops.ready.store(false, Ordering::SeqCst);
    tracing::info!(
        signal,
        delay_ms = args.shutdown_delay.as_millis() as u64,
        "shutting down: readiness fails, still serving while endpoints drop this pod"
    );
    let drained = shutdown::drain(server, args.shutdown_delay, args.shutdown_timeout);
    tokio::select! {
        () = drained => {}
        signal = signals.next() => return Err(ServeError::Aborted { signal }),
    }
    ops_server.stop().await;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

fn serving_cert(
    args: &ServerArgs,
    metrics: &Arc<Metrics>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ServingCert>, ServeError> {
    if let Some(files) = args.tls_files() {
        let (reloader, serving) = Reloader::start(files, metrics.clone(), provider.clone())?;
        // A tight interval would spin on the files.
        let interval = args.tls_reload_interval.max(Duration::from_millis(10));
        tokio::spawn(reloader.run(interval));
        return Ok(serving);
    }
    let generated = tls::certs::self_signed(&["localhost", "127.0.0.1", "::1"])?;
    let files = TlsFiles {
        cert: "(generated)".into(),
        key: "(generated)".into(),
    };
    let pair = tls::certified_key(
        generated.cert_pem.as_bytes(),
        generated.key_pem.as_bytes(),
        &files,
        provider,
    )?;
    tracing::warn!(
        "NO CERTIFICATE GIVEN: serving a throw-away self-signed certificate for localhost; \
         no API server will trust it. Pass --tls-cert and --tls-key in a cluster."
    );
    Ok(Arc::new(ServingCert::new(pair, metrics.clone())))
}
