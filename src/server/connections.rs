//! Connections: accepting TCP up to a cap, the TLS handshake (on the
//! admission port), then HTTP/1.1 or HTTP/2 on each, with deadlines so that
//! no client — silent, slow or hostile — holds a slot for long
//! (`docs/operations.md`, "Connection limits"):
//!
//! - from accept to the first request's head: [`Limits::first_request`],
//!   which covers the TLS handshake and hyper-util's protocol detection
//!   (which has no timeout of its own);
//! - HTTP/1.1 request heads: `HEADER_READ_TIMEOUT`, which hyper also applies
//!   to a keep-alive connection waiting for its next request;
//! - no request in flight for [`Limits::idle`]: closed (HTTP/2 gets a
//!   GOAWAY, which its client retries safely);
//! - an HTTP/2 connection older than [`Limits::http2_max_age`]: GOAWAY, so
//!   a long-lived client rebalances across replicas;
//! - HTTP/2 streams, header lists and resets bounded (CVE-2023-44487);
//! - request bodies: read within a deadline by the routes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Streams one HTTP/2 connection may have open at once: the API server
/// sends one review per stream, and Go's client opens a new connection
/// past the server's limit.
const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 64;
/// Headers of a review are a few hundred bytes.
const HTTP2_MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// Streams reset by the client before they were answered (rapid reset).
const HTTP2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams this server had to reset because the client misbehaved.
const HTTP2_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 256;
/// HTTP/1.1 read buffer, and so the longest request head.
const HTTP1_MAX_BUF_SIZE: usize = 64 * 1024;
/// After a connection was told to close for being idle: how long it may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The deadlines and caps of one listener.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Open connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// From accept to the head of the first request.
    pub first_request: Duration,
    /// No request in flight for this long closes the connection.
    pub idle: Duration,
    /// An HTTP/2 connection is asked to go away at this age.
    pub http2_max_age: Duration,
}

/// The open connections of a listener: told together to finish, and waited
/// for.
pub(super) struct Open {
    stop: watch::Sender<bool>,
    alive: mpsc::Sender<()>,
    gone: mpsc::Receiver<()>,
}

impl Open {
    fn new() -> Open {
        let (stop, _) = watch::channel(false);
        let (alive, gone) = mpsc::channel(1);
        Open { stop, alive, gone }
    }

    /// Tells every connection to finish what is in flight and close, and
    /// waits until they have.
    pub(super) async fn shutdown(self) {
        let Open {
            stop,
            alive,
            mut gone,
        } = self;
        let _ = stop.send(true);
        drop(alive);
        // Every connection holds a sender: none left means all are closed.
        let _ = gone.recv().await;
    }
}

/// Accepts connections until `stopped` completes, then returns the open ones
/// so the caller can let them finish. With a `tls` acceptor each connection
/// is TLS first; without, plain HTTP (the operations port).
pub(super) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    limits: Limits,
    stopped: impl Future<Output = ()>,
) -> Open {
    let builder = Arc::new(http_builder());
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let open = Open::new();
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
            tls: tls.clone(),
            builder: builder.clone(),
            app: app.clone(),
            limits,
            stop: open.stop.subscribe(),
            _alive: open.alive.clone(),
            _permit: permit,
        };
        tokio::spawn(connection.serve(tcp, peer));
    }
    open
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(HTTP1_MAX_BUF_SIZE)
        .keep_alive(true)
        // One buffer for head and body: one TLS record per response, not two.
        .writev(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT)
        .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(HTTP2_MAX_HEADER_LIST_SIZE)
        .max_pending_accept_reset_streams(HTTP2_MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(HTTP2_MAX_LOCAL_ERROR_RESET_STREAMS);
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

/// What serving one connection needs; the slot and the liveness token go
/// when it does.
struct Connection {
    tls: Option<TlsAcceptor>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: axum::Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr) {
        let accepted = Instant::now();
        let Some(acceptor) = self.tls.clone() else {
            return self.http(tcp, peer, accepted, false).await;
        };
        // The handshake is part of the way to the first request.
        let handshake = tokio::time::timeout(self.limits.first_request, acceptor.accept(tcp));
        match handshake.await {
            Ok(Ok(tls)) => {
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                self.http(tls, peer, accepted, h2).await;
            }
            Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    /// Serves HTTP on `io` until the client is done, the connection is idle
    /// or too old, or the server shuts down.
    async fn http<I>(mut self, io: I, peer: SocketAddr, accepted: Instant, h2: bool)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new(accepted));
        let service = Tracked {
            inner: TowerToHyperService::new(self.app.clone()),
            activity: activity.clone(),
        };
        let builder = self.builder.clone();
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let mut connection = std::pin::pin!(connection);
        let age = tokio::time::sleep(self.limits.http2_max_age);
        let mut age = std::pin::pin!(age);
        let limits = self.limits;
        let mut closing = Closing::No;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    return;
                }
                () = activity.idle(limits), if closing == Closing::No => {
                    closing = Closing::Idle;
                    connection.as_mut().graceful_shutdown();
                }
                () = &mut age, if h2 && closing == Closing::No => {
                    closing = Closing::Asked;
                    connection.as_mut().graceful_shutdown();
                }
                _ = self.stop.changed(), if closing == Closing::No => {
                    closing = Closing::Asked;
                    connection.as_mut().graceful_shutdown();
                }
                // A connection told to close while idle may still be waiting
                // for bytes that never come (a silent client during protocol
                // detection): drop it, unless a request started meanwhile.
                () = tokio::time::sleep(CLOSE_GRACE), if closing == Closing::Idle => {
                    if activity.in_flight() == 0 {
                        tracing::debug!(%peer, "closed an idle connection");
                        return;
                    }
                }
            }
        }
    }
}

/// Whether a connection was told to close, and why it matters: one closed
/// for being idle may be dropped once its grace is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    No,
    Idle,
    /// By the server's shutdown, or an HTTP/2 connection's age: it finishes
    /// what is in flight.
    Asked,
}

/// What a connection is doing: requests in flight, and when it last did
/// anything.
struct Activity {
    accepted: Instant,
    in_flight: AtomicUsize,
    served: AtomicBool,
    /// Milliseconds after `accepted` of the last request's start or end.
    last: AtomicU64,
}

impl Activity {
    fn new(accepted: Instant) -> Activity {
        Activity {
            accepted,
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            last: AtomicU64::new(0),
        }
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn touch(&self) {
        let now = self.accepted.elapsed().as_millis();
        self.last
            .store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Release);
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Release);
        self.touch();
        Busy(self.clone())
    }

    /// Completes once nothing has been in flight for the limit that applies:
    /// `first_request` before the first request, `idle` after.
    async fn idle(&self, limits: Limits) {
        loop {
            let limit = if self.served.load(Ordering::Acquire) {
                limits.idle
            } else {
                limits.first_request
            };
            let since = Duration::from_millis(self.last.load(Ordering::Acquire));
            let deadline = self.accepted + since + limit;
            let now = Instant::now();
            if self.in_flight() == 0 && now >= deadline {
                return;
            }
            // Busy: look again a whole limit later.
            let wake = if self.in_flight() > 0 {
                now + limit
            } else {
                deadline
            };
            tokio::time::sleep_until(wake.into()).await;
        }
    }
}

/// A request in flight on its connection.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router, counting its requests on the connection's [`Activity`].
struct Tracked {
    inner: TowerToHyperService<axum::Router>,
    activity: Arc<Activity>,
}

type Answering = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = self.activity.begin();
        let answering = self.inner.call(request);
        Box::pin(async move {
            let answer = answering.await;
            drop(busy);
            answer
        })
    }
}
