//! Property tests: for generated pods, the patch applies, the result is a valid
//! Pod, hooks fit in the grace period, nothing else changes, a second pass is a
//! no-op; and no input makes the review path panic.

use crate::common;

use crate::common::review_for;
use gracehook::admission::{Admission, Endpoint};
use gracehook::planner::patch::{Target, to_patch};
use gracehook::planner::plan::{Decision, plan};
use gracehook::planner::settings::{NamespaceDefaults, PrestopStyle, Settings};
use k8s_openapi::api::core::v1::Pod;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const NAMES: &[&str] = &[
    "web",
    "api",
    "worker",
    "istio-proxy",
    "metrics",
    "linkerd-proxy",
];

fn duration_text() -> impl Strategy<Value = String> {
    (0u64..400, 0usize..4).prop_map(|(s, style)| match style {
        0 => s.to_string(),
        1 => format!("{s}s"),
        2 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}ms", s * 1000 + 1),
    })
}

fn lifecycle() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(
            json!({ "postStart": { "exec": { "command": ["/warm"] } } })
        )),
        Just(Some(
            json!({ "preStop": { "exec": { "command": ["/drain"] } } })
        )),
        (1i64..60).prop_map(|s| Some(json!({ "preStop": { "sleep": { "seconds": s } } }))),
    ]
}

prop_compose! {
    fn pod_value()(
        count in 1usize..=NAMES.len(),
        lifecycles in proptest::collection::vec(lifecycle(), NAMES.len()),
        delay in proptest::option::of(duration_text()),
        timeout in proptest::option::of(duration_text()),
        margin in proptest::option::of(duration_text()),
        command in proptest::option::of(Just("apachectl -k graceful-stop".to_string())),
        per_container in proptest::collection::vec((0usize..NAMES.len(), 0usize..4, duration_text()), 0..4),
        only in proptest::option::of(proptest::collection::vec(0usize..NAMES.len(), 1..3)),
        grace in proptest::option::of(0i64..200),
        windows in proptest::bool::weighted(0.15),
        annotations_present in proptest::bool::weighted(0.8),
        extra in proptest::option::of("[a-z]{1,8}"),
    ) -> Value {
        let containers: Vec<Value> = NAMES[..count].iter().zip(&lifecycles).map(|(name, l)| {
            let mut c = json!({ "name": name, "image": "example:1" });
            if let Some(l) = l { c["lifecycle"] = l.clone(); }
            c
        }).collect();
        let mut annotations = Map::new();
        let mut put = |k: String, v: String| { annotations.insert(k, Value::String(v)); };
        if let Some(d) = delay { put("gracehook.io/drain-delay".into(), d); }
        if let Some(t) = timeout { put("gracehook.io/request-timeout".into(), t); }
        if let Some(m) = margin { put("gracehook.io/margin".into(), m); }
        if let Some(c) = command { put("gracehook.io/drain-command".into(), c); }
        for (i, kind, value) in per_container {
            let name = NAMES[i];
            match kind {
                0 => put(format!("gracehook.io/drain-delay.{name}"), value),
                1 => put(format!("gracehook.io/request-timeout.{name}"), value),
                2 => put(format!("gracehook.io/drain-command.{name}"), "nginx -s quit".into()),
                _ => put(format!("gracehook.io/inject.{name}"), "false".into()),
            }
        }
        if let Some(only) = only {
            put("gracehook.io/containers".into(), only.iter().map(|i| NAMES[*i]).collect::<Vec<_>>().join(","));
        }
        if let Some(extra) = extra { put("example.com/note".into(), extra); }
        let mut metadata = json!({ "name": "p", "namespace": "shop" });
        if annotations_present { metadata["annotations"] = Value::Object(annotations); }
        let mut spec = json!({ "containers": containers });
        if let Some(g) = grace { spec["terminationGracePeriodSeconds"] = json!(g); }
        if windows { spec["os"] = json!({ "name": "windows" }); }
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec })
    }
}

/// The pod with everything gracehook may change removed, so that the rest can
/// be compared.
fn strip(pod: &Value) -> Value {
    let mut pod = pod.clone();
    if let Some(a) = pod
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove("gracehook.io/status");
        if a.is_empty() {
            pod["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("annotations");
        }
    }
    pod["spec"]
        .as_object_mut()
        .unwrap()
        .remove("terminationGracePeriodSeconds");
    for c in pod["spec"]["containers"].as_array_mut().unwrap() {
        if let Some(l) = c.get_mut("lifecycle").and_then(Value::as_object_mut) {
            l.remove("preStop");
            if l.is_empty() {
                c.as_object_mut().unwrap().remove("lifecycle");
            }
        }
    }
    pod
}

fn settings(exec: bool) -> Settings {
    Settings {
        prestop_style: if exec {
            PrestopStyle::Exec
        } else {
            PrestopStyle::Sleep
        },
        ..Settings::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_view_plans_generated_pods_like_the_full_pod(pod in pod_value()) {
        prop_assert_eq!(crate::pod_view::assert_plans_alike(&pod), 4);
    }

    #[test]
    fn patches_apply_fit_touch_nothing_else_and_are_idempotent(original in pod_value(), exec in any::<bool>()) {
        let settings = settings(exec);
        let typed: Pod = serde_json::from_value(original.clone()).unwrap();
        let decision = plan(&typed, Some("shop"), &settings, &NamespaceDefaults::default())
            .expect("generated annotations are valid");
        let Decision::Plan(plan) = decision else { return Ok(()); };
        let patch = to_patch(&plan, Target::POD).unwrap();
        let mut patched = original.clone();
        json_patch::patch(&mut patched, &patch).expect("patch applies");
        let result: Pod = serde_json::from_value(patched.clone()).expect("still a Pod");

        // Nothing but the three allowed places changed.
        prop_assert_eq!(strip(&patched), strip(&original));
        let spec = result.spec.as_ref().unwrap();
        let grace = spec.termination_grace_period_seconds.expect("grace is set");
        if let Some(before) = original["spec"]["terminationGracePeriodSeconds"].as_i64() {
            prop_assert!(grace >= before, "grace lowered from {} to {}", before, grace);
        }
        for (i, c) in spec.containers.iter().enumerate() {
            let before = &original["spec"]["containers"][i]["lifecycle"]["preStop"];
            let after = serde_json::to_value(c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())).unwrap();
            if !before.is_null() {
                prop_assert_eq!(&after, before, "an existing preStop was changed");
            }
        }
        // Every hook gracehook added fits within the grace period.
        for (container, hook) in plan.added_hooks() {
            let handler = hook.handler();
            if let Some(sleep) = &handler.sleep {
                prop_assert!(sleep.seconds <= grace);
            }
            if handler.exec.is_some() {
                prop_assert!((container.drain_delay + container.request_timeout) as i64 <= grace);
            }
            prop_assert!(
                !(original["spec"]["os"]["name"] == "windows" && handler.exec.is_some()),
                "sh hook on a Windows pod"
            );
        }
        // A second pass is a no-op.
        let again = gracehook::planner::plan::plan(&result, Some("shop"), &settings, &NamespaceDefaults::default()).unwrap();
        if let Decision::Plan(again) = again {
            prop_assert!(again.is_noop(), "second pass: {:?}", again);
            prop_assert!(to_patch(&again, Target::POD).unwrap().0.is_empty());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Admission::new(Settings::default()).review_bytes(Endpoint::Mutate, &body);
    }

    #[test]
    fn arbitrary_annotation_values_never_panic(
        key in prop_oneof![
            Just("gracehook.io/drain-delay".to_string()),
            Just("gracehook.io/request-timeout".to_string()),
            Just("gracehook.io/margin".to_string()),
            Just("gracehook.io/containers".to_string()),
            Just("gracehook.io/drain-command".to_string()),
            Just("gracehook.io/mode".to_string()),
            Just("gracehook.io/inject".to_string()),
            Just("gracehook.io/drain-delay.web".to_string()),
            "gracehook.io/[a-z.-]{0,20}",
        ],
        value in "\\PC{0,40}",
        endpoint in prop_oneof![Just(Endpoint::Mutate), Just(Endpoint::Audit)],
    ) {
        let pod = common::web_pod(json!({ key: value }));
        let body = serde_json::to_vec(&review_for(&pod, "shop")).unwrap();
        let reviewed = Admission::new(Settings::default()).review_bytes(endpoint, &body);
        prop_assert!(reviewed.is_ok(), "{:?}", reviewed.err());
    }

    #[test]
    fn mangled_reviews_never_panic(cut in 0usize..2000, byte in any::<u8>()) {
        let body = serde_json::to_vec(&review_for(&common::web_pod(json!({})), "shop")).unwrap();
        let mut mangled = body.clone();
        if cut < mangled.len() {
            mangled[cut] = byte;
        }
        let _ = Admission::new(Settings::default()).review_bytes(Endpoint::Mutate, &mangled);
        let _ = Admission::new(Settings::default()).review_bytes(Endpoint::Audit, &body[..cut.min(body.len())]);
    }
}

/// Checks an answer the way the API server would read it: the uid echoed,
/// and a patch (if any) that applies to the object and leaves a valid Pod.
fn assert_valid_answer(review: &Value, reviewed: &gracehook::admission::Reviewed) {
    let wire: Value =
        serde_json::from_slice(&gracehook::admission::wire::to_vec(&reviewed.review).unwrap())
            .unwrap();
    let response = &wire["response"];
    assert_eq!(response["uid"], review["request"]["uid"]);
    assert!(response["allowed"].is_boolean());
    if let Some(patch) = common::response_patch(&wire) {
        let mut object = review["request"]["object"].clone();
        json_patch::patch(&mut object, &patch).expect("the patch applies");
        serde_json::from_value::<Pod>(object).expect("a valid Pod after the patch");
    }
    for warning in response["warnings"].as_array().into_iter().flatten() {
        assert!(warning.as_str().unwrap().len() <= 256, "{warning}");
    }
}

fn hostile_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,10}",
        "[a-z/~.]{1,12}",
        "\\PC{1,12}",
        Just("~1/~0".to_string()),
        Just("a/b".to_string())
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_but_well_formed_reviews_get_valid_answers(
        names in proptest::collection::vec(hostile_name(), 1..8),
        keys in proptest::collection::vec((hostile_name(), "\\PC{0,16}"), 0..6),
        grace in prop_oneof![Just(json!(null)), Just(json!(-5)), Just(json!(i64::MAX)), (0i64..100).prop_map(|g| json!(g))],
        delay in prop_oneof![Just("9223372036854775807".to_string()), Just("1e3s".to_string()), duration_text()],
        endpoint in prop_oneof![Just(Endpoint::Mutate), Just(Endpoint::Audit)],
    ) {
        let containers: Vec<Value> = names.iter().map(|n| json!({ "name": n })).collect();
        let mut annotations = Map::new();
        annotations.insert("gracehook.io/drain-delay".into(), json!(delay));
        for (i, (key, value)) in keys.iter().enumerate() {
            let name = &names[i % names.len()];
            annotations.insert(format!("gracehook.io/{key}"), json!(value));
            annotations.insert(format!("gracehook.io/request-timeout.{name}"), json!("2s"));
        }
        let pod = json!({
            "metadata": { "name": "p", "annotations": annotations },
            "spec": { "containers": containers, "terminationGracePeriodSeconds": grace }
        });
        crate::pod_view::assert_plans_alike(&pod);
        let review = review_for(&pod, "shop");
        let body = serde_json::to_vec(&review).unwrap();
        match Admission::new(Settings::default()).review_bytes(endpoint, &body) {
            Ok(reviewed) => assert_valid_answer(&review, &reviewed),
            // Negative grace periods or duplicate names are not valid pods: a 400, not a panic.
            Err(e) => prop_assert!(e.is_client_error(), "{e}"),
        }
    }
}

#[test]
fn ten_thousand_containers_are_answered() {
    let containers: Vec<Value> = (0..10_000)
        .map(|i| json!({ "name": format!("c{i}"), "image": "x" }))
        .collect();
    let pod = json!({ "metadata": { "name": "huge" }, "spec": { "containers": containers } });
    let review = review_for(&pod, "shop");
    let body = serde_json::to_vec(&review).unwrap();
    for endpoint in [Endpoint::Mutate, Endpoint::Audit] {
        let reviewed = Admission::new(Settings::default())
            .review_bytes(endpoint, &body)
            .unwrap();
        assert_valid_answer(&review, &reviewed);
    }
}

#[test]
fn deep_nesting_never_overflows_the_stack() {
    let base = serde_json::to_string(&review_for(&common::web_pod(json!({})), "shop")).unwrap();
    for depth in [200, 10_000, 1_000_000] {
        let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        // An unknown field (skipped by the typed parser) and a field parsed
        // as free-form JSON (serde_json's recursion limit applies).
        for (from, to) in [
            (
                "\"dryRun\":false",
                format!("\"dryRun\":false,\"deep\":{nested}"),
            ),
            ("\"options\":{", format!("\"options\":{{\"deep\":{nested},")),
        ] {
            let review = base.replacen(from, &to, 1);
            assert_ne!(review, base);
            let result = Admission::new(Settings::default())
                .review_bytes(Endpoint::Mutate, review.as_bytes());
            match result {
                Ok(reviewed) => {
                    let original: Value = serde_json::from_str(&base).unwrap();
                    assert_valid_answer(&original, &reviewed);
                }
                Err(e) => assert!(e.is_client_error(), "depth {depth}: {e}"),
            }
        }
    }
}
