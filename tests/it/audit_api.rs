//! `gracehook audit` against a scripted API server on 127.0.0.1: a real
//! kube-apiserver cannot be made to answer 410, 429 or 500 on demand, so
//! this one speaks just enough of the list API (lists in key order, pages
//! of two with index continue tokens) and answers what each test scripts.
//! The library is called with quick retries; the binary with its own.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use gracehook::cluster::calls::Retry;
use gracehook::cluster::{self, ClusterError, workloads};

/// One request as the scripted server saw it.
#[derive(Debug, Clone)]
struct Call {
    /// `/apis/apps/v1/deployments`.
    path: String,
    /// The `continue` parameter.
    token: Option<String>,
    /// How many requests for this path came before.
    nth: usize,
}

/// What the script answers: a status, a `Retry-After`, a body.
struct Answer(u16, Option<&'static str>, Value);

type Script = dyn Fn(&Call) -> Option<Answer> + Send + Sync;

/// The server: its kubeconfig and every request it answered.
struct FakeApi {
    kubeconfig: PathBuf,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FakeApi {
    /// Serves `objects` (by list path) and answers what `script` says
    /// instead where it says something.
    fn start(
        objects: HashMap<&'static str, Vec<Value>>,
        script: impl Fn(&Call) -> Option<Answer> + Send + Sync + 'static,
    ) -> FakeApi {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let state = (
            Arc::new(objects),
            Arc::new(script) as Arc<Script>,
            calls.clone(),
        );
        std::thread::spawn(move || serve(listener, state));
        let kubeconfig =
            std::env::temp_dir().join(format!("gracehook-fake-api-{}-{port}", std::process::id()));
        let config = json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{ "name": "fake", "cluster": { "server": format!("http://127.0.0.1:{port}") } }],
            "users": [{ "name": "fake", "user": {} }],
            "contexts": [{ "name": "fake", "context": { "cluster": "fake", "user": "fake" } }],
        });
        std::fs::write(&kubeconfig, config.to_string()).unwrap();
        FakeApi { kubeconfig, calls }
    }

    /// The requests for `path`, in order: the continue token of each.
    fn tokens(&self, path: &str) -> Vec<Option<String>> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.path == path)
            .map(|c| c.token.clone())
            .collect()
    }

    fn paths(&self) -> Vec<String> {
        let calls = self.calls.lock().unwrap();
        calls.iter().map(|c| c.path.clone()).collect()
    }

    /// The binary's `audit` with this kubeconfig.
    fn gracehook(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gracehook"));
        for (key, _) in std::env::vars() {
            if key.starts_with("GRACEHOOK_") || key == "KUBECONFIG" {
                command.env_remove(key);
            }
        }
        command
            .arg("audit")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

type State = (
    Arc<HashMap<&'static str, Vec<Value>>>,
    Arc<Script>,
    Arc<Mutex<Vec<Call>>>,
);

/// Accepts connections until the test process ends.
fn serve(listener: std::net::TcpListener, state: State) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            let service = hyper::service::service_fn(move |request| {
                let answer = answer(&state, &request);
                async move { Ok::<_, Infallible>(answer) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
}

const PAGE: usize = 2;

fn answer<B>(
    (objects, script, calls): &State,
    request: &hyper::Request<B>,
) -> hyper::Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let token = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("continue="))
            .map(str::to_string)
    });
    let call = {
        let mut calls = calls.lock().unwrap();
        let nth = calls.iter().filter(|c| c.path == path).count();
        let call = Call { path, token, nth };
        calls.push(call.clone());
        call
    };
    let Answer(code, retry_after, body) = script(&call).unwrap_or_else(|| list(objects, &call));
    let mut response = hyper::Response::builder().status(code);
    if let Some(seconds) = retry_after {
        response = response.header("Retry-After", seconds);
    }
    response
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// A page of the list at `call.path` (empty when the test gave none),
/// from the index in the continue token: `c2` is the third object on.
fn list(objects: &HashMap<&'static str, Vec<Value>>, call: &Call) -> Answer {
    let all = objects.get(call.path.as_str()).cloned().unwrap_or_default();
    let from: usize = call
        .token
        .as_deref()
        .map_or(0, |t| t.trim_start_matches('c').parse().unwrap());
    let items: Vec<Value> = all.iter().skip(from).take(PAGE).cloned().collect();
    let next = (from + PAGE < all.len()).then(|| format!("c{}", from + PAGE));
    Answer(
        200,
        None,
        json!({ "kind": "List", "apiVersion": "v1", "metadata": { "continue": next }, "items": items }),
    )
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "code": code, "reason": reason, "message": message })
}

/// A script: a Status with `code` for every request to `path`.
fn refuse(
    path: &'static str,
    code: u16,
    reason: &'static str,
    message: &'static str,
) -> impl Fn(&Call) -> Option<Answer> + Send + Sync + 'static {
    move |call| (call.path == path).then(|| Answer(code, None, status(code, reason, message)))
}

/// Asserts that the process said `text` on stderr.
fn said(output: &Output, text: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(text), "{text:?} not in {stderr}");
}

const DEPLOYMENTS: &str = "/apis/apps/v1/deployments";
const PODS: &str = "/api/v1/pods";

fn deployment(namespace: &str, name: &str) -> Value {
    json!({ "metadata": { "namespace": namespace, "name": name },
            "spec": { "selector": {}, "template": { "spec": { "containers": [{ "name": "web" }] } } } })
}

/// Five deployments in key order: `a-b/x` sorts before `a/...`.
fn five_deployments() -> HashMap<&'static str, Vec<Value>> {
    let keys = [
        ("a-b", "x"),
        ("a", "d0"),
        ("a", "d1"),
        ("a", "d2"),
        ("b", "d3"),
    ];
    let deployments = keys.iter().map(|(ns, n)| deployment(ns, n)).collect();
    HashMap::from([(DEPLOYMENTS, deployments)])
}

fn quick(tries: u32) -> Retry {
    Retry {
        tries,
        first_wait: Duration::from_millis(1),
        ..Retry::default()
    }
}

/// `namespace/name` of every workload the library hands on, in order.
fn visited(
    api: &FakeApi,
    retry: &Retry,
    namespace: Option<&str>,
) -> Result<Vec<String>, ClusterError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = cluster::client(Some(&api.kubeconfig), None).await?;
        let mut seen = Vec::new();
        workloads::visit(
            &client,
            retry,
            namespace,
            |_, _| {},
            |w| {
                seen.push(format!("{}/{}", w.namespace, w.name));
            },
        )
        .await?;
        Ok(seen)
    })
}

const ALL_FIVE: [&str; 5] = ["a-b/x", "a/d0", "a/d1", "a/d2", "b/d3"];

/// The token expires after the first page and the 410 carries no new one:
/// the list starts again and skips what was handed on already.
#[test]
fn an_expired_list_restarts_and_hands_each_workload_on_once() {
    let api = FakeApi::start(five_deployments(), |call| {
        (call.path == DEPLOYMENTS && call.token.as_deref() == Some("c2") && call.nth == 1).then(
            || {
                Answer(
                    410,
                    None,
                    status(410, "Expired", "too old resource version"),
                )
            },
        )
    });
    assert_eq!(visited(&api, &quick(1), None).unwrap(), ALL_FIVE);
    let tokens = api.tokens(DEPLOYMENTS);
    let tokens: Vec<Option<&str>> = tokens.iter().map(Option::as_deref).collect();
    assert_eq!(tokens, [None, Some("c2"), None, Some("c2"), Some("c4")]);
}

/// The 410's Status carries an inconsistent continue token: the list goes
/// on from it rather than from the start.
#[test]
fn an_expired_list_continues_with_the_token_the_410_gives() {
    let api = FakeApi::start(five_deployments(), |call| {
        let mut gone = status(410, "Expired", "continue with metadata.continue");
        gone["metadata"] = json!({ "continue": "c2" });
        (call.path == DEPLOYMENTS && call.nth == 1).then(|| Answer(410, None, gone))
    });
    assert_eq!(visited(&api, &quick(1), None).unwrap(), ALL_FIVE);
    let tokens = api.tokens(DEPLOYMENTS);
    let tokens: Vec<Option<&str>> = tokens.iter().map(Option::as_deref).collect();
    assert_eq!(tokens, [None, Some("c2"), Some("c2"), Some("c4")]);
}

/// 410 on every continue: bounded restarts, then a clear error.
#[test]
fn a_list_that_keeps_expiring_fails() {
    let api = FakeApi::start(five_deployments(), |call| {
        (call.path == DEPLOYMENTS && call.token.is_some())
            .then(|| Answer(410, None, status(410, "Expired", "too old")))
    });
    let error = visited(&api, &quick(1), None).unwrap_err().to_string();
    assert_eq!(
        error,
        "listing deployments: the API server answered 410 Expired: too old"
    );
    let restarts = Retry::default().restarts as usize;
    assert_eq!(api.tokens(DEPLOYMENTS).len(), 2 * (restarts + 1));
}

/// Throttled once, with `Retry-After: 1`: the call waits at least that
/// (the backoff alone would be 1 ms) and succeeds.
#[test]
fn a_throttled_call_waits_as_told_and_succeeds() {
    let api = FakeApi::start(five_deployments(), |call| {
        (call.path == DEPLOYMENTS && call.nth == 0).then(|| {
            Answer(
                429,
                Some("1"),
                json!("Too many requests, please try again later."),
            )
        })
    });
    let started = Instant::now();
    assert_eq!(visited(&api, &quick(2), None).unwrap(), ALL_FIVE);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After ignored"
    );
    assert_eq!(api.tokens(DEPLOYMENTS)[..2], [None, None]);
}

#[test]
fn server_errors_are_retried_a_bounded_number_of_times() {
    let api = FakeApi::start(
        five_deployments(),
        refuse(DEPLOYMENTS, 500, "InternalError", "etcd down"),
    );
    let error = visited(&api, &quick(3), None).unwrap_err().to_string();
    assert_eq!(
        error,
        "listing deployments: the API server answered 500 InternalError: etcd down (gave up after 3 tries)"
    );
    assert_eq!(api.tokens(DEPLOYMENTS).len(), 3);
}

#[test]
fn forbidden_fails_at_once_naming_the_resource() {
    let message = r#"statefulsets.apps is forbidden: User "u" cannot list resource "statefulsets""#;
    let path = "/apis/apps/v1/namespaces/shop/statefulsets";
    let api = FakeApi::start(HashMap::new(), refuse(path, 403, "Forbidden", message));
    let error = visited(&api, &quick(5), Some("shop"))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(
            "listing statefulsets in namespace shop: the API server answered 403 Forbidden: statefulsets.apps is forbidden"
        ),
        "{error}"
    );
    assert!(!error.contains("tries"), "{error}");
    assert_eq!(
        api.tokens("/apis/apps/v1/namespaces/shop/statefulsets")
            .len(),
        1
    );
}

/// `-n` gets the one Namespace and lists in it: no cluster-wide call.
#[test]
fn one_namespace_is_read_with_namespace_permissions_only() {
    let shop = HashMap::from([(
        "/apis/apps/v1/namespaces/shop/deployments",
        vec![deployment("shop", "web")],
    )]);
    let api = FakeApi::start(shop, |call| {
        (call.path == "/api/v1/namespaces/shop").then(|| {
            let labels = json!({ "gracehook.io/mode": "enforce" });
            Answer(
                200,
                None,
                json!({ "metadata": { "name": "shop", "labels": labels } }),
            )
        })
    });
    let output = api.gracehook(&["-n", "shop", "-o", "json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["workloads"][0]["name"], "web");
    assert_eq!(report["workloads"][0]["mode"], "enforce");
    for path in api.paths() {
        assert!(
            path.starts_with("/api/v1/namespaces/shop")
                || path.starts_with("/apis/apps/v1/namespaces/shop")
                || path.starts_with("/apis/batch/v1/namespaces/shop"),
            "{path}"
        );
    }
}

#[test]
fn a_namespace_that_does_not_exist_is_a_clear_error() {
    let message = r#"namespaces "nope" not found"#;
    let path = "/api/v1/namespaces/nope";
    let api = FakeApi::start(HashMap::new(), refuse(path, 404, "NotFound", message));
    let output = api.gracehook(&["-n", "nope"]);
    assert_eq!(output.status.code(), Some(1));
    said(&output, "error: namespace nope not found");
}

/// A listing that fails after the first kind: the JSON is one document
/// with what was found and `complete: false`; exit 1, whatever the risks.
#[test]
fn a_failed_listing_still_prints_one_json_document() {
    let message = "statefulsets.apps is forbidden";
    let path = "/apis/apps/v1/statefulsets";
    let api = FakeApi::start(five_deployments(), refuse(path, 403, "Forbidden", message));
    for args in [&["-o", "json"][..], &["-o", "json", "--fail-on-risk"]] {
        let output = api.gracehook(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
        assert_eq!(report["workloads"].as_array().unwrap().len(), 5);
        assert_eq!(report["summary"]["complete"], false);
        let error = report["summary"]["error"].as_str().unwrap();
        assert!(
            error.starts_with("listing statefulsets: the API server answered 403"),
            "{error}"
        );
    }
    let table = api.gracehook(&[]);
    assert_eq!(table.status.code(), Some(1));
    said(
        &table,
        "audit: the report is incomplete: 5 workloads listed before the error",
    );
    said(
        &table,
        "error: listing statefulsets: the API server answered 403",
    );
}

/// Throttled, then an expired list: the binary rides both out, reports each
/// workload once and exits 0, or 3 with `--fail-on-risk` (every one of these
/// is at risk).
#[test]
fn the_binary_rides_out_throttling_and_expiry_and_exits_3_only_for_risks() {
    let api = FakeApi::start(five_deployments(), |call| {
        match (call.path.as_str(), call.nth) {
            (DEPLOYMENTS, 0) => Some(Answer(429, Some("0"), json!("Too many requests"))),
            (DEPLOYMENTS, 2) => Some(Answer(410, None, status(410, "Expired", "too old"))),
            (PODS, 0) => Some(Answer(503, None, json!("unavailable"))),
            _ => None,
        }
    });
    let output = api.gracehook(&["-o", "json"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<String> = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{}/{}",
                w["namespace"].as_str().unwrap(),
                w["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ALL_FIVE);
    assert_eq!(report["summary"]["complete"], true);
    assert!(report["summary"].get("error").is_none());
    assert_eq!(report["summary"]["atRisk"], 5);
    let gated = api.gracehook(&["--fail-on-risk"]);
    assert_eq!(gated.status.code(), Some(3));
    said(&gated, "error: 5 workloads: 5 at risk");
}
