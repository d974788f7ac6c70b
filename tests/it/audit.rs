//! The audit verdicts, on pod templates in each risk state.

use crate::common;

use gracehook::cluster::risks::{Finding, assess, summary_line};
use gracehook::cluster::workloads::Workload;
use gracehook::planner::settings::{NamespaceDefaults, Settings};
use serde_json::{Value, json};

fn workload(name: &str, template: Value) -> Workload {
    Workload {
        kind: "Deployment",
        namespace: "shop".into(),
        name: name.into(),
        template: common::pod(template),
    }
}

fn verdict(template: Value) -> Finding {
    assess(
        &workload("w", template),
        Some("audit"),
        &NamespaceDefaults::default(),
        &Settings::default(),
    )
}

#[test]
fn each_risk_is_named() {
    let bare = verdict(json!({ "spec": { "containers": [ { "name": "web" } ] } }));
    assert!(
        bare.risks.iter().any(|r| r == "web: no preStop delay"),
        "{:?}",
        bare.risks
    );
    assert!(
        bare.risks
            .iter()
            .any(|r| r
                .contains("grace period 30s shorter than drain delay 5s + request timeout 30s"))
    );
    assert!(
        bare.would_set
            .contains("add preStop (sleep 5s) to container web"),
        "{}",
        bare.would_set
    );

    let long_sleep = verdict(
        json!({ "spec": { "terminationGracePeriodSeconds": 10, "containers": [
        { "name": "web", "lifecycle": { "preStop": { "sleep": { "seconds": 60 } } } } ] } }),
    );
    assert!(
        long_sleep
            .risks
            .iter()
            .any(|r| r.contains("preStop sleep 60s longer than the grace period 10s"))
    );

    let invalid = verdict(
        json!({ "metadata": { "annotations": { "gracehook.io/request-timeout": "soon" } },
        "spec": { "containers": [ { "name": "web" } ] } }),
    );
    assert!(
        invalid
            .risks
            .iter()
            .any(|r| r.contains("invalid annotation gracehook.io/request-timeout"))
    );

    let graceful = verdict(json!({
        "metadata": { "annotations": { "gracehook.io/drain-delay": "3s" } },
        "spec": { "terminationGracePeriodSeconds": 40, "containers": [
            { "name": "web", "lifecycle": { "preStop": { "exec": { "command": ["sh", "-c", "sleep 3"] } } } } ] } }));
    assert!(!graceful.at_risk(), "{:?}", graceful.risks);
    assert_eq!(graceful.containers[0].pre_stop, "sh -c \"sleep 3\"");
}

#[test]
fn sidecars_that_exit_before_the_drain_are_risks() {
    // A classic Istio proxy with an explicit 5s drain, before a 30s request
    // timeout: it gets SIGTERM with the application and exits at 5s.
    let classic = verdict(json!({
        "metadata": { "annotations": { "gracehook.io/request-timeout": "30s",
                                       "proxy.istio.io/config": "terminationDrainDuration: 5s" } },
        "spec": { "terminationGracePeriodSeconds": 60, "containers": [
            { "name": "web", "lifecycle": { "preStop": { "sleep": { "seconds": 5 } } } },
            { "name": "istio-proxy" } ] } }));
    assert_eq!(
        classic.risks,
        [
            "istio-proxy: sidecar without preStop, exits 5s after SIGTERM, before the 35s drain of web ends"
        ]
    );
    assert!(
        classic
            .would_set
            .contains("add preStop (sleep 35s) to container istio-proxy"),
        "{}",
        classic.would_set
    );
    // A native Linkerd proxy with a 30s shutdown grace period in a 40s grace.
    let native = verdict(json!({
        "metadata": { "annotations": { "config.linkerd.io/shutdown-grace-period": "30s" } },
        "spec": { "terminationGracePeriodSeconds": 40,
            "initContainers": [ { "name": "linkerd-proxy", "restartPolicy": "Always" } ],
            "containers": [
            { "name": "web", "lifecycle": { "preStop": { "sleep": { "seconds": 5 } } } } ] } }));
    assert_eq!(
        native.risks,
        [
            "linkerd-proxy: grace period 40s shorter than its SIGTERM at 35s (after the drain of web) + its shutdown (30s)"
        ]
    );
}

#[test]
fn summary() {
    let findings = vec![
        verdict(json!({ "spec": { "containers": [ { "name": "web" } ] } })),
        verdict(
            json!({ "spec": { "terminationGracePeriodSeconds": 40, "containers": [
            { "name": "web", "lifecycle": { "preStop": { "sleep": { "seconds": 5 } } } } ] } }),
        ),
    ];
    assert_eq!(
        summary_line(&findings),
        "2 workloads: 1 at risk, 1 ok; 0 in enforce namespaces, 2 in audit, 0 not opted in"
    );
}
