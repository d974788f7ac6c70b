//! The server's life: bind both listeners, serve the admission and
//! operations routers, and on a signal fail readiness, keep serving for the
//! shutdown delay, then drain and return.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::args::ServerArgs;
use super::connections::{self, Limits};
use super::error::ServeError;
use super::metrics::Metrics;
use super::routes::{AppState, OpsState, admission_router, ops_router};
use super::shutdown;
use super::tls::{self, Reloader, ServingCert, TlsFiles};
use crate::admission::Admission;

/// The admission port's deadlines (`docs/operations.md`, "Connection
/// limits"); `--max-connections` sets the cap.
const ADMISSION_LIMITS: Limits = Limits {
    max_connections: 1024,
    // The API server sends its request as soon as it has connected.
    first_request: Duration::from_secs(10),
    // Above nothing the API server needs: it reuses a connection at once or
    // lets it go after its own idle timeout.
    idle: Duration::from_secs(60),
    http2_max_age: Duration::from_secs(600),
};

/// The operations port: a few scrapers and the kubelet's probes.
const OPS_LIMITS: Limits = Limits {
    max_connections: 64,
    ..ADMISSION_LIMITS
};

const OPS_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the server until a shutdown signal, then drains and returns.
pub async fn run(
    args: &ServerArgs,
    admission: Admission,
    provider: Arc<CryptoProvider>,
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let tls_config = tls_config(args, &metrics, &provider)?;
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
    let ops_app = ops_router(ops.clone());
    let ops_server = shutdown::Stoppable::spawn(|stopped| {
        connections::accept_loop(ops_listener, None, ops_app, OPS_LIMITS, stopped)
    });
    let app = admission_router(Arc::new(AppState::new(admission, metrics)));
    let limits = Limits {
        max_connections: args.max_connections,
        ..ADMISSION_LIMITS
    };
    let server = shutdown::Stoppable::spawn(|stopped| {
        connections::accept_loop(listener, Some(acceptor), app, limits, stopped)
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
    if let Some(open) = ops_server.stop().await {
        // Probes and scrapes are quick; do not wait on a stuck one.
        let _ = tokio::time::timeout(OPS_SHUTDOWN_TIMEOUT, open.shutdown()).await;
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// Serves `router` on the operations port's terms (plain HTTP, the same
/// connection limits) until `stopped` completes; `gracehook observe` uses it
/// for its `/metrics` and probes.
pub async fn serve_ops(
    listener: TcpListener,
    router: axum::Router,
    stopped: impl std::future::Future<Output = ()>,
) {
    let open = connections::accept_loop(listener, None, router, OPS_LIMITS, stopped).await;
    let _ = tokio::time::timeout(OPS_SHUTDOWN_TIMEOUT, open.shutdown()).await;
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// The rustls configuration, and the task that reloads its files.
fn tls_config(
    args: &ServerArgs,
    metrics: &Arc<Metrics>,
    provider: &Arc<CryptoProvider>,
) -> Result<ServerConfig, ServeError> {
    let mut reloader = Reloader::new(metrics.clone(), provider.clone(), args.server_names());
    let serving = serving_cert(args, &mut reloader, metrics, provider)?;
    let client_ca = match args.client_ca.as_deref() {
        Some(path) => Some(reloader.client_ca(path)?),
        None => None,
    };
    if reloader.watches_files() {
        // A tight interval would spin on the files.
        let interval = args.tls_reload_interval.max(Duration::from_millis(10));
        tokio::spawn(reloader.run(interval));
    }
    Ok(tls::server_config(serving, client_ca, provider.clone())?)
}

fn serving_cert(
    args: &ServerArgs,
    reloader: &mut Reloader,
    metrics: &Arc<Metrics>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ServingCert>, ServeError> {
    if let Some(files) = args.tls_files() {
        return Ok(reloader.serving(files)?);
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
