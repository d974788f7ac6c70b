//! The HTTP surface, without TLS or sockets so it can be tested alone
//! (`docs/admission.md`, "HTTP"): the admission router (`/mutate`, `/audit`)
//! and the operations router (`/healthz`, `/readyz`, `/metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::catch_panic::CatchPanicLayer;

use super::body::{self, Unread};
use super::metrics::{Answered, Metrics};
use crate::admission::{Admission, AdmissionError, Endpoint, Reviewed, wire};

/// Above the review of any pod the API server can store: measured, the
/// largest is 3.64 MiB of JSON after defaulting (`docs/operations.md`,
/// "Limits and load shedding").
pub const MAX_BODY_BYTES: usize = 7 * 1024 * 1024;

/// Bytes of request bodies held at once, across all requests: with what
/// parsing them costs, this keeps the server under its memory limit
/// (`docs/operations.md`, "Memory"). A body that does not fit is refused
/// unread (503), and the API server applies the webhook's failurePolicy.
pub const MAX_BODY_BYTES_IN_FLIGHT: usize = 16 * 1024 * 1024;

/// A body must arrive within this, once its headers have.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Bodies above this are reviewed on a blocking thread, so that one huge
/// pod does not hold up the runtime's workers, and with them probes and
/// other reviews. Below it, the hand-over would cost more than the review.
pub const BLOCKING_REVIEW_BYTES: usize = 256 * 1024;

/// What the admission routes read.
pub struct AppState {
    /// The admission layer.
    pub admission: Admission,
    /// Where requests are counted.
    pub metrics: Arc<Metrics>,
    /// Room for request bodies ([`MAX_BODY_BYTES_IN_FLIGHT`]).
    pub bodies: BodyBudget,
}

impl AppState {
    /// The state of a server with the default body budget.
    pub fn new(admission: Admission, metrics: Arc<Metrics>) -> AppState {
        AppState {
            admission,
            metrics,
            bodies: BodyBudget::new(MAX_BODY_BYTES_IN_FLIGHT),
        }
    }
}

/// Room for request bodies held at once, counted in KiB.
pub struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(Semaphore::new(kib(bytes))))
    }

    /// Room for a body of `bytes`, held until the permit is dropped; `None`
    /// when there is none now.
    fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(kib(bytes)).unwrap_or(u32::MAX);
        self.0.clone().try_acquire_many_owned(kib).ok()
    }
}

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024).min(Semaphore::MAX_PERMITS)
}

/// `/mutate` and `/audit`; every other path or method gets a JSON error.
pub fn admission_router(state: Arc<AppState>) -> Router {
    let route = |endpoint: Endpoint| -> MethodRouter<Arc<AppState>> {
        post(
            move |State(state): State<Arc<AppState>>, request: Request| async move {
                handle(state, endpoint, request).await
            },
        )
        .fallback(|request: Request| async move {
            refuse(StatusCode::METHOD_NOT_ALLOWED, "use POST", request).await
        })
    };
    let router = Router::new()
        .route(Endpoint::Mutate.path(), route(Endpoint::Mutate))
        .route(Endpoint::Audit.path(), route(Endpoint::Audit))
        .fallback(not_found)
        .with_state(state);
    with_panic_guard(router)
}

async fn not_found(request: Request) -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "no such path; use /mutate or /audit",
        request,
    )
    .await
}

/// An error answer to a request whose body is left unread.
async fn refuse(status: StatusCode, message: &str, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    body::answer_unread(error(status, message), body, parts.version, &parts.headers).await
}

/// Turns a panic in any handler into a 500, so one bad request never takes
/// the process (and every other request) down with it.
pub fn with_panic_guard(router: Router) -> Router {
    router.layer(CatchPanicLayer::custom(|_| {
        // The panic message may quote the request: keep it out of the response.
        tracing::error!("panic while answering a request");
        error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }))
}

/// One answered request: the response, and what logs and metrics say of it.
struct Answer {
    status: StatusCode,
    answered: Answered,
    response: Response,
    reviewed: Option<Reviewed>,
}

impl Answer {
    fn failed(status: StatusCode, answered: Answered, message: &str) -> Answer {
        Answer {
            status,
            answered,
            response: error(status, message),
            reviewed: None,
        }
    }

    /// A bad request whose body was not read (whole).
    async fn unread(unread: Unread, parts: &Parts) -> Answer {
        let answer = Answer::failed(unread.status, Answered::BadRequest, &unread.message);
        let response =
            body::answer_unread(answer.response, unread.body, parts.version, &parts.headers).await;
        Answer { response, ..answer }
    }
}

async fn handle(state: Arc<AppState>, endpoint: Endpoint, request: Request) -> Response {
    let _inflight = state.metrics.inflight();
    let started = Instant::now();
    let version = request.version();
    let answer = answer(&state, endpoint, request).await;
    let elapsed = started.elapsed();
    state
        .metrics
        .observe_admission(endpoint, answer.answered, elapsed.as_secs_f64());
    log(endpoint, version, &answer, elapsed.as_micros() as u64);
    answer.response
}

async fn answer(state: &Arc<AppState>, endpoint: Endpoint, request: Request) -> Answer {
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        let unread = Unread {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "Content-Type must be application/json".to_string(),
            body,
        };
        return Answer::unread(unread, &parts).await;
    }
    // A body of unknown length may be as long as the limit.
    let room = body::declared_length(&parts.headers).map_or(MAX_BODY_BYTES, |n| {
        usize::try_from(n).map_or(MAX_BODY_BYTES, |n| n.min(MAX_BODY_BYTES))
    });
    let Some(_room) = state.bodies.reserve(room) else {
        let unread = Unread {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "too many request bodies in flight; try again".to_string(),
            body,
        };
        let answer = Answer::unread(unread, &parts).await;
        return Answer {
            answered: Answered::Shed,
            ..answer
        };
    };
    let read = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        body::read(&parts.headers, body, MAX_BODY_BYTES),
    );
    let body: Bytes = match read.await {
        Ok(Ok(body)) => body,
        Ok(Err(unread)) => return Answer::unread(unread, &parts).await,
        Err(_) => {
            let message = format!(
                "the request body did not arrive within {}s",
                BODY_READ_TIMEOUT.as_secs()
            );
            return Answer::failed(StatusCode::REQUEST_TIMEOUT, Answered::Timeout, &message);
        }
    };
    let reviewed = if body.len() > BLOCKING_REVIEW_BYTES {
        let state = state.clone();
        let blocking =
            tokio::task::spawn_blocking(move || state.admission.review_bytes(endpoint, &body));
        match blocking.await {
            Ok(reviewed) => reviewed,
            Err(error) => {
                tracing::error!(%error, "the review task failed");
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                return Answer::failed(status, Answered::Error, "internal error");
            }
        }
    } else {
        state.admission.review_bytes(endpoint, &body)
    };
    match reviewed {
        Ok(reviewed) => serialise(reviewed),
        Err(e) => failed_review(&e),
    }
}

fn serialise(reviewed: Reviewed) -> Answer {
    match wire::to_vec(&reviewed.review) {
        Ok(json) => Answer {
            status: StatusCode::OK,
            answered: Answered::Review(reviewed.outcome),
            response: ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
            reviewed: Some(reviewed),
        },
        Err(e) => {
            tracing::error!(uid = %reviewed.uid, error = %e, "could not serialise the response");
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            Answer {
                reviewed: Some(reviewed),
                ..Answer::failed(status, Answered::Error, "internal error")
            }
        }
    }
}

fn failed_review(e: &AdmissionError) -> Answer {
    if e.is_client_error() {
        Answer::failed(
            StatusCode::BAD_REQUEST,
            Answered::BadRequest,
            &e.to_string(),
        )
    } else {
        tracing::error!(error = %e, "internal error");
        Answer::failed(
            StatusCode::INTERNAL_SERVER_ERROR,
            Answered::Error,
            "internal error",
        )
    }
}

/// The one log line per admission (`docs/observability.md`).
fn log(endpoint: Endpoint, version: Version, answer: &Answer, latency_us: u64) {
    let path = endpoint.path();
    let http = http_version(version);
    let outcome = answer.answered.as_str();
    match &answer.reviewed {
        Some(r) => tracing::info!(
            uid = %r.uid,
            namespace = %r.namespace,
            name = %r.name,
            path,
            http,
            mode = r.mode.as_str(),
            outcome,
            latency_us,
            "admission"
        ),
        None => tracing::warn!(
            path,
            http,
            outcome,
            status = answer.status.as_u16(),
            latency_us,
            "admission"
        ),
    }
}

/// `1.1` or `2`, as the log line writes the protocol.
fn http_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_2 => "2",
        Version::HTTP_11 => "1.1",
        Version::HTTP_10 => "1.0",
        _ => "other",
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// A JSON error body: `{"error": "...", "code": 400}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message, "code": status.as_u16() }).to_string();
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

/// Metrics that `/metrics` can encode: the webhook's, or the observer's.
pub trait Exposition: Send + Sync {
    /// The OpenMetrics text exposition.
    fn encode(&self) -> String;
}

impl Exposition for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
    }
}

/// What the operations endpoints read.
pub struct OpsState {
    /// What `/metrics` encodes.
    pub metrics: Arc<dyn Exposition>,
    /// Cleared at the first shutdown signal, so endpoints drop the pod.
    pub ready: AtomicBool,
}

/// `/healthz`, `/readyz` and `/metrics`, on plain HTTP.
pub fn ops_router(state: Arc<OpsState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(state): State<Arc<OpsState>>| async move {
                if state.ready.load(Ordering::SeqCst) {
                    (StatusCode::OK, "ok\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(state): State<Arc<OpsState>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    state.metrics.encode(),
                )
            }),
        )
        .with_state(state)
}
