//! `gracehook policy`: the objects it generates, their selection and
//! failure policies, and that every CEL variable is defined before it is
//! read. What the expressions compute is proven against the webhook on the
//! real API server (`tests/e2e/policy.py`); CEL runs nowhere else.

use std::collections::BTreeSet;

use gracehook::planner::{Mode, PrestopStyle, Settings};
use gracehook::policy::{self, AUDIT, ENFORCE, NOTES, Options, Policies};
use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding,
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding, Variable,
};
use serde_json::Value;

fn options(mode: Mode) -> Options {
    Options {
        settings: Settings::default(),
        mode,
        namespace_defaults: false,
    }
}

fn generate(options: &Options) -> Policies {
    policy::generate(options)
}

fn variable<'a>(variables: &'a [Variable], name: &str) -> &'a str {
    &variables
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no variable {name}"))
        .expression
}

fn mutating_variables(p: &Policies) -> &[Variable] {
    let m = p.mutating.as_ref().expect("a mutating policy");
    m.policy
        .spec
        .as_ref()
        .and_then(|s| s.variables.as_deref())
        .unwrap()
}

fn validating<'a>(
    p: &'a Policies,
    name: &str,
) -> (
    &'a ValidatingAdmissionPolicy,
    &'a ValidatingAdmissionPolicyBinding,
) {
    let v = p
        .validating
        .iter()
        .find(|v| v.policy.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no policy {name}"));
    (&v.policy, &v.binding)
}

/// The `gracehook.io/mode` values a binding's namespace selector accepts,
/// and the namespaces it excludes by name.
fn selection(resources: &MatchResources) -> (Vec<String>, Vec<String>) {
    let expressions = resources
        .namespace_selector
        .as_ref()
        .and_then(|s| s.match_expressions.clone())
        .unwrap();
    let values = |key: &str, operator: &str| {
        expressions
            .iter()
            .filter(|e| e.key == key && e.operator == operator)
            .flat_map(|e| e.values.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    (
        values("gracehook.io/mode", "In"),
        values("kubernetes.io/metadata.name", "NotIn"),
    )
}

#[test]
fn enforce_mode_mutates_denies_and_warns_in_the_labelled_namespaces() {
    let p = generate(&options(Mode::Enforce));
    let kinds: Vec<(String, String)> = p
        .documents()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("MutatingAdmissionPolicy", ENFORCE),
        ("MutatingAdmissionPolicyBinding", ENFORCE),
        ("ValidatingAdmissionPolicy", ENFORCE),
        ("ValidatingAdmissionPolicyBinding", ENFORCE),
        ("ValidatingAdmissionPolicy", NOTES),
        ("ValidatingAdmissionPolicyBinding", NOTES),
        ("ValidatingAdmissionPolicy", AUDIT),
        ("ValidatingAdmissionPolicyBinding", AUDIT),
    ];
    assert_eq!(
        kinds,
        want.map(|(k, n)| (k.to_string(), n.to_string())).to_vec()
    );

    let m = p.mutating.as_ref().unwrap();
    let spec = m.policy.spec.as_ref().unwrap();
    // Like the webhook: never block a pod because gracehook failed, and run
    // again after a sidecar injector adds containers.
    assert_eq!(spec.failure_policy.as_deref(), Some("Ignore"));
    assert_eq!(spec.reinvocation_policy.as_deref(), Some("IfNeeded"));
    let mutations = spec.mutations.as_ref().unwrap();
    assert_eq!(mutations.len(), 1);
    assert_eq!(mutations[0].patch_type, "JSONPatch");
    let excluded: Vec<String> = Settings::default().exclude_namespaces.into_iter().collect();
    let binding = m.binding.spec.as_ref().unwrap();
    assert_eq!(binding.policy_name.as_deref(), Some(ENFORCE));
    assert_eq!(
        selection(binding.match_resources.as_ref().unwrap()),
        (vec!["enforce".to_string()], excluded.clone())
    );
    let objects = binding
        .match_resources
        .as_ref()
        .and_then(|r| r.object_selector.as_ref())
        .and_then(|s| s.match_expressions.as_ref())
        .unwrap();
    assert_eq!(objects[0].key, "gracehook.io/inject");
    assert_eq!(objects[0].operator, "NotIn");

    let (deny, deny_binding) = validating(&p, ENFORCE);
    assert_eq!(
        deny.spec.as_ref().unwrap().failure_policy.as_deref(),
        Some("Fail")
    );
    assert_eq!(deny_binding.spec.validation_actions, ["Deny"]);
    let (notes, notes_binding) = validating(&p, NOTES);
    assert_eq!(
        notes.spec.as_ref().unwrap().failure_policy.as_deref(),
        Some("Ignore")
    );
    assert_eq!(notes_binding.spec.validation_actions, ["Warn"]);
    let (audit, audit_binding) = validating(&p, AUDIT);
    assert_eq!(audit_binding.spec.validation_actions, ["Warn", "Audit"]);
    assert_eq!(
        selection(audit_binding.spec.match_resources.as_ref().unwrap()),
        (vec!["audit".to_string(), "enforce".to_string()], excluded)
    );
    let annotations = audit
        .spec
        .as_ref()
        .and_then(|s| s.audit_annotations.as_ref())
        .unwrap();
    assert_eq!(annotations[0].key, "summary");
    // Enforce namespaces are only audited when a pod downgrades itself.
    let audited = variable(
        audit.spec.as_ref().unwrap().variables.as_ref().unwrap(),
        "audited",
    );
    assert!(audited.contains("== 'audit'"), "{audited}");
}

#[test]
fn audit_mode_and_dry_run_only_warn() {
    let audit = generate(&options(Mode::Audit));
    let mut dry = options(Mode::Enforce);
    dry.settings.dry_run = true;
    let dry = generate(&dry);
    for p in [&audit, &dry] {
        assert!(p.mutating.is_none());
        assert_eq!(p.validating.len(), 1);
        let (policy, binding) = validating(p, AUDIT);
        assert_eq!(binding.spec.validation_actions, ["Warn", "Audit"]);
        assert_eq!(
            selection(binding.spec.match_resources.as_ref().unwrap()).0,
            ["audit", "enforce"]
        );
        let variables = policy.spec.as_ref().unwrap().variables.as_ref().unwrap();
        assert_eq!(variable(variables, "audited"), "true");
    }
    assert_eq!(audit, dry);
}

#[test]
fn the_settings_reach_the_expressions() {
    let mut o = options(Mode::Enforce);
    o.settings.defaults.drain_delay = 2;
    o.settings.defaults.request_timeout = 21;
    o.settings.defaults.margin = 3;
    o.settings.max_grace = 123;
    o.settings.prestop_style = PrestopStyle::Exec;
    o.settings.skip_containers = BTreeSet::from(["envoy".to_string(), "it's".to_string()]);
    o.settings.exclude_namespaces = BTreeSet::new();
    let p = generate(&o);
    let v = mutating_variables(&p);
    assert!(
        variable(v, "selected").contains(r"['envoy', 'it\'s']"),
        "{}",
        variable(v, "selected")
    );
    assert!(variable(v, "drainDelay").ends_with(" : 2"));
    assert!(variable(v, "requestTimeout").ends_with(" : 21"));
    assert!(variable(v, "margin").ends_with(" : 3"));
    let grace = variable(v, "graceProblem");
    assert!(grace.contains("variables.required > 123 "), "{grace}");
    assert!(grace.contains("maximum of 123s (--max-grace)"), "{grace}");
    assert!(variable(v, "hooks").contains("(variables.windows ? 'sleep' : 'exec')"));
    // No excluded namespace: no NotIn (the API server refuses an empty one).
    let binding = p.mutating.as_ref().unwrap().binding.spec.as_ref().unwrap();
    assert_eq!(
        selection(binding.match_resources.as_ref().unwrap()),
        (vec!["enforce".to_string()], vec![])
    );

    let sleep = generate(&options(Mode::Enforce));
    let hooks = variable(mutating_variables(&sleep), "hooks");
    assert!(hooks.contains("r.delay == 0 ? '' : 'sleep'"), "{hooks}");
}

#[test]
fn the_hook_text_is_the_planners() {
    let p = generate(&options(Mode::Enforce));
    let hooks = variable(mutating_variables(&p), "hooks");
    // The planner's script for delay 3 and timeout 30, with the numbers as
    // CEL expressions, and the command as its argument.
    let script = gracehook::planner::hook::drain_script(3, 30);
    assert_eq!(
        script,
        r#"trap 'exit 0' TERM; sleep 3; sh -c "$1" & sleep 30 & wait $!"#
    );
    let cel = r#"['sh', '-c', 'trap \'exit 0\' TERM; sleep ' + string(r.delay) + '; sh -c "$1" & sleep ' + string(r.timeout) + ' & wait $!', 'gracehook-drain', string(r.command)]"#;
    assert!(hooks.contains(cel), "{hooks}");
}

#[test]
fn namespace_defaults_are_read_from_the_namespace_only_when_asked() {
    let mut o = options(Mode::Enforce);
    let without = generate(&o);
    o.namespace_defaults = true;
    let with = generate(&o);
    let delay = variable(mutating_variables(&with), "drainDelay");
    assert!(delay.contains("variables.namespaceAnnotations"), "{delay}");
    assert!(
        variable(mutating_variables(&with), "namespaceAnnotations").starts_with("namespaceObject.")
    );
    let text = serde_json::to_string(&without.documents().unwrap()).unwrap();
    assert!(!text.contains("namespaceAnnotations"));
}

/// The names `variables.NAME` an expression reads.
fn reads(expression: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = expression;
    while let Some(at) = rest.find("variables.") {
        let tail = &rest[at + "variables.".len()..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        found.insert(name);
        rest = tail;
    }
    found
}

/// The API server evaluates a variable only from the ones before it: each
/// expression of each policy reads only variables defined earlier.
#[test]
fn every_variable_is_defined_before_it_is_read() {
    let mut o = options(Mode::Enforce);
    for namespace_defaults in [false, true] {
        o.namespace_defaults = namespace_defaults;
        for mode in [Mode::Enforce, Mode::Audit] {
            o.mode = mode;
            let p = generate(&o);
            let (mut checked, mut references) = (0, 0);
            for document in p.documents().unwrap() {
                let Some(variables) = document["spec"]["variables"].as_array() else {
                    continue;
                };
                let mut defined = BTreeSet::new();
                for v in variables {
                    let name = v["name"].as_str().unwrap();
                    let read = reads(v["expression"].as_str().unwrap());
                    references += read.len();
                    let undefined: Vec<_> = read.difference(&defined).cloned().collect();
                    assert!(
                        undefined.is_empty(),
                        "{name} reads {undefined:?} before they are defined"
                    );
                    assert!(defined.insert(name.to_string()), "{name} twice");
                    checked += 1;
                }
                let mut later = Vec::new();
                collect_expressions(&document["spec"]["validations"], &mut later);
                collect_expressions(&document["spec"]["auditAnnotations"], &mut later);
                collect_expressions(&document["spec"]["mutations"], &mut later);
                assert!(!later.is_empty(), "{}", document["metadata"]["name"]);
                for e in later {
                    let undefined: Vec<_> = reads(&e).difference(&defined).cloned().collect();
                    assert!(undefined.is_empty(), "{e} reads {undefined:?}");
                }
            }
            assert!(checked > 20, "only {checked} variables");
            assert!(references > checked, "only {references} references");
        }
    }
}

fn collect_expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s)
                        if matches!(
                            k.as_str(),
                            "expression" | "messageExpression" | "valueExpression"
                        ) =>
                    {
                        out.push(s.clone());
                    }
                    _ => collect_expressions(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_expressions(v, out)),
        _ => {}
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gracehook"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("GRACEHOOK_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied()).output().unwrap()
}

/// The command prints objects k8s-openapi reads back, as YAML or JSON,
/// and takes the same planning flags as `serve`.
#[test]
fn the_command_prints_typed_objects() {
    let yaml = run(&["policy", "--default-drain-delay", "7s"], &[]);
    assert!(
        yaml.status.success(),
        "{}",
        String::from_utf8_lossy(&yaml.stderr)
    );
    let text = String::from_utf8(yaml.stdout).unwrap();
    let documents = gracehook::planner::offline::parse_documents(&text).unwrap();
    assert_eq!(documents.len(), 8);
    let json = run(
        &["policy"],
        &[
            ("GRACEHOOK_POLICY_OUTPUT", "json"),
            ("GRACEHOOK_DEFAULT_DRAIN_DELAY", "7s"),
        ],
    );
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let list: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap(), &documents);
    for item in &documents {
        match item["kind"].as_str().unwrap() {
            "MutatingAdmissionPolicy" => {
                let m: MutatingAdmissionPolicy = serde_json::from_value(item.clone()).unwrap();
                let vars = m.spec.unwrap().variables.unwrap();
                assert!(variable(&vars, "drainDelay").ends_with(" : 7"));
            }
            "MutatingAdmissionPolicyBinding" => {
                serde_json::from_value::<MutatingAdmissionPolicyBinding>(item.clone()).unwrap();
            }
            "ValidatingAdmissionPolicy" => {
                serde_json::from_value::<ValidatingAdmissionPolicy>(item.clone()).unwrap();
            }
            "ValidatingAdmissionPolicyBinding" => {
                serde_json::from_value::<ValidatingAdmissionPolicyBinding>(item.clone()).unwrap();
            }
            other => panic!("unexpected kind {other}"),
        }
    }
    let audit = run(&["policy", "--mode", "audit", "-o", "json"], &[]);
    let list: Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    let bad = run(&["policy", "--max-grace", "soon"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--max-grace"));
}

/// The chart's `policy.enabled` renders `charts/gracehook/files/policy.yaml`:
/// it must be what `gracehook policy` prints with the default settings.
#[test]
fn the_charts_policy_file_is_the_generated_one() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/gracehook/files/policy.yaml"
    );
    let file = std::fs::read_to_string(path).unwrap();
    let shipped = gracehook::planner::offline::parse_documents(&file).unwrap();
    let generated = generate(&options(Mode::Enforce)).documents().unwrap();
    assert!(
        shipped == generated,
        "{path} is out of date: regenerate it with\n  cargo run -q -- policy > charts/gracehook/files/policy.yaml"
    );
}
