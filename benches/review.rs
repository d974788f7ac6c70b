//! Time per review through the admission layer (parse, plan, patch, response
//! JSON) and through the planner alone, on realistic pods.
//!
//!     cargo bench --bench review
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::too_many_lines,
    missing_docs
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gracehook::admission::wire;
use gracehook::admission::{Admission, Endpoint};
use gracehook::planner::plan::{Decision, PlanError, plan};
use gracehook::planner::settings::{NamespaceDefaults, Settings};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// The seed review: a Deployment's Apache pod as the API server sends it (~2 KB).
fn typical() -> Value {
    serde_json::from_str(include_str!("../examples/review-apache.json")).expect("example review")
}

fn with_containers(count: usize) -> Value {
    let mut review = typical();
    let template = review["request"]["object"]["spec"]["containers"][0].clone();
    let containers: Vec<Value> = (0..count)
        .map(|i| {
            let mut c = template.clone();
            c["name"] = json!(format!("container-{i}"));
            c
        })
        .collect();
    review["request"]["object"]["spec"]["containers"] = json!(containers);
    review
}

fn with_big_annotation(bytes: usize) -> Value {
    let mut review = typical();
    review["request"]["object"]["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!("x".repeat(bytes));
    review
}

/// The typical pod as Istio's injector leaves it: a classic `istio-proxy`
/// with its ~20 environment variables (a 20s drain in `PROXY_CONFIG`) and
/// `istio-init`: the sidecar planning and the environment the view reads.
fn istio_classic() -> Value {
    let mut review = typical();
    let env: Vec<Value> = (0..18)
        .map(|i| json!({"name": format!("ISTIO_META_{i}"), "value": "x".repeat(24)}))
        .chain([
            json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
            json!({"name": "PROXY_CONFIG", "value": "{\"terminationDrainDuration\":\"20s\"}"}),
        ])
        .collect();
    let spec = &mut review["request"]["object"]["spec"];
    if let Some(containers) = spec["containers"].as_array_mut() {
        containers.push(
            json!({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.28.0",
            "args": ["proxy", "sidecar"], "env": env,
            "lifecycle": {"postStart": {"exec": {"command": ["pilot-agent", "wait"]}}}}),
        );
    }
    spec["initContainers"] =
        json!([{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.28.0"}]);
    review
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    [
        ("typical", typical()),
        ("istio-classic", istio_classic()),
        ("30-containers", with_containers(30)),
        ("100KB-annotation", with_big_annotation(100 * 1024)),
    ]
    .into_iter()
    .map(|(name, review)| (name, serde_json::to_vec(&review).expect("json")))
    .collect()
}

/// One review through the admission layer, and its response's JSON.
fn review_once(admission: &Admission, endpoint: Endpoint, body: &[u8]) -> Vec<u8> {
    let reviewed = admission.review_bytes(endpoint, body).expect("review");
    wire::to_vec(&reviewed.review).expect("response")
}

fn review(c: &mut Criterion) {
    let admission = Admission::new(Settings::default());
    let mut group = c.benchmark_group("review");
    for (name, body) in cases() {
        group.throughput(Throughput::Bytes(body.len() as u64));
        for endpoint in [Endpoint::Mutate, Endpoint::Audit] {
            let id = BenchmarkId::new(endpoint.path().trim_start_matches('/'), name);
            group.bench_with_input(id, &body, |b, body| {
                b.iter(|| review_once(&admission, endpoint, black_box(body)))
            });
        }
    }
    group.finish();
}

fn plan_in_shop(pod: &Pod, settings: &Settings) -> Result<Decision, PlanError> {
    plan(pod, Some("shop"), settings, &NamespaceDefaults::default())
}

fn planner(c: &mut Criterion) {
    let settings = Settings::default();
    let mut group = c.benchmark_group("plan");
    for (name, body) in cases() {
        let review: Value = serde_json::from_slice(&body).expect("json");
        let pod: Pod = serde_json::from_value(review["request"]["object"].clone()).expect("pod");
        group.bench_with_input(BenchmarkId::from_parameter(name), &pod, |b, pod| {
            b.iter(|| plan_in_shop(black_box(pod), &settings))
        });
    }
    group.finish();
}

/// A pod of `count` containers named in `gracehook.io/containers`, each with
/// a per-container key: what used to make planning quadratic. Planned with
/// the container limit lifted, to show how planning scales.
fn named_containers(count: usize) -> Pod {
    let names: Vec<String> = (0..count).map(|i| format!("c{i}")).collect();
    let mut annotations = serde_json::Map::new();
    annotations.insert("gracehook.io/containers".into(), json!(names.join(",")));
    for name in names.iter().step_by(2) {
        annotations.insert(format!("gracehook.io/drain-delay.{name}"), json!("2s"));
    }
    let containers: Vec<Value> = names
        .iter()
        .map(|n| json!({ "name": n, "image": "busybox" }))
        .collect();
    serde_json::from_value(json!({
        "metadata": { "name": "many", "annotations": annotations },
        "spec": { "containers": containers },
    }))
    .expect("pod")
}

fn scaling(c: &mut Criterion) {
    let settings = Settings {
        max_containers: usize::MAX,
        ..Settings::default()
    };
    let mut group = c.benchmark_group("plan-named");
    group.sample_size(10);
    for count in [3_500, 35_000] {
        let pod = named_containers(count);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::from_parameter(count), &pod, |b, pod| {
            b.iter(|| plan_in_shop(black_box(pod), &settings))
        });
    }
    group.finish();
}

/// The 35,000-container review through the admission layer with the default
/// settings: refused planning by --max-containers, so what it costs is the
/// parse.
fn oversized(c: &mut Criterion) {
    let admission = Admission::new(Settings::default());
    let body = serde_json::to_vec(&with_containers(35_000)).expect("json");
    let mut group = c.benchmark_group("review-oversized");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("35000-containers", |b| {
        b.iter(|| review_once(&admission, Endpoint::Mutate, black_box(&body)))
    });
    group.finish();
}

criterion_group!(benches, review, planner, scaling, oversized);
criterion_main!(benches);
