//! `gracehook serve`: sockets, TLS handshakes, connections, and the shutdown
//! that gracehook teaches pods — fail readiness, keep serving for a while,
//! stop accepting, finish what is in flight, exit 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::admission::Admission;
use crate::certs;
use crate::http::{AppState, OpsState, admission_router, ops_router};
use crate::metrics::Metrics;
use crate::tls::{self, Reloader, ServingCert, TlsError, TlsFiles};

/// A slow or stalled client must not hold a connection slot for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub client_ca: Option<PathBuf>,
    pub tls_reload_interval: Duration,
    pub shutdown_delay: Duration,
    pub shutdown_timeout: Duration,
    pub max_connections: usize,
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    SelfSigned(#[from] certs::CertsError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("installing the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the server until a shutdown signal, then drains and returns.
pub async fn run(
    config: ServeConfig,
    admission: Admission,
    provider: Arc<CryptoProvider>,
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let serving = serving_cert(&config, &metrics, &provider)?;
    let tls_config = tls::server_config(serving, config.client_ca.as_deref(), provider)?;
    let acceptor = TlsAcceptor::from(Arc::new(tls_config));

    let signals = Signals::install()?;
    let listener = bind(config.listen).await?;
    let ops_listener = bind(config.metrics_listen).await?;
    let addr = listener.local_addr().unwrap_or(config.listen);
    let ops_addr = ops_listener.local_addr().unwrap_or(config.metrics_listen);

    let ops = Arc::new(OpsState {
        metrics: metrics.clone(),
        ready: true.into(),
    });
    let (ops_stop, mut ops_stopped) = watch::channel(false);
    let ops_server = tokio::spawn(
        axum::serve(ops_listener, ops_router(ops.clone()))
            .with_graceful_shutdown(async move {
                let _ = ops_stopped.changed().await;
            })
            .into_future(),
    );

    let app = admission_router(Arc::new(AppState { admission, metrics }));
    let (stop_accepting, accepting) = watch::channel(false);
    let server = tokio::spawn(accept_loop(
        listener,
        acceptor,
        app,
        config.max_connections,
        accepting,
        config.shutdown_timeout,
    ));
    tracing::info!(%addr, metrics = %ops_addr, "serving admission webhook");

    let mut signals = signals;
    let signal = signals.next().await;
    ops.ready.store(false, Ordering::SeqCst);
    tracing::info!(
        signal,
        delay_ms = config.shutdown_delay.as_millis() as u64,
        "shutting down: readiness fails, still serving while endpoints drop this pod"
    );
    // A second signal means "now".
    tokio::spawn(async move {
        let signal = signals.next().await;
        tracing::warn!(signal, "second signal: exiting at once");
        std::process::exit(1);
    });
    tokio::time::sleep(config.shutdown_delay).await;

    tracing::info!("no longer accepting connections; finishing requests in flight");
    let _ = stop_accepting.send(true);
    if let Err(e) = server.await {
        tracing::error!(error = %e, "the accept loop failed");
    }
    let _ = ops_stop.send(true);
    let _ = ops_server.await;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

fn serving_cert(
    config: &ServeConfig,
    metrics: &Arc<Metrics>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ServingCert>, ServeError> {
    match &config.tls {
        Some(files) => {
            let (reloader, serving) =
                Reloader::start(files.clone(), metrics.clone(), provider.clone())?;
            tokio::spawn(reloader.run(config.tls_reload_interval));
            Ok(serving)
        }
        None => {
            let generated = certs::self_signed(&["localhost", "127.0.0.1", "::1"])?;
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
            if let Some(t) = tls::not_after(&pair) {
                metrics.set_cert_not_after(t);
            }
            tracing::warn!(
                "NO CERTIFICATE GIVEN: serving a throw-away self-signed certificate for localhost; \
                 no API server will trust it. Pass --tls-cert and --tls-key in a cluster."
            );
            Ok(Arc::new(ServingCert::new(pair)))
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
    shutdown_timeout: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let graceful = GracefulShutdown::new();

    loop {
        let permit = tokio::select! {
            _ = stop.changed() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_ms = shutdown_timeout.as_millis() as u64,
            "requests still in flight at the shutdown timeout were cut"
        );
    }
}

/// SIGTERM (the kubelet) and SIGINT (Ctrl-C).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, ServeError> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).map_err(|source| ServeError::Signal {
            signal: "SIGTERM",
            source,
        })?;
        let int = signal(SignalKind::interrupt()).map_err(|source| ServeError::Signal {
            signal: "SIGINT",
            source,
        })?;
        Ok(Signals { term, int })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
