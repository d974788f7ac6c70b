//! The manifests, rendered with the real `kubectl kustomize`, checked against
//! what docs/admission.md and the README promise operators.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// `kubectl` from `GRACEHOOK_KUBECTL` (set by tests/run to the provisioned
/// one), else from PATH.
fn kubectl() -> PathBuf {
    std::env::var_os("GRACEHOOK_KUBECTL").map_or_else(|| "kubectl".into(), PathBuf::from)
}

fn render(dir: &Path) -> Vec<Value> {
    let output = Command::new(kubectl())
        .args(["kustomize", dir.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {:?} (run tests/e2e/provision first): {e}",
                kubectl()
            )
        });
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    gracehook::planner::offline::parse_documents(&String::from_utf8_lossy(&output.stdout)).unwrap()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_of(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn base_deployment_is_highly_available_and_locked_down() {
    let objects = render(&repo().join("manifests/base"));
    let deployment = find(&objects, "Deployment", "gracehook");
    let spec = &deployment["spec"];
    assert!(spec["replicas"].as_i64().unwrap() >= 2);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &spec["template"]["spec"];
    assert!(
        !pod["topologySpreadConstraints"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["securityContext"]["runAsUser"].as_i64().unwrap() > 0);
    // Found on a real node (tests/node): without it the non-root process
    // cannot read the Secret's key, mode 0440 and owned by root.
    let secret_mode = pod["volumes"][0]["secret"]["defaultMode"].as_i64().unwrap();
    assert!(
        secret_mode & 0o004 != 0
            || pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"],
        "the TLS key is unreadable for the pod's user"
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for kind in ["requests", "limits"] {
        assert!(container["resources"][kind]["memory"].is_string(), "{kind}");
        assert!(container["resources"][kind]["cpu"].is_string(), "{kind}");
    }
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "metrics");

    // Its own graceful shutdown fits in its grace period.
    let sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .unwrap();
    let env = env_of(container);
    let seconds = |name: &str| {
        let value = &env.iter().find(|(k, _)| k == name).unwrap().1;
        gracehook::planner::duration::parse_seconds(value).unwrap() as i64
    };
    let needed =
        sleep + seconds("GRACEHOOK_SHUTDOWN_DELAY") + seconds("GRACEHOOK_SHUTDOWN_TIMEOUT");
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap() > needed);

    // The TLS Secret is mounted where the env vars point.
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert!(
        env.iter()
            .any(|(k, v)| k == "GRACEHOOK_TLS_CERT" && v.starts_with(mount))
    );
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "gracehook-tls");
    let excluded = &env
        .iter()
        .find(|(k, _)| k == "GRACEHOOK_EXCLUDE_NAMESPACES")
        .unwrap()
        .1;
    for ns in ["kube-system", "kube-node-lease", "gracehook-system"] {
        assert!(
            excluded.split(',').any(|e| e == ns),
            "{ns} not excluded by the server"
        );
    }

    // Every env var is a real flag of `gracehook serve`.
    let help = Command::new(env!("CARGO_BIN_EXE_gracehook"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for (name, _) in env.iter().filter(|(k, _)| k.starts_with("GRACEHOOK_")) {
        assert!(
            help.contains(&format!("[env: {name}=")),
            "{name} is not a serve flag"
        );
    }

    let pdb = find(&objects, "PodDisruptionBudget", "gracehook");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"], spec["selector"]);
    let service = find(&objects, "Service", "gracehook");
    assert_eq!(service["spec"]["selector"], spec["selector"]["matchLabels"]);
    // Least privilege: reading Namespaces is all the webhook may do.
    let rules: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
        .flat_map(|o| o["rules"].as_array().unwrap())
        .collect();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["resources"], serde_json::json!(["namespaces"]));
    assert_eq!(
        rules[0]["verbs"],
        serde_json::json!(["get", "list", "watch"])
    );
    let binding = find(&objects, "ClusterRoleBinding", "gracehook-namespaces");
    assert_eq!(binding["subjects"][0]["name"], pod["serviceAccountName"]);
    assert_eq!(binding["subjects"][0]["namespace"], "gracehook-system");
}

#[test]
fn webhook_configuration_follows_the_spec() {
    let objects = render(&repo().join("manifests/base"));
    let config = find(&objects, "MutatingWebhookConfiguration", "gracehook");
    let webhooks = config["webhooks"].as_array().unwrap();
    assert_eq!(webhooks.len(), 2);
    for (webhook, mode, path) in [
        (&webhooks[0], "enforce", "/mutate"),
        (&webhooks[1], "audit", "/audit"),
    ] {
        assert_eq!(webhook["clientConfig"]["service"]["path"], path);
        assert_eq!(webhook["clientConfig"]["service"]["name"], "gracehook");
        assert_eq!(
            webhook["clientConfig"]["service"]["namespace"],
            "gracehook-system"
        );
        assert_eq!(webhook["rules"].as_array().unwrap().len(), 1);
        let rule = &webhook["rules"][0];
        assert_eq!(rule["operations"], serde_json::json!(["CREATE"]));
        assert_eq!(rule["resources"], serde_json::json!(["pods"]));
        assert_eq!(rule["apiGroups"], serde_json::json!([""]));
        assert_eq!(webhook["sideEffects"], "None");
        assert_eq!(
            webhook["admissionReviewVersions"],
            serde_json::json!(["v1"])
        );
        assert_eq!(webhook["failurePolicy"], "Ignore");
        assert!(webhook["timeoutSeconds"].as_i64().unwrap() <= 3);
        assert_eq!(webhook["reinvocationPolicy"], "IfNeeded");
        let selector = webhook["namespaceSelector"]["matchExpressions"]
            .as_array()
            .unwrap();
        assert!(selector.iter().any(|e| e["key"] == "gracehook.io/mode"
            && e["operator"] == "In"
            && e["values"] == serde_json::json!([mode])));
        let excluded = selector
            .iter()
            .find(|e| e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn")
            .expect("system namespaces excluded");
        for ns in ["kube-system", "kube-node-lease", "gracehook-system"] {
            assert!(
                excluded["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == ns),
                "{ns}"
            );
        }
        let object = &webhook["objectSelector"]["matchExpressions"][0];
        assert_eq!(object["key"], "gracehook.io/inject");
        assert_eq!(object["operator"], "NotIn");
        assert_eq!(object["values"], serde_json::json!(["false"]));
    }
}

#[test]
fn cert_manager_overlay_wires_certificate_secret_and_ca_injection() {
    let objects = render(&repo().join("manifests/cert-manager"));
    let config = find(&objects, "MutatingWebhookConfiguration", "gracehook");
    let inject = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        .as_str()
        .unwrap();
    let (namespace, name) = inject.split_once('/').unwrap();
    let certificate = find(&objects, "Certificate", name);
    assert_eq!(certificate["metadata"]["namespace"], namespace);
    assert_eq!(certificate["spec"]["secretName"], "gracehook-tls");
    let names: Vec<&str> = certificate["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        gracehook::server::tls::certs::service_names("gracehook", "gracehook-system")
    );
    let issuer = certificate["spec"]["issuerRef"]["name"].as_str().unwrap();
    find(&objects, "Issuer", issuer);
}

#[test]
fn self_signed_overlay_renders_with_generated_certificates() {
    // A copy of the tree, so the test never writes into the checkout.
    let root = std::env::temp_dir().join(format!("gracehook-manifests-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["manifests/base", "manifests/observe", "certs"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let entry = entry.unwrap();
            if entry.path().extension().is_some_and(|e| e == "yaml") {
                std::fs::copy(entry.path(), root.join(dir).join(entry.file_name())).unwrap();
            }
        }
    }
    let status = Command::new(env!("CARGO_BIN_EXE_gracehook"))
        .args(["certs", "--out", root.join("certs").to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let objects = render(&root.join("certs"));
    let secret = find(&objects, "Secret", "gracehook-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["metadata"]["namespace"], "gracehook-system");
    let bundle = std::fs::read_to_string(root.join("certs/ca-bundle.b64")).unwrap();
    let config = find(&objects, "MutatingWebhookConfiguration", "gracehook");
    for webhook in config["webhooks"].as_array().unwrap() {
        assert_eq!(webhook["clientConfig"]["caBundle"], bundle.trim());
    }
    // The observer comes with it by default, as with the chart (observe.enabled).
    let observer = find(&objects, "Deployment", "gracehook-observe");
    assert_eq!(
        observer["spec"]["template"]["spec"]["containers"][0]["image"],
        find(&objects, "Deployment", "gracehook")["spec"]["template"]["spec"]["containers"][0]["image"]
    );
    let mode = std::fs::metadata(root.join("certs/tls.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o077,
        0,
        "key readable by others"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
/// List only, but `get` on namespaces for `audit -n`.
fn audit_role_only_lists() {
    let objects = render(&repo().join("manifests/audit"));
    let role = find(&objects, "ClusterRole", "gracehook-audit");
    let mut resources = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        let verbs = if rule["resources"] == serde_json::json!(["namespaces"]) {
            serde_json::json!(["get", "list"])
        } else {
            serde_json::json!(["list"])
        };
        assert_eq!(rule["verbs"], verbs, "{rule}");
        resources.extend(
            rule["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string()),
        );
    }
    resources.sort();
    assert_eq!(
        resources,
        [
            "cronjobs",
            "daemonsets",
            "deployments",
            "namespaces",
            "pods",
            "replicasets",
            "statefulsets"
        ]
    );
}

/// The network, priority, placement and TLS-name promises of
/// docs/operations.md ("Network access", "Priority and placement", "The
/// certificate") hold in manifests/base.
#[test]
fn base_limits_ingress_is_critical_spreads_and_names_the_service() {
    let objects = render(&repo().join("manifests/base"));
    let deployment = find(&objects, "Deployment", "gracehook");
    let template = &deployment["spec"]["template"];
    let pod = &template["spec"];
    let labels = template["metadata"]["labels"].as_object().unwrap();
    let selects_the_pods = |selector: &Value| {
        let selector = selector["matchLabels"].as_object().unwrap();
        !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    let port = |name: &str| {
        pod["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["containerPort"]
            .clone()
    };

    // Ingress only: the webhook port from anywhere, the metrics port from
    // the monitoring namespace, nothing else.
    let policy = find(&objects, "NetworkPolicy", "gracehook");
    assert_eq!(policy["metadata"]["namespace"], "gracehook-system");
    assert!(selects_the_pods(&policy["spec"]["podSelector"]), "{policy}");
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{rules:?}");
    let rule_for = |port: &Value| {
        let rule = rules
            .iter()
            .find(|r| {
                r["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["port"] == *port)
            })
            .unwrap_or_else(|| panic!("no rule for port {port}"));
        assert_eq!(rule["ports"].as_array().unwrap().len(), 1, "{rule}");
        rule
    };
    assert!(rule_for(&port("webhook"))["from"].is_null());
    assert_eq!(
        rule_for(&port("metrics"))["from"],
        serde_json::json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
    );

    // system-cluster-critical, with the quota that allows it outside kube-system.
    let class = pod["priorityClassName"].as_str().unwrap();
    assert_eq!(class, "system-cluster-critical");
    let quota = find(&objects, "ResourceQuota", "gracehook-critical-pods");
    assert_eq!(
        quota["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    assert_eq!(
        quota["spec"]["scopeSelector"]["matchExpressions"],
        serde_json::json!([{"scopeName": "PriorityClass", "operator": "In", "values": [class]}])
    );
    let allowed: i64 = quota["spec"]["hard"]["pods"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        .as_i64()
        .unwrap();
    assert!(allowed >= deployment["spec"]["replicas"].as_i64().unwrap() + surge);

    // Replicas on different nodes when possible, one revision at a time.
    let spread = pod["topologySpreadConstraints"].as_array().unwrap();
    let by_host = spread
        .iter()
        .find(|c| c["topologyKey"] == "kubernetes.io/hostname")
        .expect("a spread over nodes");
    assert_eq!(by_host["maxSkew"], 1);
    assert_eq!(by_host["whenUnsatisfiable"], "ScheduleAnyway");
    for constraint in spread {
        assert!(
            selects_the_pods(&constraint["labelSelector"]),
            "{constraint}"
        );
        assert_eq!(
            constraint["matchLabelKeys"],
            serde_json::json!(["pod-template-hash"])
        );
    }

    // --tls-server-names: the name the API server checks for the service
    // reference, which the certificates of both overlays hold.
    let names = env_of(&pod["containers"][0])
        .into_iter()
        .find(|(k, _)| k == "GRACEHOOK_TLS_SERVER_NAMES")
        .expect("GRACEHOOK_TLS_SERVER_NAMES")
        .1;
    let config = find(&objects, "MutatingWebhookConfiguration", "gracehook");
    for webhook in config["webhooks"].as_array().unwrap() {
        let service = &webhook["clientConfig"]["service"];
        let checked = format!(
            "{}.{}.svc",
            service["name"].as_str().unwrap(),
            service["namespace"].as_str().unwrap()
        );
        assert_eq!(names, checked);
    }
    assert!(
        gracehook::server::tls::certs::service_names("gracehook", "gracehook-system")
            .contains(&names)
    );
    let overlay = render(&repo().join("manifests/cert-manager"));
    let certificate = find(&overlay, "Certificate", "gracehook-serving");
    assert!(
        certificate["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| *n == names.as_str())
    );
}

// -- the observer (manifests/observe) -----------------------------------------

const OBSERVER: &str = "gracehook-observe";

/// The default installation with cert-manager, which includes the observer.
fn with_observer() -> Vec<Value> {
    render(&repo().join("manifests/cert-manager"))
}

/// Every permission the RBAC objects grant a ServiceAccount of
/// gracehook-system, one line each: `scope group/resource verb [names]`.
fn permissions_of(objects: &[Value], account: &str) -> Vec<String> {
    let mut granted = Vec::new();
    for binding in objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
    {
        let bound = binding["subjects"].as_array().unwrap().iter().any(|s| {
            s["kind"] == "ServiceAccount"
                && s["name"] == account
                && s["namespace"] == "gracehook-system"
        });
        if !bound {
            continue;
        }
        let role_ref = &binding["roleRef"];
        let role = find(
            objects,
            role_ref["kind"].as_str().unwrap(),
            role_ref["name"].as_str().unwrap(),
        );
        let scope = if binding["kind"] == "RoleBinding" {
            assert_eq!(
                role["metadata"]["namespace"],
                binding["metadata"]["namespace"]
            );
            format!("ns:{}", binding["metadata"]["namespace"].as_str().unwrap())
        } else {
            "cluster".to_string()
        };
        for rule in role["rules"].as_array().unwrap() {
            let names = rule["resourceNames"].as_array().map_or(String::new(), |n| {
                let names: Vec<&str> = n.iter().map(|v| v.as_str().unwrap()).collect();
                format!(" {}", names.join(","))
            });
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .unwrap_or_else(|| panic!("{key} in {rule}"))
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            };
            assert!(rule["nonResourceURLs"].is_null(), "{rule}");
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    for verb in strings("verbs") {
                        granted.push(format!("{scope} {group}/{resource} {verb}{names}"));
                    }
                }
            }
        }
    }
    granted.sort();
    granted
}

/// Least privilege: exactly the calls `gracehook observe` makes, nothing
/// more (an extra verb, resource, group or a wildcard fails); the webhook's
/// ServiceAccount keeps exactly its Namespace read access.
#[test]
fn observe_rbac_is_exactly_the_observers_calls_and_leaves_the_webhooks_alone() {
    let objects = with_observer();
    assert_eq!(
        permissions_of(&objects, OBSERVER),
        [
            "cluster /events list",
            "cluster /events watch",
            "cluster /pods get",
            "cluster /pods list",
            "cluster /pods watch",
            "cluster apps/replicasets get",
            "cluster events.k8s.io/events create",
            "cluster events.k8s.io/events patch",
            "ns:gracehook-system coordination.k8s.io/leases create",
            "ns:gracehook-system coordination.k8s.io/leases get gracehook-observe",
            "ns:gracehook-system coordination.k8s.io/leases patch gracehook-observe",
        ]
    );
    assert_eq!(
        permissions_of(&objects, "gracehook"),
        [
            "cluster /namespaces get",
            "cluster /namespaces list",
            "cluster /namespaces watch"
        ]
    );
    // The webhook's RBAC objects are the base's, unchanged.
    let base = render(&repo().join("manifests/base"));
    for (kind, name) in [
        ("ClusterRole", "gracehook-namespaces"),
        ("ClusterRoleBinding", "gracehook-namespaces"),
        ("ServiceAccount", "gracehook"),
    ] {
        assert_eq!(
            find(&objects, kind, name),
            find(&base, kind, name),
            "{kind}/{name}"
        );
    }
    // Every RBAC object of the installation is the webhook's or the observer's.
    let rbac: Vec<String> = objects
        .iter()
        .filter(|o| o["kind"].as_str().unwrap().contains("Role"))
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        rbac.len(),
        6,
        "{rbac:?}: ClusterRole, ClusterRoleBinding of each, the observer's Role and RoleBinding"
    );
}

/// The observer's Deployment: the webhook's hardening, two replicas spread
/// apart, probes on its metrics port, its own ServiceAccount, no priority
/// class, and the Lease where the Role allows it.
#[test]
fn observe_deployment_is_locked_down_and_elects_where_its_role_allows() {
    let objects = with_observer();
    let deployment = find(&objects, "Deployment", OBSERVER);
    let webhook = find(&objects, "Deployment", "gracehook");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let template = &spec["template"];
    let labels = template["metadata"]["labels"].as_object().unwrap();
    let selector = spec["selector"]["matchLabels"].as_object().unwrap();
    assert!(!selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
    // Its selector never matches the webhook's pods, nor the webhook's theirs.
    let webhook_labels = webhook["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    assert!(
        !selector
            .iter()
            .all(|(k, v)| webhook_labels.get(k) == Some(v))
    );
    let webhook_selector = webhook["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    assert!(
        !webhook_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    );

    let pod = &template["spec"];
    let webhook_pod = &webhook["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"], webhook_pod["securityContext"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], OBSERVER);
    assert_ne!(pod["serviceAccountName"], webhook_pod["serviceAccountName"]);
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(
        find(&objects, "ServiceAccount", OBSERVER)["automountServiceAccountToken"],
        false
    );
    assert_eq!(pod["enableServiceLinks"], false);
    // Not on the pod-creation path: no critical class (docs/operations.md).
    assert!(
        pod["priorityClassName"].is_null(),
        "{}",
        pod["priorityClassName"]
    );
    let spread = pod["topologySpreadConstraints"].as_array().unwrap();
    let keys: Vec<&str> = spread
        .iter()
        .map(|c| c["topologyKey"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    for constraint in spread {
        assert_eq!(constraint["whenUnsatisfiable"], "ScheduleAnyway");
        assert_eq!(
            constraint["labelSelector"]["matchLabels"],
            spec["selector"]["matchLabels"]
        );
        assert_eq!(
            constraint["matchLabelKeys"],
            serde_json::json!(["pod-template-hash"])
        );
    }

    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    assert_eq!(container["args"], serde_json::json!(["observe"]));
    assert_eq!(container["image"], webhook_pod["containers"][0]["image"]);
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(security["capabilities"]["add"].is_null());
    for kind in ["requests", "limits"] {
        assert!(container["resources"][kind]["memory"].is_string(), "{kind}");
        assert!(container["resources"][kind]["cpu"].is_string(), "{kind}");
    }
    assert!(container["volumeMounts"].is_null() && pod["volumes"].is_null());
    assert_eq!(
        container["ports"],
        serde_json::json!([{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}])
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "metrics");

    // The environment: the contract's variables, nothing else.
    let env = container["env"].as_array().unwrap();
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let mut names: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "GRACEHOOK_IDENTITY",
            "GRACEHOOK_LEASE_DURATION",
            "GRACEHOOK_LEASE_NAME",
            "GRACEHOOK_LEASE_NAMESPACE",
            "GRACEHOOK_LOG_FORMAT",
            "GRACEHOOK_METRICS_LISTEN",
            "RUST_LOG"
        ]
    );
    assert_eq!(var("GRACEHOOK_METRICS_LISTEN")["value"], "0.0.0.0:9090");
    assert_eq!(
        var("GRACEHOOK_LEASE_NAMESPACE")["valueFrom"],
        serde_json::json!({"fieldRef": {"fieldPath": "metadata.namespace"}})
    );
    assert_eq!(
        var("GRACEHOOK_IDENTITY")["valueFrom"],
        serde_json::json!({"fieldRef": {"fieldPath": "metadata.name"}})
    );
    let duration = var("GRACEHOOK_LEASE_DURATION")["value"].as_str().unwrap();
    assert!(gracehook::planner::duration::parse_seconds(duration).unwrap() > 0);
    // The Lease: in the pod's own namespace, which is the Role's, under the
    // one name the Role lets it get and patch.
    let role = find(&objects, "Role", OBSERVER);
    assert_eq!(
        role["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    let lease = var("GRACEHOOK_LEASE_NAME")["value"].as_str().unwrap();
    assert_eq!(lease, OBSERVER);
    let named = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| !r["resourceNames"].is_null())
        .unwrap();
    assert_eq!(named["resourceNames"], serde_json::json!([lease]));

    // Once `gracehook observe` exists, every variable is one of its flags.
    let help = Command::new(env!("CARGO_BIN_EXE_gracehook"))
        .args(["observe", "--help"])
        .output()
        .unwrap();
    if help.status.success() {
        let help = String::from_utf8_lossy(&help.stdout);
        for name in names.iter().filter(|n| n.starts_with("GRACEHOOK_")) {
            assert!(
                help.contains(&format!("[env: {name}=")),
                "{name} is not an observe flag"
            );
        }
    }
}

/// Labels: every observer object is `gracehook-observe`, part of gracehook,
/// and the component relabels none of the webhook's objects (the
/// ServiceMonitor's job and the alerts select `gracehook`).
#[test]
fn observe_labels_its_own_objects_only() {
    let objects = with_observer();
    let component = render(&repo().join("manifests/observe"));
    assert_eq!(component.len(), 8, "{component:?}");
    for object in &component {
        let name = object["metadata"]["name"].as_str().unwrap();
        assert_eq!(name, OBSERVER);
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], OBSERVER, "{name}");
        assert_eq!(labels["app.kubernetes.io/part-of"], "gracehook", "{name}");
        if !object["metadata"]["namespace"].is_null() {
            assert_eq!(object["metadata"]["namespace"], "gracehook-system");
        }
    }
    // The base's objects keep the base's labels (app.kubernetes.io/name:
    // gracehook), the pod template's and selectors' included.
    for object in render(&repo().join("manifests/base")) {
        let kind = object["kind"].as_str().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap();
        let installed = find(&objects, kind, name);
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/name"],
            "gracehook"
        );
        assert_eq!(
            installed["metadata"]["labels"], object["metadata"]["labels"],
            "{kind}/{name}"
        );
        assert_eq!(
            installed["spec"]["template"], object["spec"]["template"],
            "{kind}/{name}"
        );
    }
    assert_eq!(
        objects
            .iter()
            .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/name"] == OBSERVER)
            .count(),
        component.len()
    );
    // The headless Service the ServiceMonitor scrapes selects the observer's pods.
    let service = find(&objects, "Service", OBSERVER);
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(
        service["spec"]["selector"],
        find(&objects, "Deployment", OBSERVER)["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
}

/// The observer's NetworkPolicy: the metrics port from Prometheus only, and
/// egress to the API server's ports only; the webhook's policy is untouched
/// and does not select the observer.
#[test]
fn observe_network_policy_opens_metrics_and_the_api_server_ports_only() {
    let objects = with_observer();
    let labels = find(&objects, "Deployment", OBSERVER)["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap()
        .clone();
    let selects = |policy: &Value| {
        policy["spec"]["podSelector"]["matchLabels"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    let policy = find(&objects, "NetworkPolicy", OBSERVER);
    assert!(selects(policy));
    assert!(!selects(find(&objects, "NetworkPolicy", "gracehook")));
    assert_eq!(
        find(&objects, "NetworkPolicy", "gracehook"),
        find(
            &render(&repo().join("manifests/base")),
            "NetworkPolicy",
            "gracehook"
        )
    );
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert_eq!(
        policy["spec"]["ingress"],
        serde_json::json!([{
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "ports": [{"port": 9090, "protocol": "TCP"}]
        }])
    );
    assert_eq!(
        policy["spec"]["egress"],
        serde_json::json!([{"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}])
    );
}
