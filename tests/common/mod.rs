//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod server;

use json_patch::Patch;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use gracehook::planner::patch::{Target, to_patch};
use gracehook::planner::plan::{Decision, Plan, plan};
use gracehook::planner::settings::{NamespaceDefaults, Settings};

pub fn pod(value: Value) -> Pod {
    serde_json::from_value(value).expect("test pod must be a valid Pod")
}

/// A pod with one container `web` and the given annotations.
pub fn web_pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "web-1", "namespace": "shop", "annotations": annotations },
        "spec": { "containers": [ { "name": "web", "image": "httpd:2.4.43" } ] }
    })
}

/// A pod for tests, built a piece at a time:
/// `TestPod::with(&["web", "api"]).annotate("gracehook.io/drain-delay", "3s").json()`.
#[derive(Debug, Clone)]
pub struct TestPod(Value);

impl TestPod {
    /// A pod named `p` with these (bare) containers and an empty annotations map.
    pub fn with(containers: &[&str]) -> TestPod {
        let containers: Vec<Value> = containers.iter().map(|n| json!({ "name": n })).collect();
        TestPod(json!({
            "metadata": { "name": "p", "annotations": {} },
            "spec": { "containers": containers }
        }))
    }

    pub fn annotate(mut self, key: &str, value: &str) -> TestPod {
        self.0["metadata"]["annotations"][key] = json!(value);
        self
    }

    pub fn spec(mut self, key: &str, value: Value) -> TestPod {
        self.0["spec"][key] = value;
        self
    }

    pub fn json(self) -> Value {
        self.0
    }
}

pub fn plan_of(value: &Value, settings: &Settings) -> Plan {
    match plan(
        &pod(value.clone()),
        Some("shop"),
        settings,
        &NamespaceDefaults::default(),
    ) {
        Ok(Decision::Plan(plan)) => plan,
        other => panic!("expected a plan, got {other:?}"),
    }
}

/// Plans `value` and applies the patch: the pod as the API server would store it.
pub fn apply(value: &Value, settings: &Settings) -> (Value, Patch) {
    let plan = plan_of(value, settings);
    let patch = to_patch(&plan, Target::POD).expect("patch");
    let mut patched = value.clone();
    json_patch::patch(&mut patched, &patch).expect("patch must apply");
    (patched, patch)
}

/// An AdmissionReview v1 for the CREATE of `pod` in `namespace`.
pub fn review_for(pod: &Value, namespace: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "requestKind": { "group": "", "version": "v1", "kind": "Pod" },
            "requestResource": { "group": "", "version": "v1", "resource": "pods" },
            "name": pod.pointer("/metadata/name").cloned().unwrap_or(json!("")),
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": { "username": "admin", "groups": ["system:authenticated"] },
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": { "apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions" }
        }
    })
}

use base64::Engine;
use gracehook::admission::{Admission, Endpoint, Outcome};

/// Runs a review through the admission layer and returns the wire JSON of the
/// response and the outcome.
pub fn admit(settings: Settings, endpoint: Endpoint, review: &Value) -> (Value, Outcome) {
    let body = serde_json::to_vec(review).unwrap();
    let reviewed = Admission::new(settings)
        .review_bytes(endpoint, &body)
        .expect("review must succeed");
    let wire = gracehook::admission::wire::to_vec(&reviewed.review).unwrap();
    (serde_json::from_slice(&wire).unwrap(), reviewed.outcome)
}

/// The JSON patch of a wire response, decoded from base64.
pub fn response_patch(response: &Value) -> Option<Patch> {
    let encoded = response.pointer("/response/patch")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("patch must be base64");
    Some(serde_json::from_slice(&bytes).expect("patch must be a JSON patch"))
}
