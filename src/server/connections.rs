//! Connections: accepting TCP up to `--max-connections`, the TLS handshake,
//! then HTTP/1.1 or HTTP/2 (by ALPN) on each, with timeouts so that a slow or
//! stalled client cannot hold a slot for long.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Accepts connections until `stopped` completes, then returns the open ones
/// so the caller can let them finish.
pub(super) async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    max_connections: usize,
    stopped: impl Future<Output = ()>,
) -> GracefulShutdown {
    let builder = Arc::new(http_builder());
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut stopped = std::pin::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            () = &mut stopped => break,
            accepted = next_connection(&listener, &slots) => accepted,
        };
        let Some((permit, tcp, peer)) = accepted else {
            break;
        };
        let connection = Connection {
            acceptor: acceptor.clone(),
            builder: builder.clone(),
            app: app.clone(),
            watcher: graceful.watcher(),
        };
        tokio::spawn(connection.serve(tcp, peer, permit));
    }
    graceful
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        // One buffer for head and body: one TLS record per response, not two.
        .writev(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    builder
}

/// The next TCP connection, once a slot is free; `None` if the slots are gone.
async fn next_connection(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
    let permit = slots.clone().acquire_owned().await.ok()?;
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                return Some((permit, tcp, peer));
            }
            Err(error) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// What serving one connection needs.
struct Connection {
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: axum::Router,
    watcher: Watcher,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
        let _permit = permit;
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await {
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
        let service = TowerToHyperService::new(self.app);
        let connection = self.builder.serve_connection(TokioIo::new(tls), service);
        if let Err(error) = self.watcher.watch(connection.into_owned()).await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}
