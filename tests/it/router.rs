//! The routers in-process, without TLS or sockets.

use crate::common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use gracehook::admission::Admission;
use gracehook::planner::settings::Settings;
use gracehook::server::metrics::Metrics;
use gracehook::server::routes::{
    AppState, BodyBudget, OpsState, admission_router, ops_router, with_panic_guard,
};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn call(router: Router, request: Request<Body>) -> (StatusCode, String) {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn boom() -> &'static str {
    panic!("secret request data")
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_500_and_the_router_keeps_serving() {
    let router = with_panic_guard(
        Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" })),
    );
    let (status, body) = call(
        router.clone(),
        Request::get("/boom").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("internal error") && !body.contains("secret"),
        "{body}"
    );
    let (status, _) = call(router, Request::get("/fine").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn admission_router_answers_reviews_and_counts_them() {
    let metrics = Arc::new(Metrics::new());
    let router = admission_router(Arc::new(AppState::new(
        Admission::new(Settings::default()),
        metrics.clone(),
    )));
    let review = common::review_for(&common::web_pod(serde_json::json!({})), "shop");
    let request = Request::post("/mutate")
        .header("content-type", "application/json; charset=utf-8")
        .body(Body::from(serde_json::to_vec(&review).unwrap()))
        .unwrap();
    let (status, body) = call(router, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""patchType":"JSONPatch""#), "{body}");
    let text = metrics.encode();
    assert!(
        text.contains(r#"gracehook_admission_requests_total{path="/mutate",outcome="patched"} 1"#),
        "{text}"
    );
    assert!(text.contains("gracehook_inflight_requests 0"), "{text}");
}

#[tokio::test]
async fn readiness_follows_the_flag() {
    let state = Arc::new(OpsState {
        metrics: Arc::new(Metrics::new()),
        ready: true.into(),
    });
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    assert_eq!(
        call(ops_router(state.clone()), get("/readyz")).await.0,
        StatusCode::OK
    );
    state
        .ready
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        call(ops_router(state.clone()), get("/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        call(ops_router(state.clone()), get("/healthz")).await.0,
        StatusCode::OK
    );
    let (status, text) = call(ops_router(state), get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "gracehook_admission_duration_seconds",
        "gracehook_inflight_requests",
        "gracehook_tls_cert_not_after_seconds",
        "gracehook_admission_requests",
        "gracehook_tls_reloads",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}

/// With no room left for another body, a review is refused unread with 503
/// (the API server then applies the webhook's failurePolicy), and counted.
#[tokio::test]
async fn a_body_that_does_not_fit_the_budget_is_shed_and_counted() {
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(AppState {
        admission: Admission::new(Settings::default()),
        metrics: metrics.clone(),
        bodies: BodyBudget::new(4 * 1024),
    });
    let review = serde_json::to_vec(&common::review_for(
        &common::web_pod(serde_json::json!({ "big": "x".repeat(8 * 1024) })),
        "shop",
    ))
    .unwrap();
    let request = |body: Vec<u8>| {
        Request::post("/mutate")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(Body::from(body))
            .unwrap()
    };
    let (status, body) = call(admission_router(state.clone()), request(review)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let small = serde_json::to_vec(&common::review_for(
        &common::web_pod(serde_json::json!({})),
        "shop",
    ))
    .unwrap();
    let (status, body) = call(admission_router(state), request(small)).await;
    assert_eq!(status, StatusCode::OK, "the room is back: {body}");
    let text = metrics.encode();
    assert!(
        text.contains(r#"gracehook_admission_requests_total{path="/mutate",outcome="shed"} 1"#),
        "{text}"
    );
}
