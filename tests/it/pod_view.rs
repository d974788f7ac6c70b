//! The fast path reads a pod through `PodView` (only the fields the planner
//! uses); these tests prove it plans exactly as the full k8s-openapi `Pod`
//! does, on every fixture here and on the generated pods of `properties`.

use gracehook::admission::pod_view::PodView;
use gracehook::planner::offline::parse_documents;
use gracehook::planner::patch::{Target, to_patch};
use gracehook::planner::settings::{NamespaceDefaults, PrestopStyle, Settings};
use gracehook::planner::{Decision, Mode, plan, plan_in};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::common;

/// Plans `pod` both ways, with every setting that changes the plan, and
/// asserts the same decision, patch, names and mode. Returns how many
/// decisions were compared.
pub fn assert_plans_alike(pod: &Value) -> usize {
    let Ok(full) = serde_json::from_value::<Pod>(pod.clone()) else {
        // Not a pod k8s-openapi reads: the view is only a fast path, and a
        // view that fails falls back to the full parse (tests/it/admission.rs).
        return 0;
    };
    let viewed = serde_json::from_value::<PodView>(pod.clone())
        .expect("whatever k8s-openapi reads, the view reads")
        .into_pod();
    let (a, b) = (&full.metadata, &viewed.metadata);
    assert_eq!(
        (&a.name, &a.generate_name, &a.namespace, &a.annotations),
        (&b.name, &b.generate_name, &b.namespace, &b.annotations)
    );
    let mode = |pod: &Pod| {
        plan_in(
            pod,
            None,
            &Settings::default(),
            &NamespaceDefaults::default(),
            Mode::Enforce,
        )
        .mode
    };
    assert_eq!(mode(&full), mode(&viewed));
    let mut compared = 0;
    for style in [PrestopStyle::Sleep, PrestopStyle::Exec] {
        let settings = Settings {
            prestop_style: style,
            ..Settings::default()
        };
        for namespace in ["shop", "kube-system"] {
            let decide =
                |p: &Pod| plan(p, Some(namespace), &settings, &NamespaceDefaults::default());
            let (full_decision, view_decision) = (decide(&full), decide(&viewed));
            assert_eq!(full_decision, view_decision, "{pod}");
            if let Ok(Decision::Plan(plan)) = &full_decision {
                assert_eq!(
                    serde_json::to_value(to_patch(plan, Target::POD).unwrap()).unwrap(),
                    serde_json::to_value(match &view_decision {
                        Ok(Decision::Plan(p)) => to_patch(p, Target::POD).unwrap(),
                        other => panic!("{other:?}"),
                    })
                    .unwrap()
                );
            }
            compared += 1;
        }
    }
    compared
}

/// Every pod and pod template in the repository's examples and fixtures.
fn fixture_pods() -> Vec<Value> {
    let mut pods = Vec::new();
    let review: Value =
        serde_json::from_str(include_str!("../../examples/review-apache.json")).unwrap();
    pods.push(review["request"]["object"].clone());
    for text in [
        include_str!("../../examples/apache-deployment.yaml"),
        include_str!("../fixtures/workloads.yaml"),
        include_str!("../fixtures/multi-container.yaml"),
        include_str!("../fixtures/mesh.yaml"),
        include_str!("../fixtures/invalid.yaml"),
    ] {
        for doc in parse_documents(text).unwrap() {
            if doc["kind"] == "Pod" {
                pods.push(doc.clone());
            }
            for pointer in ["/spec/template", "/spec/jobTemplate/spec/template"] {
                if let Some(p) = doc.pointer(pointer) {
                    pods.push(p.clone());
                }
            }
        }
    }
    // And the shapes the fixtures lack: hooks of its own, init containers and
    // native sidecars, Windows, a grace period, no annotations at all.
    pods.push(common::web_pod(serde_json::json!({})));
    pods.push(serde_json::json!({
        "metadata": { "generateName": "web-7d4b9-", "namespace": "shop",
                      "annotations": { "gracehook.io/drain-command.api": "nginx -s quit" } },
        "spec": {
            "terminationGracePeriodSeconds": 10,
            "os": { "name": "linux" },
            "initContainers": [ { "name": "setup" }, { "name": "proxy", "restartPolicy": "Always" } ],
            "containers": [
                { "name": "web", "lifecycle": { "postStart": { "exec": { "command": ["/warm"] } } } },
                { "name": "api", "lifecycle": { "preStop": { "sleep": { "seconds": 3 } } } },
                { "name": "istio-proxy" }
            ]
        }
    }));
    pods.push(serde_json::json!({
        "metadata": { "name": "iis", "annotations": { "gracehook.io/drain-command": "iisreset /stop" } },
        "spec": { "os": { "name": "windows" }, "containers": [ { "name": "iis" } ] }
    }));
    pods.push(serde_json::json!({ "metadata": { "name": "bare" } }));
    pods
}

#[test]
fn the_view_plans_every_fixture_like_the_full_pod() {
    let pods = fixture_pods();
    assert!(pods.len() >= 11, "only {} fixture pods", pods.len());
    let compared: usize = pods.iter().map(assert_plans_alike).sum();
    assert_eq!(compared, pods.len() * 4, "a fixture was not compared");
}

#[test]
fn the_view_skips_what_the_planner_never_reads() {
    // A field gracehook does not read is not checked: the documented difference.
    let pod = serde_json::json!({
        "metadata": { "name": "p", "labels": 5, "managedFields": "x" },
        "spec": { "containers": [ { "name": "web", "image": 42, "ports": "all" } ] }
    });
    assert!(serde_json::from_value::<Pod>(pod.clone()).is_err());
    let viewed = serde_json::from_value::<PodView>(pod).unwrap().into_pod();
    let spec = viewed.spec.unwrap();
    assert_eq!(spec.containers[0].name, "web");
    assert_eq!(spec.containers[0].image, None);
    assert_eq!(viewed.metadata.labels, None);
}
