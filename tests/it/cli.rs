//! The built binary, run on files as a user would.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn gracehook(args: &[&str]) -> Output {
    gracehook_with(args, &[], None)
}

fn gracehook_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gracehook"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The tests must not depend on the caller's environment.
    for (key, _) in std::env::vars() {
        if key.starts_with("GRACEHOOK_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("the binary runs");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("the binary finishes")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn yaml_documents(text: &str) -> Vec<Value> {
    gracehook::planner::offline::parse_documents(text).expect("output is YAML")
}

#[test]
fn mutate_seed_deployment_gives_the_recipe_and_keeps_the_rest() {
    let output = gracehook(&["mutate", "-f", "examples/apache-deployment.yaml"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let docs = yaml_documents(&stdout(&output));
    assert_eq!(docs.len(), 1);
    let d = &docs[0];
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["selector"],
        json!({ "matchLabels": { "app": "web" } })
    );
    let template = &d["spec"]["template"];
    assert_eq!(template["spec"]["terminationGracePeriodSeconds"], 40);
    assert_eq!(
        template["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"],
        json!([
            "sh",
            "-c",
            "trap 'exit 0' TERM; sleep 3; sh -c \"$1\" & sleep 30 & wait $!",
            "gracehook-drain",
            "apachectl -k graceful-stop"
        ])
    );
    assert_eq!(
        template["metadata"]["annotations"]["gracehook.io/status"],
        r#"{"grace":40,"containers":{"web":"exec"}}"#
    );
}

#[test]
fn mutate_outputs_patch_and_json() {
    let output = gracehook(&[
        "mutate",
        "-f",
        "examples/apache-deployment.yaml",
        "-o",
        "patch",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let patch: Value = serde_json::from_str(stdout(&output).trim()).expect("one JSON patch");
    let paths: Vec<&str> = patch
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/spec/template/spec/containers/0/lifecycle",
            "/spec/template/spec/terminationGracePeriodSeconds",
            "/spec/template/metadata/annotations/gracehook.io~1status"
        ]
    );

    let output = gracehook(&[
        "mutate",
        "-f",
        "examples/apache-deployment.yaml",
        "-o",
        "json",
    ]);
    let value: Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(value["kind"], "Deployment");
    assert_eq!(
        value["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        40
    );
}

#[test]
fn mutate_handles_several_kinds_and_passes_others_through() {
    let output = gracehook(&["mutate", "-f", "tests/fixtures/workloads.yaml"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let docs = yaml_documents(&stdout(&output));
    let input = yaml_documents(&std::fs::read_to_string("tests/fixtures/workloads.yaml").unwrap());
    assert_eq!(docs.len(), 4);
    assert_eq!(docs[0], input[0], "the Service is untouched");
    let db = &docs[1]["spec"]["template"];
    assert_eq!(
        db["spec"]["containers"][0]["lifecycle"]["preStop"],
        json!({ "sleep": { "seconds": 5 } })
    );
    // The classic mesh proxy keeps serving through db's drain (5s + 30s).
    assert_eq!(
        db["spec"]["containers"][1]["lifecycle"]["preStop"],
        json!({ "sleep": { "seconds": 35 } }),
        "istio-proxy outlasts the drain"
    );
    // 35s of drain, Istio's default 5s drain of the proxy, 5s of margin.
    assert_eq!(db["spec"]["terminationGracePeriodSeconds"], 45);
    assert!(
        db["metadata"]["annotations"]["gracehook.io/status"].is_string(),
        "metadata created"
    );
    let job = &docs[2]["spec"]["jobTemplate"]["spec"]["template"];
    assert!(
        job["spec"]["containers"][0].get("lifecycle").is_none(),
        "zero delay: no hook"
    );
    assert_eq!(job["spec"]["terminationGracePeriodSeconds"], 125);
    assert_eq!(docs[3], input[3], "kube-system is excluded");
}

#[test]
fn mutate_audit_prints_what_would_change() {
    let output = gracehook(&[
        "mutate",
        "-f",
        "tests/fixtures/workloads.yaml",
        "--mode",
        "audit",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("StatefulSet shop/db: gracehook audit: would set terminationGracePeriodSeconds (unset) -> 45 and add preStop (sleep 5s) to container db and add preStop (sleep 35s) to container istio-proxy"), "{text}");
    assert!(lines[1].starts_with("CronJob shop/report: gracehook audit: would set terminationGracePeriodSeconds (unset) -> 125"), "{text}");
    assert!(
        lines[2].contains("Pod kube-system/system: no change (namespace kube-system is excluded)"),
        "{text}"
    );
}

#[test]
fn invalid_annotation_exits_1_naming_annotation_and_object() {
    let output = gracehook(&["mutate", "-f", "tests/fixtures/invalid.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "nothing printed on failure");
    let err = stderr(&output);
    for needle in [
        "Deployment shop/broken",
        "gracehook.io/request-timeout",
        "\"thirty seconds\"",
        "\"30s\"",
    ] {
        assert!(err.contains(needle), "{needle} missing from {err}");
    }
    // Audit mode reports it instead.
    let output = gracehook(&[
        "mutate",
        "-f",
        "tests/fixtures/invalid.yaml",
        "--mode",
        "audit",
    ]);
    assert!(output.status.success());
    assert!(
        stdout(&output)
            .contains("gracehook audit: invalid annotation gracehook.io/request-timeout")
    );
}

#[test]
fn usage_errors_exit_2_and_missing_files_exit_1() {
    assert_eq!(
        gracehook(&["mutate", "--no-such-flag"]).status.code(),
        Some(2)
    );
    assert_eq!(gracehook(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        gracehook(&["mutate", "-f", "x.yaml", "--default-margin", "soon"])
            .status
            .code(),
        Some(2)
    );
    let missing = gracehook(&["mutate", "-f", "tests/fixtures/does-not-exist.yaml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("does-not-exist.yaml"));
    let bad_yaml = gracehook_with(&["mutate", "-f", "-"], &[], Some(b"a: [1, 2\n"));
    assert_eq!(bad_yaml.status.code(), Some(1));
    assert!(
        stderr(&bad_yaml).contains("document 1"),
        "{}",
        stderr(&bad_yaml)
    );
}

#[test]
fn review_answers_like_the_webhook() {
    let output = gracehook(&["review", "-f", "examples/review-apache.json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        response["response"]["uid"],
        "b6f2f1a8-1c7e-4c3b-8d7a-2f3e4d5c6b7a"
    );
    assert_eq!(response["response"]["patchType"], "JSONPatch");
    assert!(
        response["response"]["patch"].is_string(),
        "base64, as the API documents"
    );

    let output = gracehook(&[
        "review",
        "-f",
        "examples/review-apache.json",
        "--path",
        "/audit",
    ]);
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(response["response"].get("patch").is_none());
    assert!(
        response["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("gracehook audit:")
    );

    let malformed = gracehook_with(&["review", "-f", "-"], &[], Some(b"{\"request\": 5}"));
    assert_eq!(malformed.status.code(), Some(1));
    assert!(
        stderr(&malformed).contains("malformed AdmissionReview"),
        "{}",
        stderr(&malformed)
    );
}

#[test]
fn every_planning_flag_reads_its_environment_variable() {
    let input = std::fs::read("examples/review-apache.json").unwrap();
    let output = gracehook_with(
        &["review", "-f", "-"],
        &[("GRACEHOOK_DRY_RUN", "true")],
        Some(&input),
    );
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        response["response"].get("patch").is_none(),
        "dry run means audit"
    );

    let pod = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app}, {name: envoy}]\n";
    let env = [
        ("GRACEHOOK_DEFAULT_DRAIN_DELAY", "9s"),
        ("GRACEHOOK_DEFAULT_REQUEST_TIMEOUT", "1m"),
        ("GRACEHOOK_DEFAULT_MARGIN", "1s"),
        ("GRACEHOOK_PRESTOP_STYLE", "exec"),
        ("GRACEHOOK_SKIP_CONTAINERS", "envoy"),
        ("GRACEHOOK_OUTPUT", "json"),
    ];
    let output = gracehook_with(&["mutate", "-f", "-"], &env, Some(pod));
    assert!(output.status.success(), "{}", stderr(&output));
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["spec"]["terminationGracePeriodSeconds"], 70);
    assert_eq!(
        value["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][2],
        "sleep 9"
    );
    assert!(value["spec"]["containers"][1].get("lifecycle").is_none());

    let output = gracehook_with(
        &["mutate", "-f", "-"],
        &[("GRACEHOOK_MAX_GRACE", "60s")],
        Some(pod),
    );
    assert_eq!(output.status.code(), Some(0), "40 <= 60");
    let output = gracehook_with(
        &["mutate", "-f", "-"],
        &[("GRACEHOOK_MAX_GRACE", "30s")],
        Some(pod),
    );
    assert_eq!(output.status.code(), Some(1), "40 > 30");
    assert!(stderr(&output).contains("--max-grace"));
    let output = gracehook_with(
        &["mutate", "-f", "-"],
        &[("GRACEHOOK_EXCLUDE_NAMESPACES", "shop")],
        Some(b"apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec: {containers: [{name: a}]}\n"),
    );
    assert!(
        !stdout(&output).contains("lifecycle"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn certs_output_verifies_for_every_service_name() {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    let out = std::env::temp_dir().join(format!("gracehook-certs-{}", std::process::id()));
    let output = gracehook(&[
        "certs",
        "--service",
        "hook",
        "--namespace",
        "ops",
        "--out",
        out.to_str().unwrap(),
        "--extra-names",
        "127.0.0.1",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let read = |name: &str| std::fs::read(out.join(name)).unwrap();
    let ca = CertificateDer::from_pem_slice(&read("ca.crt")).unwrap();
    let leaf = CertificateDer::from_pem_slice(&read("tls.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .unwrap();
    for name in [
        "hook",
        "hook.ops",
        "hook.ops.svc",
        "hook.ops.svc.cluster.local",
        "127.0.0.1",
    ] {
        let server_name = ServerName::try_from(name).unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &server_name, &[], UnixTime::now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let wrong = ServerName::try_from("hook.other.svc").unwrap();
    assert!(
        verifier
            .verify_server_cert(&leaf, &[], &wrong, &[], UnixTime::now())
            .is_err()
    );

    // The bundle is the CA, and the key matches the certificate.
    use base64::Engine;
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8(read("ca-bundle.b64")).unwrap().trim())
        .unwrap();
    assert_eq!(bundle, read("ca.crt"));
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&read("tls.key")).unwrap();
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(vec![leaf.into_owned()], key, &provider)
        .expect("key matches");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn explain_prints_the_termination_timeline() {
    for (input, golden) in [
        (
            "examples/apache-deployment.yaml",
            "tests/fixtures/explain/apache-deployment.txt",
        ),
        (
            "tests/fixtures/multi-container.yaml",
            "tests/fixtures/explain/multi-container.txt",
        ),
        (
            "tests/fixtures/mesh.yaml",
            "tests/fixtures/explain/mesh.txt",
        ),
    ] {
        let output = gracehook(&["mutate", "-f", input, "-o", "explain"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let want = std::fs::read_to_string(golden).unwrap();
        assert_eq!(stdout(&output), want, "{input} (golden file {golden})");
    }
}

#[test]
fn auto_prestop_style_follows_the_kubernetes_version() {
    let pod = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a}]}\n";
    for (version, want) in [("1.29", "exec"), ("v1.30.0", "sleep"), ("1.37", "sleep")] {
        let output = gracehook_with(
            &[
                "mutate",
                "-f",
                "-",
                "-o",
                "json",
                "--prestop-style",
                "auto",
                "--kube-version",
                version,
            ],
            &[],
            Some(pod),
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let value: Value = serde_json::from_slice(&output.stdout).unwrap();
        let pre_stop = &value["spec"]["containers"][0]["lifecycle"]["preStop"];
        assert!(pre_stop.get(want).is_some(), "{version}: {pre_stop}");
    }
    let bad = gracehook(&["mutate", "-f", "-", "--kube-version", "banana"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Installed as `kubectl-gracehook` on the PATH, the binary is found by the
/// real kubectl as a plugin, and its help speaks of `kubectl gracehook`.
#[test]
fn works_as_a_kubectl_plugin() {
    let kubectl = std::env::var_os("GRACEHOOK_KUBECTL")
        .map_or_else(|| "kubectl".into(), std::path::PathBuf::from);
    let dir = std::env::temp_dir().join(format!("gracehook-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = dir.join("kubectl-gracehook");
    let _ = std::fs::remove_file(&plugin);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_gracehook"), &plugin).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| {
        Command::new(&kubectl)
            .args(args)
            .env("PATH", &path)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("kubectl runs")
    };

    let help = run(&["gracehook", "--help"]);
    assert!(help.status.success(), "{}", stderr(&help));
    let text = stdout(&help);
    assert!(
        text.contains("Usage: kubectl gracehook [OPTIONS] <COMMAND>"),
        "{text}"
    );
    assert!(text.contains("  kubectl gracehook audit -A"), "{text}");
    assert!(!text.contains("{bin}"), "{text}");

    let explain = run(&[
        "gracehook",
        "mutate",
        "-f",
        "examples/apache-deployment.yaml",
        "-o",
        "explain",
    ]);
    assert!(explain.status.success(), "{}", stderr(&explain));
    assert!(
        stdout(&explain).contains("SIGKILL if still running"),
        "{}",
        stdout(&explain)
    );

    let usage = run(&["gracehook", "mutate", "--no-such-flag"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(
        stderr(&usage).contains("Usage: kubectl gracehook mutate"),
        "{}",
        stderr(&usage)
    );
    let _ = std::fs::remove_dir_all(&dir);

    // Under its own name it is gracehook.
    let own = gracehook(&["--help"]);
    assert!(
        stdout(&own).contains("Usage: gracehook [OPTIONS] <COMMAND>"),
        "{}",
        stdout(&own)
    );
}
