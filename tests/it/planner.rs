//! Every planning rule of docs/annotations.md and docs/plan.md.

use crate::common::{TestPod, apply, plan_of, pod, web_pod};
use gracehook::planner::grace::GraceTooLong;
use gracehook::planner::settings::{NamespaceDefaults, PrestopStyle, Settings};
use gracehook::planner::{Decision, HookAction, PlanError, Skip, plan};
use serde_json::{Value, json};

fn prestop(patched: &Value, container: usize) -> Value {
    patched
        .pointer(&format!("/spec/containers/{container}/lifecycle/preStop"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn grace(patched: &Value) -> Value {
    patched
        .pointer("/spec/terminationGracePeriodSeconds")
        .cloned()
        .unwrap_or(Value::Null)
}

fn decide(value: Value, namespace: &str, settings: &Settings) -> Result<Decision, PlanError> {
    plan(
        &pod(value),
        Some(namespace),
        settings,
        &NamespaceDefaults::default(),
    )
}

#[test]
fn defaults_give_native_sleep_and_the_formula_grace() {
    let (patched, _) = apply(&web_pod(json!({})), &Settings::default());
    assert_eq!(prestop(&patched, 0), json!({ "sleep": { "seconds": 5 } }));
    assert_eq!(grace(&patched), json!(40));
}

#[test]
fn seed_recipe_with_drain_command() {
    let pod = web_pod(json!({
        "gracehook.io/drain-delay": "3s",
        "gracehook.io/request-timeout": "30s",
        "gracehook.io/margin": "7s",
        "gracehook.io/drain-command": "apachectl -k graceful-stop",
    }));
    let (patched, _) = apply(&pod, &Settings::default());
    assert_eq!(
        prestop(&patched, 0),
        json!({ "exec": { "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3; sh -c \"$1\" & sleep 30 & wait $!", "gracehook-drain", "apachectl -k graceful-stop"] } })
    );
    assert_eq!(grace(&patched), json!(40));
}

#[test]
fn exec_style_uses_sh_sleep() {
    let settings = Settings {
        prestop_style: PrestopStyle::Exec,
        ..Settings::default()
    };
    let (patched, _) = apply(
        &web_pod(json!({ "gracehook.io/drain-delay": "1.2s" })),
        &settings,
    );
    assert_eq!(
        prestop(&patched, 0),
        json!({ "exec": { "command": ["sh", "-c", "sleep 2"] } })
    );
    assert_eq!(grace(&patched), json!(2 + 30 + 5));
}

#[test]
fn flag_defaults_apply_and_namespace_defaults_sit_between_flags_and_pod() {
    let settings = Settings {
        defaults: gracehook::planner::settings::Defaults {
            drain_delay: 2,
            request_timeout: 10,
            margin: 1,
        },
        ..Settings::default()
    };
    let (patched, _) = apply(&web_pod(json!({})), &settings);
    assert_eq!(prestop(&patched, 0), json!({ "sleep": { "seconds": 2 } }));
    assert_eq!(grace(&patched), json!(13));

    let ns = NamespaceDefaults {
        drain_delay: Some(4),
        request_timeout: None,
        margin: Some(6),
    };
    let decision = plan(
        &pod(web_pod(json!({ "gracehook.io/margin": "0" }))),
        Some("shop"),
        &settings,
        &ns,
    );
    let Ok(Decision::Plan(plan)) = decision else {
        panic!("expected a plan: {decision:?}");
    };
    assert_eq!(plan.containers[0].drain_delay, 4, "namespace over flag");
    assert_eq!(plan.margin, 0, "pod over namespace");
    assert_eq!(plan.required_grace, 4 + 10);
}

/// `gracehook.io/request-timeout: 2h` on a namespace with `--max-grace 1h`
/// used to make every plain pod in it invalid. A namespace value that alone
/// does not fit is ignored; values that fit are kept, and a pod's own
/// annotations are still judged on their own.
#[test]
fn a_namespace_default_that_cannot_fit_max_grace_is_ignored() {
    let settings = Settings::default(); // 5s + 30s + 5s, max 3600s
    let ns = NamespaceDefaults {
        drain_delay: Some(10),
        request_timeout: Some(7200),
        margin: Some(3600),
    };
    let decision = plan(&pod(web_pod(json!({}))), Some("shop"), &settings, &ns);
    let Ok(Decision::Plan(planned)) = decision else {
        panic!("expected a plan: {decision:?}");
    };
    assert_eq!(
        planned.containers[0].drain_delay, 10,
        "a value that fits is kept"
    );
    assert_eq!(planned.containers[0].request_timeout, 30, "2h is ignored");
    assert_eq!(planned.margin, 5, "a margin of max-grace alone is ignored");
    assert_eq!(planned.required_grace, 10 + 30 + 5);
    // Exactly at the limit fits: 5 + 3590 + 5.
    let at_limit = NamespaceDefaults {
        request_timeout: Some(3590),
        ..NamespaceDefaults::default()
    };
    let decision = plan(&pod(web_pod(json!({}))), Some("shop"), &settings, &at_limit);
    let Ok(Decision::Plan(planned)) = decision else {
        panic!("expected a plan: {decision:?}");
    };
    assert_eq!(planned.required_grace, 3600);
    // The pod's own 2h is still its own mistake.
    let own = plan_result(
        json!({ "gracehook.io/request-timeout": "2h" }),
        &settings,
        &ns,
    );
    assert!(matches!(own, Err(PlanError::GraceTooLong(_))), "{own:?}");
}

fn plan_result(
    annotations: Value,
    settings: &Settings,
    ns: &NamespaceDefaults,
) -> Result<Decision, PlanError> {
    plan(&pod(web_pod(annotations)), Some("shop"), settings, ns)
}

#[test]
fn per_container_annotations_override_pod_annotations() {
    let pod = TestPod::with(&["web", "api"])
        .annotate("gracehook.io/drain-delay", "3")
        .annotate("gracehook.io/request-timeout", "20s")
        .annotate("gracehook.io/drain-delay.api", "10s")
        .annotate("gracehook.io/request-timeout.api", "1m")
        .annotate("gracehook.io/drain-command.web", "nginx -s quit")
        .json();
    let (patched, _) = apply(&pod, &Settings::default());
    assert_eq!(
        prestop(&patched, 0),
        json!({ "exec": { "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3; sh -c \"$1\" & sleep 20 & wait $!", "gracehook-drain", "nginx -s quit"] } })
    );
    assert_eq!(prestop(&patched, 1), json!({ "sleep": { "seconds": 10 } }));
    // max(3 + 20, 10 + 60) + 5
    assert_eq!(grace(&patched), json!(75));
}

#[test]
fn classic_sidecars_outlast_the_drain_and_opted_out_containers_get_nothing() {
    let pod = TestPod::with(&["web", "istio-proxy", "linkerd-proxy", "worker", "metrics"])
        .annotate("gracehook.io/inject.worker", "false")
        .annotate("gracehook.io/request-timeout.istio-proxy", "10m")
        .json();
    let settings = Settings {
        skip_containers: ["istio-proxy", "linkerd-proxy", "metrics"]
            .map(String::from)
            .into(),
        ..Settings::default()
    };
    let plan = plan_of(&pod, &settings);
    let names: Vec<&str> = plan.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web", "istio-proxy", "linkerd-proxy", "metrics"]);
    // web drains 5s + 30s; the sidecars sleep that long, then Istio's proxy
    // drains its default 5s; 5s of margin. A request timeout on a sidecar
    // means nothing.
    assert_eq!(plan.required_grace, 45);
    let (patched, _) = apply(&pod, &settings);
    for (i, want) in [
        (1, json!({ "sleep": { "seconds": 35 } })),
        (2, json!({ "sleep": { "seconds": 35 } })),
        (3, Value::Null),
        (4, json!({ "sleep": { "seconds": 35 } })),
    ] {
        assert_eq!(prestop(&patched, i), want, "container {i}");
    }
    assert_eq!(
        patched["metadata"]["annotations"]["gracehook.io/status"],
        json!(
            r#"{"grace":45,"containers":{"web":"sleep","istio-proxy":"sleep","linkerd-proxy":"sleep","metrics":"sleep"}}"#
        )
    );
}

#[test]
fn init_containers_native_sidecars_and_ephemeral_containers_never_get_hooks() {
    let pod = json!({
        "metadata": { "name": "p", "annotations": { "gracehook.io/containers": "web,setup,proxy" } },
        "spec": {
            "initContainers": [ { "name": "setup" }, { "name": "proxy", "restartPolicy": "Always" } ],
            "containers": [ { "name": "web" } ],
            "ephemeralContainers": [ { "name": "debug" } ]
        }
    });
    let (patched, patch) = apply(&pod, &Settings::default());
    assert_eq!(prestop(&patched, 0), json!({ "sleep": { "seconds": 5 } }));
    assert_eq!(
        patched["spec"]["initContainers"],
        pod["spec"]["initContainers"]
    );
    assert_eq!(
        patched["spec"]["ephemeralContainers"],
        pod["spec"]["ephemeralContainers"]
    );
    let text = serde_json::to_string(&patch).unwrap();
    assert!(
        !text.contains("initContainers") && !text.contains("ephemeral"),
        "{text}"
    );
    let plan = plan_of(&pod, &Settings::default());
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("setup") && n.contains("init container")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn container_list_restricts_and_reports_unknown_names() {
    let pod = TestPod::with(&["web", "api"])
        .annotate("gracehook.io/containers", "api, ghost")
        .json();
    let plan = plan_of(&pod, &Settings::default());
    let names: Vec<&str> = plan.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["api"]);
    assert_eq!(plan.containers[0].index, 1);
    assert!(
        plan.notes.iter().any(|n| n.contains("ghost")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn existing_prestop_is_kept_with_a_note_and_poststart_survives() {
    let pod = json!({
        "metadata": { "name": "p" },
        "spec": { "containers": [
            { "name": "own", "lifecycle": { "preStop": { "exec": { "command": ["/bin/drain"] } } } },
            { "name": "web", "lifecycle": { "postStart": { "exec": { "command": ["/bin/warm"] } } } }
        ] }
    });
    let plan = plan_of(&pod, &Settings::default());
    assert_eq!(plan.containers[0].action, HookAction::KeepExisting);
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("own") && n.contains("kept"))
    );
    let (patched, _) = apply(&pod, &Settings::default());
    assert_eq!(
        patched["spec"]["containers"][0]["lifecycle"],
        pod["spec"]["containers"][0]["lifecycle"]
    );
    assert_eq!(
        patched["spec"]["containers"][1]["lifecycle"],
        json!({
            "postStart": { "exec": { "command": ["/bin/warm"] } },
            "preStop": { "sleep": { "seconds": 5 } }
        })
    );
    // The kept container still counts towards the grace period.
    assert_eq!(grace(&patched), json!(40));
}

#[test]
fn mirror_pods_excluded_namespaces_and_opted_out_pods_are_skipped() {
    let settings = Settings::default();
    let mirror =
        web_pod(json!({ "kubernetes.io/config.mirror": "abc", "gracehook.io/drain-delay": "bad" }));
    assert_eq!(
        decide(mirror, "shop", &settings),
        Ok(Decision::Skip(Skip::MirrorPod))
    );
    assert_eq!(
        decide(web_pod(json!({})), "kube-system", &settings),
        Ok(Decision::Skip(Skip::ExcludedNamespace(
            "kube-system".into()
        )))
    );
    let custom = Settings {
        exclude_namespaces: ["gracehook-system".to_string()].into(),
        ..Settings::default()
    };
    assert!(matches!(
        decide(web_pod(json!({})), "gracehook-system", &custom),
        Ok(Decision::Skip(Skip::ExcludedNamespace(_)))
    ));
    assert!(matches!(
        decide(web_pod(json!({})), "kube-system", &custom),
        Ok(Decision::Plan(_))
    ));
    assert_eq!(
        decide(
            web_pod(json!({ "gracehook.io/inject": "false" })),
            "shop",
            &settings
        ),
        Ok(Decision::Skip(Skip::OptedOut))
    );
    let all_proxies =
        json!({ "metadata": {}, "spec": { "containers": [ { "name": "istio-proxy" } ] } });
    assert_eq!(
        decide(all_proxies, "shop", &settings),
        Ok(Decision::Skip(Skip::NoEligibleContainers))
    );
}

#[test]
fn windows_pods_never_get_sh() {
    let pod = TestPod::with(&["iis", "app"])
        .annotate("gracehook.io/drain-command.iis", "iisreset /stop")
        .spec("os", json!({ "name": "windows" }))
        .json();
    for style in [PrestopStyle::Sleep, PrestopStyle::Exec] {
        let settings = Settings {
            prestop_style: style,
            ..Settings::default()
        };
        let (patched, patch) = apply(&pod, &settings);
        assert!(!serde_json::to_string(&patch).unwrap().contains("\"sh\""));
        assert_eq!(prestop(&patched, 0), json!({ "sleep": { "seconds": 5 } }));
        assert_eq!(prestop(&patched, 1), json!({ "sleep": { "seconds": 5 } }));
        let plan = plan_of(&pod, &settings);
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("Windows") && n.contains("iis"))
        );
    }
}

#[test]
fn zero_delay_without_command_adds_no_hook_but_still_sets_grace() {
    let pod = web_pod(json!({ "gracehook.io/drain-delay": "0s" }));
    let plan = plan_of(&pod, &Settings::default());
    assert_eq!(plan.containers[0].action, HookAction::NoHook);
    let (patched, _) = apply(&pod, &Settings::default());
    assert_eq!(prestop(&patched, 0), Value::Null);
    assert_eq!(grace(&patched), json!(35));
}

#[test]
fn grace_is_set_raised_but_never_lowered() {
    let with_grace = |g: Value| {
        let mut p = web_pod(json!({}));
        p["spec"]["terminationGracePeriodSeconds"] = g;
        p
    };
    let (patched, patch) = apply(&with_grace(json!(30)), &Settings::default());
    assert_eq!(grace(&patched), json!(40));
    assert!(
        serde_json::to_string(&patch)
            .unwrap()
            .contains(r#""op":"replace","path":"/spec/terminationGracePeriodSeconds""#)
    );
    let (patched, _) = apply(&with_grace(json!(40)), &Settings::default());
    assert_eq!(grace(&patched), json!(40));
    let (patched, patch) = apply(&with_grace(json!(600)), &Settings::default());
    assert_eq!(grace(&patched), json!(600));
    assert!(
        !serde_json::to_string(&patch)
            .unwrap()
            .contains("terminationGracePeriodSeconds")
    );
    let (patched, patch) = apply(&web_pod(json!({})), &Settings::default());
    assert_eq!(grace(&patched), json!(40));
    assert!(
        serde_json::to_string(&patch)
            .unwrap()
            .contains(r#""op":"add","path":"/spec/terminationGracePeriodSeconds""#)
    );
}

#[test]
fn grace_above_max_is_invalid_and_names_the_culprit() {
    let settings = Settings {
        max_grace: 120,
        ..Settings::default()
    };
    let err = decide(
        web_pod(json!({ "gracehook.io/request-timeout": "2m" })),
        "shop",
        &settings,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            PlanError::GraceTooLong(ref too_long)
                if matches!(**too_long, GraceTooLong { grace: 130, max: 120, .. })
        ),
        "{text}"
    );
    assert!(text.contains("gracehook.io/request-timeout"), "{text}");
    assert!(text.contains("130s"), "{text}");
    assert!(
        decide(
            web_pod(json!({ "gracehook.io/request-timeout": "1m50s" })),
            "shop",
            &settings
        )
        .is_ok()
    );
    // Sums saturate rather than wrap around.
    let huge = web_pod(json!({
        "gracehook.io/request-timeout": "9223372036854775807",
        "gracehook.io/drain-delay": "9223372036854775807",
    }));
    assert!(matches!(
        decide(huge, "shop", &Settings::default()),
        Err(PlanError::GraceTooLong { .. })
    ));
}

#[test]
fn invalid_annotations_are_errors_naming_key_value_and_example() {
    let cases = [
        ("gracehook.io/drain-delay", "soon"),
        ("gracehook.io/request-timeout", "-3s"),
        ("gracehook.io/margin", ""),
        ("gracehook.io/drain-delay.web", "1.5"),
        ("gracehook.io/inject", "nope"),
        ("gracehook.io/mode", "strict"),
        ("gracehook.io/drain-command", " "),
        ("gracehook.io/request-timeout", "99999999999999999999s"),
    ];
    for (key, value) in cases {
        let err = decide(web_pod(json!({ key: value })), "shop", &Settings::default()).unwrap_err();
        let PlanError::Annotation(a) = &err else {
            panic!("{key}: expected an annotation error, got {err:?}");
        };
        assert_eq!(a.key, key);
        assert_eq!(a.value.trim(), value.trim(), "{key}");
        let text = err.to_string();
        assert!(
            text.contains(key) && text.contains("a valid example is"),
            "{text}"
        );
    }
}

#[test]
fn status_annotation_is_escaped_and_created_with_its_map() {
    let mut bare = web_pod(json!({}));
    bare["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let (patched, patch) = apply(&bare, &Settings::default());
    let text = serde_json::to_string(&patch).unwrap();
    assert!(
        text.contains(
            r#""op":"add","path":"/metadata/annotations","value":{"gracehook.io/status""#
        ),
        "{text}"
    );
    assert_eq!(
        patched["metadata"]["annotations"]["gracehook.io/status"],
        json!(r#"{"grace":40,"containers":{"web":"sleep"}}"#)
    );

    let (patched, patch) = apply(&web_pod(json!({ "team": "shop" })), &Settings::default());
    let text = serde_json::to_string(&patch).unwrap();
    assert!(
        text.contains(r#""path":"/metadata/annotations/gracehook.io~1status""#),
        "{text}"
    );
    assert_eq!(patched["metadata"]["annotations"]["team"], json!("shop"));
}

#[test]
fn a_patched_pod_yields_an_empty_patch() {
    for style in [PrestopStyle::Sleep, PrestopStyle::Exec] {
        let settings = Settings {
            prestop_style: style,
            ..Settings::default()
        };
        let pod = json!({
            "metadata": { "name": "p", "annotations": { "gracehook.io/drain-command.web": "apachectl -k graceful-stop" } },
            "spec": { "terminationGracePeriodSeconds": 10, "containers": [
                { "name": "web" }, { "name": "api" },
                { "name": "own", "lifecycle": { "preStop": { "httpGet": { "path": "/drain", "port": 8080 } } } }
            ] }
        });
        let (once, _) = apply(&pod, &settings);
        let again = plan_of(&once, &settings);
        assert!(again.is_noop(), "{again:?}");
        let (twice, patch) = apply(&once, &settings);
        assert!(patch.0.is_empty(), "{patch:?}");
        assert_eq!(once, twice);
    }
}

#[test]
fn unknown_gracehook_annotations_are_reported() {
    let plan = plan_of(
        &web_pod(json!({ "gracehook.io/drain-dealy": "3s" })),
        &Settings::default(),
    );
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("gracehook.io/drain-dealy")),
        "{:?}",
        plan.notes
    );
}

/// The drain hook waits out its timeout, but a server that drains and then
/// signals every process of its container (Apache prefork's kill(-1, SIGTERM))
/// ends it with 0: no FailedPreStopHook. The seed's text dies of that signal.
#[test]
fn the_drain_hook_waits_and_ends_cleanly_when_the_server_signals_it() {
    use gracehook::planner::Hook;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::Command;
    use std::time::{Duration, Instant};

    let run = |argv: &[String], signal_after: Option<Duration>| {
        let started = Instant::now();
        // Its own process group: the signal reaches the shell and its sleep,
        // as kill(-1) in a container does.
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .process_group(0)
            .spawn()
            .unwrap();
        if let Some(after) = signal_after {
            std::thread::sleep(after);
            let group = format!("-{}", child.id());
            assert!(
                Command::new("kill")
                    .args(["-TERM", "--", &group])
                    .status()
                    .unwrap()
                    .success()
            );
        }
        (child.wait().unwrap(), started.elapsed())
    };
    let hook = |timeout| Hook::Shell {
        delay: 0,
        command: Some(("true".to_string(), timeout)),
    };

    let (status, elapsed) = run(&hook(1).argv(), None);
    assert_eq!(status.code(), Some(0));
    assert!(
        elapsed >= Duration::from_secs(1),
        "did not wait its timeout: {elapsed:?}"
    );

    let (status, _) = run(&hook(30).argv(), Some(Duration::from_millis(300)));
    assert_eq!(status.code(), Some(0), "{status:?}");

    let seed = ["sh", "-c", "sleep 0; true; sleep 30"].map(String::from);
    let (status, _) = run(&seed, Some(Duration::from_millis(300)));
    assert_eq!(status.signal(), Some(15), "the seed's text: {status:?}");
}
