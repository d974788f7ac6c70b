//! The admission layer (docs/admission.md), without the network.

use crate::common::{TestPod, admit, response_patch, review_for, web_pod};
use gracehook::admission::{Admission, AdmissionError, Endpoint, Outcome};
use gracehook::planner::settings::Settings;
use serde_json::{Value, json};

fn seed_pod() -> Value {
    let mut pod = web_pod(json!({
        "gracehook.io/drain-delay": "3s",
        "gracehook.io/request-timeout": "30s",
        "gracehook.io/margin": "7s",
        "gracehook.io/drain-command": "apachectl -k graceful-stop",
    }));
    pod["spec"]["terminationGracePeriodSeconds"] = json!(30);
    pod
}

fn warnings(response: &Value) -> Vec<String> {
    response
        .pointer("/response/warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn enforce_returns_a_patch_the_pod_accepts_and_echoes_the_uid() {
    let pod = seed_pod();
    let (response, outcome) = admit(
        Settings::default(),
        Endpoint::Mutate,
        &review_for(&pod, "shop"),
    );
    assert_eq!(outcome, Outcome::Patched);
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(response["kind"], "AdmissionReview");
    assert_eq!(
        response["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(response["response"]["allowed"], true);
    assert_eq!(response["response"]["patchType"], "JSONPatch");
    let patch = response_patch(&response).expect("a patch");
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(
        patched["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"],
        json!([
            "sh",
            "-c",
            "trap 'exit 0' TERM; sleep 3; sh -c \"$1\" & sleep 30 & wait $!",
            "gracehook-drain",
            "apachectl -k graceful-stop"
        ])
    );
    assert_eq!(patched["spec"]["terminationGracePeriodSeconds"], 40);
    let w = warnings(&response);
    assert!(
        w.iter()
            .any(|w| w.contains("raised terminationGracePeriodSeconds from 30 to 40")),
        "{w:?}"
    );
}

#[test]
fn audit_reports_without_patching() {
    let (response, outcome) = admit(
        Settings::default(),
        Endpoint::Audit,
        &review_for(&seed_pod(), "shop"),
    );
    assert_eq!(outcome, Outcome::Audited);
    assert_eq!(response["response"]["allowed"], true);
    assert!(response["response"].get("patch").is_none(), "{response}");
    assert!(
        response["response"].get("patchType").is_none(),
        "{response}"
    );
    let w = warnings(&response);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        w[0],
        "gracehook audit: would set terminationGracePeriodSeconds 30 -> 40 and add preStop (sleep 3s; apachectl -k graceful-stop; sleep 30s) to container web"
    );
    let audit = &response["response"]["auditAnnotations"];
    let would: json_patch::Patch = serde_json::from_str(audit["patch"].as_str().unwrap()).unwrap();
    assert_eq!(would.0.len(), 3);
    assert!(audit["summary"].as_str().unwrap().starts_with("would set"));
}

#[test]
fn audit_warning_stays_short_for_big_pods() {
    let containers: Vec<Value> = (0..30)
        .map(|i| json!({ "name": format!("container-with-a-rather-long-name-{i}") }))
        .collect();
    let mut annotations = serde_json::Map::new();
    for i in 0..30 {
        annotations.insert(
            format!("gracehook.io/drain-delay.container-with-a-rather-long-name-{i}"),
            json!(format!("{i}s")),
        );
    }
    let pod = json!({ "metadata": { "name": "big", "annotations": annotations }, "spec": { "containers": containers } });
    let (response, _) = admit(
        Settings::default(),
        Endpoint::Audit,
        &review_for(&pod, "shop"),
    );
    let w = warnings(&response);
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with("gracehook audit: would"), "{}", w[0]);
    assert!(w[0].len() <= 200, "{} characters", w[0].len());
}

#[test]
fn dry_run_flag_turns_mutate_into_audit() {
    let settings = Settings {
        dry_run: true,
        ..Settings::default()
    };
    let (response, outcome) = admit(settings, Endpoint::Mutate, &review_for(&seed_pod(), "shop"));
    assert_eq!(outcome, Outcome::Audited);
    assert!(response_patch(&response).is_none());
    assert!(warnings(&response)[0].starts_with("gracehook audit:"));
}

#[test]
fn a_pod_can_downgrade_to_audit_but_never_upgrade() {
    let mut pod = seed_pod();
    pod["metadata"]["annotations"]["gracehook.io/mode"] = json!("audit");
    let (response, outcome) = admit(
        Settings::default(),
        Endpoint::Mutate,
        &review_for(&pod, "shop"),
    );
    assert_eq!(outcome, Outcome::Audited);
    assert!(response_patch(&response).is_none());

    pod["metadata"]["annotations"]["gracehook.io/mode"] = json!("enforce");
    let (response, outcome) = admit(
        Settings::default(),
        Endpoint::Audit,
        &review_for(&pod, "shop"),
    );
    assert_eq!(outcome, Outcome::Audited);
    assert!(response_patch(&response).is_none());
}

#[test]
fn only_pod_creates_are_handled() {
    let base = review_for(&seed_pod(), "shop");
    let mut update = base.clone();
    update["request"]["operation"] = json!("UPDATE");
    update["request"]["oldObject"] = seed_pod();
    let mut subresource = base.clone();
    subresource["request"]["subResource"] = json!("binding");
    let mut other = base.clone();
    other["request"]["resource"] =
        json!({ "group": "apps", "version": "v1", "resource": "deployments" });
    let mut delete = base.clone();
    delete["request"]["operation"] = json!("DELETE");
    delete["request"]["object"] = Value::Null;
    for review in [update, subresource, other, delete] {
        let (response, outcome) = admit(Settings::default(), Endpoint::Mutate, &review);
        assert_eq!(outcome, Outcome::Ignored, "{review}");
        assert_eq!(response["response"]["allowed"], true);
        assert!(response_patch(&response).is_none());
        assert_eq!(
            response["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
    }
}

#[test]
fn server_side_dry_run_requests_are_mutated_like_any_other() {
    let mut review = review_for(&seed_pod(), "shop");
    review["request"]["dryRun"] = json!(true);
    let (response, outcome) = admit(Settings::default(), Endpoint::Mutate, &review);
    assert_eq!(outcome, Outcome::Patched);
    assert!(response_patch(&response).is_some());
}

#[test]
fn invalid_annotation_denies_in_enforce_and_warns_in_audit() {
    let pod = web_pod(json!({ "gracehook.io/request-timeout": "thirty" }));
    let (response, outcome) = admit(
        Settings::default(),
        Endpoint::Mutate,
        &review_for(&pod, "shop"),
    );
    assert_eq!(outcome, Outcome::Denied);
    let r = &response["response"];
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 400);
    let message = r["status"]["message"].as_str().unwrap();
    for needle in [
        "gracehook.io/request-timeout",
        "\"thirty\"",
        "\"30s\"",
        "web-1",
    ] {
        assert!(message.contains(needle), "{needle} missing from {message}");
    }
    assert!(response_patch(&response).is_none());

    let (response, outcome) = admit(
        Settings::default(),
        Endpoint::Audit,
        &review_for(&pod, "shop"),
    );
    assert_eq!(outcome, Outcome::Invalid);
    assert_eq!(response["response"]["allowed"], true);
    let w = warnings(&response);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with("gracehook audit: invalid annotation gracehook.io/request-timeout"),
        "{}",
        w[0]
    );
}

#[test]
fn excluded_namespaces_opted_out_and_already_patched_pods_are_untouched() {
    let (response, outcome) = admit(
        Settings::default(),
        Endpoint::Mutate,
        &review_for(&seed_pod(), "kube-system"),
    );
    assert_eq!(outcome, Outcome::Skipped);
    assert!(response_patch(&response).is_none());

    let opted_out = web_pod(json!({ "gracehook.io/inject": "false" }));
    let (_, outcome) = admit(
        Settings::default(),
        Endpoint::Mutate,
        &review_for(&opted_out, "shop"),
    );
    assert_eq!(outcome, Outcome::Skipped);

    // Reinvocation: the patched pod comes back and must yield nothing.
    let pod = seed_pod();
    let (response, _) = admit(
        Settings::default(),
        Endpoint::Mutate,
        &review_for(&pod, "shop"),
    );
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &response_patch(&response).unwrap()).unwrap();
    let (again, outcome) = admit(
        Settings::default(),
        Endpoint::Mutate,
        &review_for(&patched, "shop"),
    );
    assert_eq!(outcome, Outcome::Unchanged);
    assert!(response_patch(&again).is_none());
    assert!(warnings(&again).is_empty());
}

#[test]
fn malformed_requests_are_client_errors() {
    let admission = Admission::new(Settings::default());
    let cases: [(&[u8], &str); 4] = [
        (b"{not json", "malformed"),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            "no request",
        ),
        (b"[]", "malformed"),
        (b"", "malformed"),
    ];
    for (body, expected) in cases {
        let err = admission.review_bytes(Endpoint::Mutate, body).unwrap_err();
        assert!(err.is_client_error());
        assert!(err.to_string().contains(expected), "{err}");
    }
    let mut review = review_for(&seed_pod(), "shop");
    review["request"]["object"]["spec"]["containers"] = json!("not a list");
    let err = admission
        .review_bytes(Endpoint::Mutate, &serde_json::to_vec(&review).unwrap())
        .unwrap_err();
    assert!(matches!(err, AdmissionError::InvalidPod { .. }), "{err}");
    assert!(err.to_string().contains("705ab4f5"), "{err}");
}

#[test]
fn namespace_defaults_sit_between_the_flags_and_the_pod() {
    use gracehook::planner::settings::NamespaceDefaults;
    let lookup: std::collections::HashMap<String, NamespaceDefaults> = [(
        "shop".to_string(),
        NamespaceDefaults {
            drain_delay: None,
            request_timeout: Some(50),
            margin: None,
        },
    )]
    .into();
    let admission =
        Admission::new(Settings::default()).with_namespaces(std::sync::Arc::new(lookup));
    let grace_of = |pod: Value, namespace: &str| {
        let body = serde_json::to_vec(&review_for(&pod, namespace)).unwrap();
        let reviewed = admission.review_bytes(Endpoint::Mutate, &body).unwrap();
        let wire: Value =
            serde_json::from_slice(&gracehook::admission::wire::to_vec(&reviewed.review).unwrap())
                .unwrap();
        let mut patched = pod.clone();
        json_patch::patch(&mut patched, &response_patch(&wire).unwrap()).unwrap();
        patched["spec"]["terminationGracePeriodSeconds"].clone()
    };
    assert_eq!(
        grace_of(web_pod(json!({})), "shop"),
        5 + 50 + 5,
        "namespace over flag"
    );
    assert_eq!(grace_of(web_pod(json!({})), "other"), 40, "flags elsewhere");
    assert_eq!(
        grace_of(
            web_pod(json!({ "gracehook.io/request-timeout": "10s" })),
            "shop"
        ),
        20,
        "pod over namespace"
    );
}

/// A pod with thousands of containers is not planned: allowed untouched,
/// with a warning that says why, in both modes; at the limit it is planned.
#[test]
fn a_pod_over_max_containers_is_allowed_untouched_with_a_warning() {
    let settings = Settings {
        max_containers: 3,
        ..Settings::default()
    };
    let names = ["a", "b", "c", "d"];
    for endpoint in [Endpoint::Mutate, Endpoint::Audit] {
        let pod = TestPod::with(&names).json();
        let (response, outcome) = admit(settings.clone(), endpoint, &review_for(&pod, "shop"));
        assert_eq!(outcome, Outcome::Skipped);
        assert_eq!(response["response"]["allowed"], true);
        assert!(response_patch(&response).is_none());
        let warned = warnings(&response);
        assert!(
            warned.iter().any(|w| w.contains("left untouched")
                && w.contains("4 containers")
                && w.contains("--max-containers")),
            "{warned:?}"
        );
        let pod = TestPod::with(&names[..3]).json();
        let (_, outcome) = admit(settings.clone(), endpoint, &review_for(&pod, "shop"));
        assert_ne!(outcome, Outcome::Skipped, "{endpoint:?}");
    }
}
