//! Sidecars and mesh proxies (docs/plan.md, "Sidecars and mesh proxies"):
//! the grace period with their shutdown, the hook on classic proxies, mesh
//! settings that contradict the plan, and the same pod whichever admission
//! order the mesh injector and gracehook run in.

use crate::common::{apply, plan_of};
use gracehook::planner::settings::{NamespaceDefaults, PrestopStyle, Settings};
use gracehook::planner::{Decision, PlanError, plan};
use serde_json::{Value, json};

/// The seed's drain on `web`: 3s + 30s, margin 7s.
fn seed() -> Value {
    json!({
        "gracehook.io/drain-delay": "3s",
        "gracehook.io/request-timeout": "30s",
        "gracehook.io/margin": "7s"
    })
}

fn meshed(annotations: Value, containers: Value, init: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "web-1", "namespace": "shop", "annotations": annotations },
        "spec": { "initContainers": init, "containers": containers }
    })
}

fn with(mut annotations: Value, extra: Value) -> Value {
    if let (Some(a), Some(e)) = (annotations.as_object_mut(), extra.as_object()) {
        a.extend(e.clone());
    }
    annotations
}

fn notes(value: &Value, settings: &Settings) -> Vec<String> {
    plan_of(value, settings).notes
}

#[test]
fn a_native_sidecars_shutdown_follows_the_longest_drain() {
    let pod = meshed(
        with(
            seed(),
            json!({ "proxy.istio.io/config": "terminationDrainDuration: 20s" }),
        ),
        json!([{ "name": "web" }]),
        json!([{ "name": "istio-init" }, { "name": "istio-proxy", "restartPolicy": "Always" }]),
    );
    let (patched, _) = apply(&pod, &Settings::default());
    assert_eq!(
        patched["spec"]["terminationGracePeriodSeconds"],
        3 + 30 + 20 + 7
    );
    // No hook on any init container, native sidecar or not.
    assert_eq!(
        patched["spec"]["initContainers"],
        pod["spec"]["initContainers"]
    );
    let plan = plan_of(&pod, &Settings::default());
    assert_eq!(plan.native_sidecars[0].outlasts.shutdown.seconds, 20);
}

#[test]
fn a_classic_proxy_sleeps_through_the_drain_then_shuts_down() {
    let pod = meshed(
        seed(),
        json!([{ "name": "istio-proxy", "lifecycle": { "postStart": { "exec": { "command": ["pilot-agent", "wait"] } } } },
               { "name": "web" }]),
        json!([]),
    );
    let (patched, _) = apply(&pod, &Settings::default());
    assert_eq!(
        patched["spec"]["containers"][0]["lifecycle"],
        json!({ "postStart": { "exec": { "command": ["pilot-agent", "wait"] } },
                "preStop": { "sleep": { "seconds": 33 } } })
    );
    // Istio's default drain of 5s after the sleep.
    assert_eq!(patched["spec"]["terminationGracePeriodSeconds"], 33 + 5 + 7);
}

#[test]
fn mesh_settings_that_end_the_proxy_before_the_drain_are_warnings() {
    // Linkerd's proxy-wait-before-exit-seconds: its own /bin/sleep 5, kept.
    let linkerd = meshed(
        seed(),
        json!([{ "name": "linkerd-proxy", "lifecycle": { "preStop": { "exec": { "command": ["/bin/sleep", "5"] } } } },
               { "name": "web" }]),
        json!([]),
    );
    assert!(
        notes(&linkerd, &Settings::default()).contains(&"sidecar linkerd-proxy keeps its own preStop, which ends after 5s: with its 0s shutdown it exits before the 33s drain of web ends".to_string()),
        "{:?}",
        notes(&linkerd, &Settings::default())
    );
    // An opted-out Istio proxy with an explicit 5s drain.
    let opted_out = meshed(
        with(
            seed(),
            json!({ "gracehook.io/inject.istio-proxy": "false",
                             "proxy.istio.io/config": "terminationDrainDuration: 5s" }),
        ),
        json!([{ "name": "web" }, { "name": "istio-proxy" }]),
        json!([]),
    );
    let (patched, _) = apply(&opted_out, &Settings::default());
    assert_eq!(patched["spec"]["containers"][1].get("lifecycle"), None);
    assert!(
        notes(&opted_out, &Settings::default()).iter().any(|n| n
            == "sidecar istio-proxy is opted out: it gets SIGTERM with the application and exits 5s later, before the 33s drain of web ends"),
        "{:?}",
        notes(&opted_out, &Settings::default())
    );
    // Without the native sleep action no hook can be given to a shell-less proxy.
    let exec = Settings {
        prestop_style: PrestopStyle::Exec,
        ..Settings::default()
    };
    let classic = meshed(
        seed(),
        json!([{ "name": "web" }, { "name": "istio-proxy" }]),
        json!([]),
    );
    let (patched, _) = apply(&classic, &exec);
    assert_eq!(patched["spec"]["containers"][1].get("lifecycle"), None);
    assert!(
        notes(&classic, &exec)
            .iter()
            .any(|n| n.starts_with("sidecar istio-proxy gets no preStop")),
        "{:?}",
        notes(&classic, &exec)
    );
    // A proxy that drains longer than the application needs: nothing to say.
    let long = meshed(
        with(
            seed(),
            json!({ "gracehook.io/inject.istio-proxy": "false",
                             "proxy.istio.io/config": "terminationDrainDuration: 40s" }),
        ),
        json!([{ "name": "web" }, { "name": "istio-proxy" }]),
        json!([]),
    );
    assert!(
        !notes(&long, &Settings::default())
            .iter()
            .any(|n| n.contains("istio-proxy")),
        "{:?}",
        notes(&long, &Settings::default())
    );
}

#[test]
fn a_sidecar_shutdown_above_max_grace_names_the_annotation() {
    let pod = meshed(
        with(
            seed(),
            json!({ "gracehook.io/sidecar-shutdown.log-shipper": "2h" }),
        ),
        json!([{ "name": "web" }]),
        json!([{ "name": "log-shipper", "restartPolicy": "Always" }]),
    );
    let error = plan(
        &crate::common::pod(pod.clone()),
        Some("shop"),
        &Settings::default(),
        &NamespaceDefaults::default(),
    )
    .unwrap_err();
    let PlanError::GraceTooLong(too_long) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(too_long.key, "gracehook.io/sidecar-shutdown.log-shipper");
    assert_eq!(
        error.to_string(),
        "terminationGracePeriodSeconds would be 7240s (container web: drain delay 3s + request timeout 30s, then sidecar shutdown 7200s, plus margin 7s), above the maximum of 3600s (--max-grace); lower gracehook.io/sidecar-shutdown.log-shipper, for example gracehook.io/sidecar-shutdown.log-shipper: \"30s\""
    );
}

/// What a mesh injector adds: the proxy, classic or native.
fn inject(mut value: Value, native: bool) -> Value {
    let proxy = json!({ "name": "istio-proxy", "env": [
        { "name": "PROXY_CONFIG", "value": "{\"terminationDrainDuration\":\"20s\"}" } ] });
    if native {
        let mut proxy = proxy;
        proxy["restartPolicy"] = json!("Always");
        value["spec"]["initContainers"] = json!([proxy]);
    } else if let Some(containers) = value["spec"]["containers"].as_array_mut() {
        containers.push(proxy);
    }
    value
}

#[test]
fn the_injector_before_or_after_gracehook_gives_the_same_pod_and_a_second_pass_changes_nothing() {
    let settings = Settings::default();
    for native in [false, true] {
        let app = meshed(seed(), json!([{ "name": "web" }]), json!([]));
        // The injector first: gracehook sees the proxy at once.
        let (injector_first, _) = apply(&inject(app.clone(), native), &settings);
        // gracehook first, then the injector, then gracehook again
        // (reinvocationPolicy: IfNeeded).
        let (gracehook_first, _) = apply(&app, &settings);
        let (reinvoked, _) = apply(&inject(gracehook_first, native), &settings);
        assert_eq!(reinvoked, injector_first, "native {native}");
        assert_eq!(
            reinvoked["spec"]["terminationGracePeriodSeconds"],
            33 + 20 + 7
        );
        // Any further pass is a no-op.
        let again = plan_of(&reinvoked, &settings);
        assert!(again.is_noop(), "native {native}: {again:?}");
    }
}

#[test]
fn a_named_sidecar_shutdown_on_a_non_sidecar_is_reported_unknown() {
    let pod = meshed(
        with(seed(), json!({ "gracehook.io/sidecar-shutdown.web": "5s" })),
        json!([{ "name": "web" }]),
        json!([]),
    );
    assert!(
        notes(&pod, &Settings::default())
            .contains(&"ignored unknown annotation gracehook.io/sidecar-shutdown.web".to_string())
    );
    match plan(
        &crate::common::pod(pod.clone()),
        Some("shop"),
        &Settings::default(),
        &NamespaceDefaults::default(),
    ) {
        Ok(Decision::Plan(plan)) => assert_eq!(plan.required_grace, 40),
        other => panic!("{other:?}"),
    }
}
