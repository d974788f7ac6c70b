"""The ops suite's tests (see `run`): the alert rules with promtool, the Helm
chart with helm, and the chart against the kustomize base (manifests/) and
the monitoring component. `run` fills TOOLS (promtool, helm, kubectl and a
scratch HELM_*_HOME) before the first test.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from harness import expect, json_objects, logger, scenario

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(REPO, "charts", "gracehook")
RULES = os.path.join(CHART, "files", "prometheusrule.yaml")
RUNBOOK = os.path.join(REPO, "docs", "operations.md")
BASE_URL = "https://github.com/gracehook/gracehook/blob/main/docs/operations.md"
TOOLS = {}
log = logger("ops")


def run(*args, input=None, check=True, cwd=None):
    result = subprocess.run(args, input=input, capture_output=True, text=True, timeout=300, cwd=cwd,
                            env=dict(os.environ, KUBECONFIG=os.devnull, HELM_CACHE_HOME=TOOLS["helm_home"],
                                     HELM_CONFIG_HOME=TOOLS["helm_home"], HELM_DATA_HOME=TOOLS["helm_home"]))
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
    return result


# -- YAML to JSON ----------------------------------------------------------

def to_objects(yaml_text):
    """YAML documents as JSON objects. `kubectl annotate --local` converts
    without a server; removing an absent annotation changes nothing but adds an
    empty `metadata.annotations`, which is dropped again here."""
    if not yaml_text.strip():
        return []
    text = run(TOOLS["kubectl"], "annotate", "--local", "-f", "-", "-o", "json", "gracehook.io/none-",
               input=yaml_text).stdout
    objects = json_objects(text)
    for o in objects:
        if o.get("metadata", {}).get("annotations") == {}:
            del o["metadata"]["annotations"]
    return objects


def kustomize(path):
    return to_objects(run(TOOLS["kubectl"], "kustomize", path).stdout)


def helm_template(*sets, release="gracehook", namespace="gracehook-system"):
    args = [TOOLS["helm"], "template", release, CHART, "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    return to_objects(run(*args).stdout)


def find(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    expect(len(found) == 1, f"{len(found)} {kind} {name or ''} in {sorted((o['kind'], o['metadata']['name']) for o in objects)}")
    return found[0]


def kinds(objects):
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)


def webhook_deployment(objects):
    """The webhook's Deployment (the observer's is the other one)."""
    found = [o for o in objects if o["kind"] == "Deployment"
             and o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "webhook"]
    expect(len(found) == 1, f"{len(found)} webhook Deployments in {kinds(objects)}")
    return found[0]


# The observer's objects (observe.enabled, manifests/observe), by kind.
OBSERVER_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment",
                  "Service", "NetworkPolicy")


def observer_objects(objects):
    return [o for o in objects if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "gracehook-observe"]


def diff(a, b, path=""):
    """The paths where two JSON values differ, for readable failures."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += diff(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path or '.'}: {json.dumps(a)} != {json.dumps(b)}"]


def expect_equal(a, b, what):
    differences = diff(a, b)
    expect(not differences, f"{what} differ:\n  " + "\n  ".join(differences))


# -- the rules -------------------------------------------------------------

def rule_groups_text():
    """The PrometheusRule's `spec`, as the rule file promtool reads: the lines
    below `spec:`, two spaces less indented."""
    lines = open(RULES).read().splitlines()
    expect("spec:" in lines, f"{RULES}: no line `spec:`")
    body = lines[lines.index("spec:") + 1:]
    bad = [line for line in body if line and not line.startswith("  ")]
    expect(not bad, f"{RULES}: lines below `spec:` not indented: {bad[:3]}")
    return "\n".join(line[2:] for line in body) + "\n"


def rules():
    """Every rule of the source file, as JSON."""
    source = to_objects(open(RULES).read())
    expect(len(source) == 1 and source[0]["kind"] == "PrometheusRule", kinds(source))
    return [r for g in source[0]["spec"]["groups"] for r in g["rules"]]


def promtool_dir():
    d = tempfile.mkdtemp(prefix="gracehook-ops-")
    with open(os.path.join(d, "gracehook.rules.yaml"), "w") as f:
        f.write(rule_groups_text())
    shutil.copy(os.path.join(HERE, "alerts.test.yaml"), d)
    return d


@scenario
def promtool_check_rules(t):
    d = promtool_dir()
    try:
        result = run(TOOLS["promtool"], "check", "rules", "--lint=all", "--lint-fatal",
                     os.path.join(d, "gracehook.rules.yaml"))
        expect(f"SUCCESS: {len(rules())} rules found" in result.stdout, result.stdout)
    finally:
        shutil.rmtree(d)


@scenario
def promtool_test_rules(t):
    d = promtool_dir()
    try:
        result = run(TOOLS["promtool"], "test", "rules", "alerts.test.yaml", cwd=d, check=False)
        expect(result.returncode == 0, f"promtool test rules failed:\n{result.stdout}{result.stderr}")
    finally:
        shutil.rmtree(d)


@scenario
def every_alert_is_tested_firing_and_not_firing(t):
    """In alerts.test.yaml each alert has a case with `exp_alerts: []` and one
    expecting alerts, and each severity of it is expected somewhere."""
    text = open(os.path.join(HERE, "alerts.test.yaml")).read()
    cases = re.findall(r"alertname: (\w+)\n\s+exp_alerts:( \[\])?((?:\n\s+- exp_labels: \{[^}]*\})?)", text)
    quiet = {name for name, empty, _ in cases if empty}
    loud = {name for name, empty, _ in cases if not empty}
    seen = {(name, sev) for name, empty, block in cases if not empty
            for sev in re.findall(r"severity: (\w+)", block)}
    seen |= {(n, s) for n, s in re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n(?:.*\n)*?\s+- exp_labels: \{severity: (\w+)", text)}
    missing = []
    for rule in rules():
        name, severity = rule["alert"], rule["labels"]["severity"]
        if name not in quiet:
            missing.append(f"{name}: no case where it does not fire")
        if name not in loud:
            missing.append(f"{name}: no case where it fires")
        if (name, severity) not in seen:
            missing.append(f"{name}: severity {severity} never expected")
    expect(not missing, "\n".join(missing))


def runbook_anchors():
    """GitHub's anchors of docs/operations.md's headings."""
    anchors = set()
    for line in open(RUNBOOK):
        m = re.match(r"#+ (.*)", line)
        if m:
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return anchors


@scenario
def every_alert_has_summary_description_runbook_and_severity(t):
    anchors = runbook_anchors()
    problems = []
    for rule in rules():
        name, labels, notes = rule["alert"], rule.get("labels", {}), rule.get("annotations", {})
        if labels.get("severity") not in ("critical", "warning", "info"):
            problems.append(f"{name}: severity {labels.get('severity')!r}")
        for key in ("summary", "description", "runbook_url"):
            if not notes.get(key):
                problems.append(f"{name}: no {key}")
        url = notes.get("runbook_url", "")
        if url != f"{BASE_URL}#{name.lower()}":
            problems.append(f"{name}: runbook_url {url} is not {BASE_URL}#{name.lower()}")
        if name.lower() not in anchors:
            problems.append(f"{name}: no section `### {name}` in docs/operations.md")
        if not re.search(r"\b(check|find|fix|renew|look|restart|stop)\b", notes.get("description", ""), re.I):
            problems.append(f"{name}: the description does not say what to do")
        if not re.fullmatch(r"Gracehook[A-Z]\w+", name):
            problems.append(f"{name}: not named Gracehook*")
    expect(not problems, "\n".join(problems))


@scenario
def the_rules_use_metrics_that_exist(t):
    """gracehook's metrics as docs/observability.md lists them (the e2e suite
    checks the live /metrics of gracehook and the API server)."""
    documented = set(re.findall(r"\| `(gracehook_\w+)` \|", open(os.path.join(REPO, "docs", "observability.md")).read()))
    known = documented | {f"{m}_bucket" for m in documented} | {
        "up", "kube_deployment_status_replicas_unavailable",
        "apiserver_admission_webhook_fail_open_count", "apiserver_admission_webhook_request_total",
        "kube_deployment_spec_replicas"}
    used = set()
    for rule in rules():
        expr = re.sub(r'"[^"]*"', '""', rule["expr"])
        used |= {m for m in re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[)", expr)}
    functions = {"rate", "increase", "sum", "max", "absent", "histogram_quantile", "by"}
    expect(used - functions, "no metric found in the rules")
    unknown = used - functions - known
    expect(not unknown, f"metrics not in docs/observability.md nor known: {sorted(unknown)}")
    for outcome in set(re.findall(r'outcome="([\w-]+)"', open(RULES).read())):
        expect(f"`{outcome}`" in open(os.path.join(REPO, "docs", "observability.md")).read(),
               f"outcome {outcome} not documented")


# -- the chart -------------------------------------------------------------

SOURCES = {
    "generate": [],
    "cert-manager": ["certificate.source=cert-manager"],
    "cert-manager with an issuer": ["certificate.source=cert-manager", "certificate.certManager.issuerRef.kind=ClusterIssuer",
                                    "certificate.certManager.issuerRef.name=company-ca"],
    "secret": ["certificate.source=secret", "certificate.secret.name=my-tls",
               "certificate.secret.caBundle=" + base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()],
}


@scenario
def helm_lint(t):
    for name, sets in SOURCES.items():
        args = [a for s in sets + ["monitoring.enabled=true"] for a in ("--set", s)]
        result = run(TOOLS["helm"], "lint", "--strict", CHART, "--namespace", "gracehook-system", *args, check=False)
        expect(result.returncode == 0 and "1 chart(s) linted, 0 chart(s) failed" in result.stdout,
               f"helm lint ({name}):\n{result.stdout}{result.stderr}")


@scenario
def helm_template_renders_each_certificate_source(t):
    common = ["ClusterRole/gracehook-namespaces", "ClusterRoleBinding/gracehook-namespaces", "Deployment/gracehook",
              "MutatingWebhookConfiguration/gracehook", "NetworkPolicy/gracehook", "PodDisruptionBudget/gracehook",
              "ResourceQuota/gracehook-critical-pods", "Service/gracehook", "ServiceAccount/gracehook"]
    common += [f"{kind}/gracehook-observe" for kind in OBSERVER_KINDS]
    want = {
        "generate": common + ["Secret/gracehook-tls"],
        "cert-manager": common + ["Certificate/gracehook-ca", "Certificate/gracehook-serving",
                                  "Issuer/gracehook-ca", "Issuer/gracehook-selfsigned"],
        "cert-manager with an issuer": common + ["Certificate/gracehook-serving"],
        "secret": common,
    }
    for name, sets in SOURCES.items():
        objects = helm_template(*sets)
        expect(kinds(objects) == sorted(want[name]), f"{name}: {kinds(objects)}")
        config = find(objects, "MutatingWebhookConfiguration")
        volume = webhook_deployment(objects)["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"]
        bundles = [w["clientConfig"].get("caBundle") for w in config["webhooks"]]
        injected = config["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
        if name.startswith("cert-manager"):
            expect(bundles == [None, None] and injected == "gracehook-system/gracehook-serving", config)
            serving = find(objects, "Certificate", "gracehook-serving")
            expect(serving["spec"]["secretName"] == volume == "gracehook-tls", serving)
            issuer = {"kind": "ClusterIssuer", "name": "company-ca"} if "issuer" in name else {"kind": "Issuer", "name": "gracehook-ca"}
            expect(serving["spec"]["issuerRef"] == issuer, serving["spec"]["issuerRef"])
        elif name == "secret":
            expect(bundles == [SOURCES["secret"][2].split("=", 1)[1]] * 2 and injected is None, config)
            expect(volume == "my-tls", volume)
        else:
            secret = find(objects, "Secret", "gracehook-tls")
            expect(bundles == [secret["data"]["ca.crt"]] * 2 and volume == "gracehook-tls", config)


@scenario
def the_rendered_chart_is_strict_yaml(t):
    """kustomize refuses what a lenient parser takes silently (a key twice in
    a mapping: the last one wins); every rendering must pass it."""
    d = tempfile.mkdtemp(prefix="gracehook-ops-")
    try:
        for i, (name, sets) in enumerate(SOURCES.items()):
            args = [a for s in sets + ["monitoring.enabled=true"] for a in ("--set", s)]
            rendered = run(TOOLS["helm"], "template", "gracehook", CHART, "--namespace", "gracehook-system", *args).stdout
            with open(os.path.join(d, f"chart-{i}.yaml"), "w") as f:
                f.write(rendered)
            with open(os.path.join(d, "kustomization.yaml"), "w") as f:
                f.write(f"resources: [chart-{i}.yaml]\n")
            result = run(TOOLS["kubectl"], "kustomize", d, check=False)
            expect(result.returncode == 0, f"{name}: {result.stderr}")
    finally:
        shutil.rmtree(d)


@scenario
def the_generated_certificate_is_trusted_for_the_service_names(t):
    objects = helm_template("fullnameOverride=hooks", namespace="ops")
    secret = find(objects, "Secret", "hooks-tls")
    bundle = find(objects, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"]
    d = tempfile.mkdtemp(prefix="gracehook-ops-")
    try:
        for name, data in (("ca.pem", bundle), ("tls.crt", secret["data"]["tls.crt"]), ("tls.key", secret["data"]["tls.key"])):
            with open(os.path.join(d, name), "wb") as f:
                f.write(base64.b64decode(data))
        for host in ("hooks.ops.svc", "hooks.ops.svc.cluster.local", "hooks.ops", "hooks"):
            run("openssl", "verify", "-CAfile", os.path.join(d, "ca.pem"), "-verify_hostname", host,
                "-purpose", "sslserver", os.path.join(d, "tls.crt"))
        wrong = run("openssl", "verify", "-CAfile", os.path.join(d, "ca.pem"), "-verify_hostname",
                    "gracehook.gracehook-system.svc", os.path.join(d, "tls.crt"), check=False)
        expect(wrong.returncode != 0, "verified for a name it does not hold")
        pub_cert = run("openssl", "x509", "-in", os.path.join(d, "tls.crt"), "-noout", "-pubkey").stdout
        pub_key = run("openssl", "pkey", "-in", os.path.join(d, "tls.key"), "-pubout").stdout
        expect(pub_cert == pub_key, "the key does not match the certificate")
        days = float(secret["metadata"]["annotations"]["gracehook.io/not-after"]) - time.time()
        expect(364 * 86400 < days < 366 * 86400, f"not-after annotation {days / 86400:.1f} days ahead")
    finally:
        shutil.rmtree(d)


@scenario
def invalid_certificate_values_fail_with_a_message(t):
    for sets, needle in ((["certificate.source=vault"], "certificate.source must be generate, secret or cert-manager"),
                         (["certificate.source=secret", "certificate.secret.caBundle=eA=="], "certificate.secret.name is required"),
                         (["certificate.source=secret", "certificate.secret.name=x"], "certificate.secret.caBundle")):
        args = [a for s in sets for a in ("--set", s)]
        result = run(TOOLS["helm"], "template", "gracehook", CHART, *args, check=False)
        expect(result.returncode != 0 and needle in result.stderr, f"{sets}: {result.returncode} {result.stderr}")


def base_objects():
    return kustomize(os.path.join(REPO, "manifests", "base"))


# The fields of a webhook that decide what is sent where, and how.
WEBHOOK_FIELDS = ("name", "rules", "failurePolicy", "timeoutSeconds", "sideEffects", "reinvocationPolicy",
                  "matchPolicy", "namespaceSelector", "objectSelector", "admissionReviewVersions", "clientConfig")


def webhooks(config):
    out = []
    for w in config["webhooks"]:
        w = json.loads(json.dumps(w))
        w["clientConfig"].pop("caBundle", None)
        out.append({k: w.get(k) for k in WEBHOOK_FIELDS})
        extra = set(w) - set(WEBHOOK_FIELDS)
        expect(not extra, f"{w['name']}: fields this test does not compare: {extra}")
    return out


@scenario
def chart_webhook_configuration_equals_the_base(t):
    base = find(base_objects(), "MutatingWebhookConfiguration", "gracehook")
    for name, sets in SOURCES.items():
        chart = find(helm_template(*sets), "MutatingWebhookConfiguration")
        expect(chart["metadata"]["name"] == base["metadata"]["name"], chart["metadata"]["name"])
        expect_equal(webhooks(chart), webhooks(base), f"the webhooks of the chart ({name}) and manifests/base")
    # cert-manager: the same annotation as manifests/cert-manager.
    overlay = find(kustomize(os.path.join(REPO, "manifests", "cert-manager")), "MutatingWebhookConfiguration")
    chart = find(helm_template(*SOURCES["cert-manager"]), "MutatingWebhookConfiguration")
    expect_equal(chart["metadata"]["annotations"], overlay["metadata"]["annotations"], "cert-manager annotations")


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@scenario
def chart_deployment_equals_the_base(t):
    base = find(base_objects(), "Deployment", "gracehook")
    chart = find(helm_template(), "Deployment", "gracehook")
    # Labels differ on purpose (Helm's own); everything else must not.
    b_spec, c_spec = json.loads(json.dumps(base["spec"])), json.loads(json.dumps(chart["spec"]))
    b_labels = b_spec["template"]["metadata"].pop("labels")
    c_labels = c_spec["template"]["metadata"].pop("labels")
    expect(all(c_labels.get(k) == v for k, v in b_labels.items()), f"pod labels {c_labels} lack {b_labels}")
    expect_equal(env_of(c_spec["template"]["spec"]["containers"][0]), env_of(b_spec["template"]["spec"]["containers"][0]),
                 "the env of the chart's and the base's container")
    expect_equal(c_spec, b_spec, "the Deployment specs of the chart and manifests/base")
    expect(chart["metadata"]["namespace"] == base["metadata"]["namespace"], chart["metadata"])


@scenario
def chart_service_rbac_disruption_budget_network_policy_and_quota_equal_the_base(t):
    base, chart = base_objects(), helm_template()
    for kind, name in (("Service", "gracehook"), ("PodDisruptionBudget", "gracehook"),
                       ("ClusterRole", "gracehook-namespaces"), ("ClusterRoleBinding", "gracehook-namespaces"),
                       ("ServiceAccount", "gracehook"), ("NetworkPolicy", "gracehook"),
                       ("ResourceQuota", "gracehook-critical-pods")):
        b, c = find(base, kind, name), find(chart, kind, name)
        for o in (b, c):
            o["metadata"].pop("labels", None)
            o["metadata"].pop("annotations", None)
        expect_equal(c, b, f"{kind}/{name} of the chart and manifests/base")
    # Least privilege: no other rule anywhere (the observer's own are
    # compared with manifests/observe below), none at all without the watch.
    webhook_rbac = [o for o in chart if o["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
                    and o not in observer_objects(chart)]
    expect(kinds(webhook_rbac) == ["ClusterRole/gracehook-namespaces", "ClusterRoleBinding/gracehook-namespaces"],
           f"extra RBAC: {kinds(webhook_rbac)}")
    quiet = helm_template("watchNamespaces=false", "observe.enabled=false")
    expect(not [o for o in quiet if o["kind"].startswith("ClusterRole") or o["kind"].startswith("Role")], kinds(quiet))
    expect(env_of(webhook_deployment(quiet)["spec"]["template"]["spec"]["containers"][0])["GRACEHOOK_WATCH_NAMESPACES"]
           == "false", "watchNamespaces=false not passed on")


@scenario
def chart_values_reach_the_objects(t):
    objects = helm_template(
        "image.repository=registry.example.com/gracehook", "image.tag=9.9.9", "replicas=1",
        "defaults.drainDelay=3s", "defaults.requestTimeout=40s", "defaults.margin=7s", "defaults.prestopStyle=exec",
        "dryRun=true", "excludeNamespaces={kube-system,monitoring}", "nodeSelector.pool=system",
        "tolerations[0].key=dedicated", "tolerations[0].operator=Exists", "podAnnotations.team=platform",
        "priorityClassName=platform-high", "resources.limits.cpu=2", "webhook.timeoutSeconds=5",
        "spreadReplicas=false", "extraEnv[0].name=GRACEHOOK_MAX_CONNECTIONS", "extraEnv[0].value=64",
        "extraEnv[1].name=POD_NAME", "extraEnv[1].valueFrom.fieldRef.fieldPath=metadata.name",
        release="web", namespace="hooks")
    expect("PodDisruptionBudget" not in [o["kind"] for o in objects], "a PDB for one replica blocks every drain")
    deploy = find(objects, "Deployment", "web-gracehook")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    for key, value in {"GRACEHOOK_DEFAULT_DRAIN_DELAY": "3s", "GRACEHOOK_DEFAULT_REQUEST_TIMEOUT": "40s",
                       "GRACEHOOK_DEFAULT_MARGIN": "7s", "GRACEHOOK_PRESTOP_STYLE": "exec", "GRACEHOOK_DRY_RUN": "true",
                       "GRACEHOOK_EXCLUDE_NAMESPACES": "kube-system,monitoring,hooks",
                       "GRACEHOOK_MAX_CONNECTIONS": "64"}.items():
        expect(env.get(key) == value, f"{key}={env.get(key)!r}, want {value!r}")
    expect({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"],
           container["env"])
    expect(container["image"] == "registry.example.com/gracehook:9.9.9", container["image"])
    expect(container["resources"]["limits"] == {"cpu": 2, "memory": "128Mi"}, container["resources"])
    expect(pod["nodeSelector"] == {"pool": "system"} and pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}], pod)
    expect(pod["priorityClassName"] == "platform-high" and "topologySpreadConstraints" not in pod, pod)
    expect("ResourceQuota" not in [o["kind"] for o in objects], "a quota for a class that needs none")
    expect(deploy["spec"]["template"]["metadata"]["annotations"]["team"] == "platform", deploy["spec"]["template"]["metadata"])
    expect(pod["serviceAccountName"] == "web-gracehook", pod["serviceAccountName"])
    config = find(objects, "MutatingWebhookConfiguration", "web-gracehook")
    for w in config["webhooks"]:
        expect(w["timeoutSeconds"] == 5, w)
        expect(w["clientConfig"]["service"]["name"] == "web-gracehook" and w["clientConfig"]["service"]["namespace"] == "hooks", w)
        expect(w["namespaceSelector"]["matchExpressions"][1]["values"] == ["kube-system", "monitoring", "hooks"], w)
    binding = find(objects, "ClusterRoleBinding", "web-gracehook-namespaces")
    expect(binding["subjects"] == [{"kind": "ServiceAccount", "name": "web-gracehook", "namespace": "hooks"}], binding)


# -- monitoring: the chart and the component ---------------------------------

def component_objects(components=("observe", "monitoring")):
    """manifests/base with components, as an operator includes them."""
    d = tempfile.mkdtemp(prefix="gracehook-ops-")
    try:
        # kustomize wants relative paths.
        rel = os.path.relpath(os.path.join(REPO, "manifests"), d)
        with open(os.path.join(d, "kustomization.yaml"), "w") as f:
            f.write(f"resources: [{rel}/base]\ncomponents: [{', '.join(f'{rel}/{c}' for c in components)}]\n")
        return kustomize(d)
    finally:
        shutil.rmtree(d)


def selects(selector, labels):
    """A label selector (matchLabels, matchExpressions) against labels."""
    ok = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        ok = ok and {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
                     "Exists": key in labels, "DoesNotExist": key not in labels}[op]
    return ok


@scenario
def monitoring_is_off_by_default_and_renders_when_on(t):
    off = [o["kind"] for o in helm_template()]
    expect("ServiceMonitor" not in off and "PrometheusRule" not in off, off)
    on = helm_template("monitoring.enabled=true", "monitoring.labels.release=kube-prometheus-stack")
    for kind in ("ServiceMonitor", "PrometheusRule"):
        o = find(on, kind, "gracehook")
        expect(o["metadata"]["namespace"] == "gracehook-system", o["metadata"])
        expect(o["metadata"]["labels"]["release"] == "kube-prometheus-stack", o["metadata"]["labels"])
    only_rules = [o["kind"] for o in helm_template("monitoring.enabled=true", "monitoring.serviceMonitor.enabled=false")]
    expect("ServiceMonitor" not in only_rules and "PrometheusRule" in only_rules, only_rules)


@scenario
def chart_and_component_ship_the_same_rules_and_scrape_alike(t):
    component = component_objects()
    chart = helm_template("monitoring.enabled=true")
    expect_equal(find(chart, "PrometheusRule")["spec"], find(component, "PrometheusRule")["spec"],
                 "the rules of the chart and of manifests/monitoring")
    expect_equal(find(chart, "PrometheusRule")["spec"], to_objects(open(RULES).read())[0]["spec"],
                 "the chart's rules and their source")
    c_mon, k_mon = find(chart, "ServiceMonitor")["spec"], find(component, "ServiceMonitor")["spec"]
    expect(c_mon["selector"]["matchLabels"].pop("app.kubernetes.io/instance") == "gracehook", c_mon)
    if not c_mon["selector"]["matchLabels"]:
        del c_mon["selector"]["matchLabels"]
    expect_equal(c_mon, k_mon, "the ServiceMonitors of the chart and of manifests/monitoring")
    # Each selects the webhook's and the observer's Service and no other, by
    # labels they have, on a port they have, and names their jobs `gracehook`
    # and `gracehook-observe` (two jobs: an observer up never hides a webhook
    # down from GracehookDown). honorLabels keeps the observer's `namespace`.
    for objects, monitor in ((chart, find(chart, "ServiceMonitor")), (component, find(component, "ServiceMonitor"))):
        selected = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Service"
                          and selects(monitor["spec"]["selector"], o["metadata"]["labels"]))
        expect(selected == ["gracehook", "gracehook-observe"], selected)
        for name in selected:
            service = find(objects, "Service", name)
            expect(service["metadata"]["labels"].get(monitor["spec"]["jobLabel"]) == name, service["metadata"])
            ports = {p["name"] for p in service["spec"]["ports"]}
            expect({e["port"] for e in monitor["spec"]["endpoints"]} <= ports, ports)
            expect(monitor["metadata"]["namespace"] == service["metadata"]["namespace"], monitor["metadata"])
        expect(all(e.get("honorLabels") is True for e in monitor["spec"]["endpoints"]), monitor["spec"])
    # Without the observer the component still renders and selects the webhook alone.
    alone = component_objects(("monitoring",))
    expect(not observer_objects(alone), kinds(observer_objects(alone)))
    expect([o["metadata"]["name"] for o in alone if o["kind"] == "Service"
            and selects(find(alone, "ServiceMonitor")["spec"]["selector"], o["metadata"]["labels"])] == ["gracehook"],
           kinds(alone))
    # Every selector of gracehook's metrics names its job: the observer's
    # metrics job="gracehook-observe", the webhook's job="gracehook".
    wrong = []
    for r in rules():
        for metric, body in re.findall(r"\b(gracehook_\w+)\{([^}]*)\}", r["expr"]):
            job = "gracehook-observe" if metric.startswith(("gracehook_terminations", "gracehook_drain",
                                                             "gracehook_observer")) else "gracehook"
            if f'job="{job}"' not in body:
                wrong.append(f"{r['alert']}: {metric}{{{body}}} does not select job=\"{job}\"")
        if not re.search(r"\bgracehook_\w+\{", r["expr"]):
            expect("apiserver_" in r["expr"] or "kube_" in r["expr"] or 'up{job="gracehook"}' in r["expr"],
                   f"{r['alert']}: no metric of gracehook, the API server or kube-state-metrics")
    expect(not wrong, "\n".join(wrong))


@scenario
def policy_mode_renders_only_the_policies(t):
    """policy.enabled: the objects of files/policy.yaml (kept equal to
    `gracehook policy` by tests/it/policy.rs) and no webhook object."""
    chart = helm_template("policy.enabled=true", "monitoring.enabled=true")
    source = to_objects(open(os.path.join(CHART, "files", "policy.yaml")).read())
    expect(len(source) == 8, kinds(source))
    expect(kinds(chart) == kinds(source), f"{kinds(chart)} != {kinds(source)}")
    for o in source:
        expect_equal(find(chart, o["kind"], o["metadata"]["name"]), o, f"{o['kind']} {o['metadata']['name']}")
    webhook = [o["kind"] for o in helm_template()]
    expect("MutatingAdmissionPolicy" not in webhook and "Deployment" in webhook, webhook)


@scenario
def runbook_base_url_is_a_chart_value(t):
    chart = helm_template("monitoring.enabled=true", "monitoring.runbookBaseURL=https://wiki.example.com/gracehook")
    urls = [r["annotations"]["runbook_url"] for g in find(chart, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    expect(urls and all(re.fullmatch(r"https://wiki\.example\.com/gracehook#gracehook\w+", u) for u in urls), urls)


@scenario
def the_packaged_chart_holds_the_rules(t):
    """`helm package` keeps files/prometheusrule.yaml and drops the
    kustomization beside it (.helmignore); the package renders the same rules."""
    d = tempfile.mkdtemp(prefix="gracehook-ops-")
    try:
        out = run(TOOLS["helm"], "package", CHART, "--destination", d).stdout
        package = os.path.join(d, "gracehook-0.1.0.tgz")
        expect(os.path.exists(package), out)
        listing = run("tar", "-tzf", package).stdout.split()
        expect("gracehook/files/prometheusrule.yaml" in listing, listing)
        expect("gracehook/files/kustomization.yaml" not in listing, listing)
        rendered = to_objects(run(TOOLS["helm"], "template", "gracehook", package, "--namespace", "gracehook-system",
                                  "--set", "monitoring.enabled=true").stdout)
        expect_equal(find(rendered, "PrometheusRule")["spec"], to_objects(open(RULES).read())[0]["spec"],
                     "the packaged chart's rules and their source")
    finally:
        shutil.rmtree(d)


@scenario
def the_docs_describe_every_value(t):
    """Each top-level value of values.yaml is named in docs/operations.md."""
    doc = open(RUNBOOK).read()
    keys = re.findall(r"^([a-zA-Z]\w*):", open(os.path.join(CHART, "values.yaml")).read(), re.M)
    missing = [k for k in keys if f"`{k}" not in doc and k not in ("fullnameOverride", "revisionHistoryLimit")]
    expect(not missing, f"values not in docs/operations.md: {missing}")


# -- network access, priority, placement, TLS names, client CA ---------------

def pod_spec(objects):
    return webhook_deployment(objects)["spec"]["template"]["spec"]


def ingress_rule(policy, port):
    rules = [r for r in policy["spec"]["ingress"] if any(p.get("port") == port for p in r.get("ports", []))]
    expect(len(rules) == 1, f"{len(rules)} ingress rules for port {port}: {policy['spec']['ingress']}")
    rule = rules[0]
    expect([p.get("port") for p in rule["ports"]] == [port], f"the rule for {port} opens other ports: {rule}")
    return rule


@scenario
def the_network_policy_opens_the_webhook_port_to_all_and_metrics_to_prometheus(t):
    objects = helm_template()
    policy = find(objects, "NetworkPolicy", "gracehook")
    pod_labels = webhook_deployment(objects)["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    expect(selector and all(pod_labels.get(k) == v for k, v in selector.items()), (selector, pod_labels))
    expect(policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"], policy["spec"])
    expect(len(policy["spec"]["ingress"]) == 2, policy["spec"]["ingress"])
    # The API server's addresses match no selector: the webhook port from anywhere.
    expect("from" not in ingress_rule(policy, 8443), ingress_rule(policy, 8443))
    expect(ingress_rule(policy, 9090)["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}], ingress_rule(policy, 9090))
    # The ports are the container's.
    ports = {p["name"]: p["containerPort"] for p in pod_spec(objects)["containers"][0]["ports"]}
    expect(ports == {"webhook": 8443, "metrics": 9090}, ports)

    narrow = find(helm_template("networkPolicy.webhook.from[0].ipBlock.cidr=10.0.0.0/24",
                                "networkPolicy.metrics.from[0].namespaceSelector.matchLabels.team=observability",
                                "networkPolicy.metrics.from[0].podSelector.matchLabels.app=prometheus",
                                "networkPolicy.egress[0].ports[0].port=53"), "NetworkPolicy", "gracehook")
    expect(ingress_rule(narrow, 8443)["from"] == [{"ipBlock": {"cidr": "10.0.0.0/24"}}], narrow["spec"])
    expect(ingress_rule(narrow, 9090)["from"] == [{"namespaceSelector": {"matchLabels": {"team": "observability"}},
                                                   "podSelector": {"matchLabels": {"app": "prometheus"}}}], narrow["spec"])
    expect(narrow["spec"]["policyTypes"] == ["Ingress", "Egress"] and narrow["spec"]["egress"] == [{"ports": [{"port": 53}]}],
           narrow["spec"])
    off = helm_template("networkPolicy.enabled=false")
    expect("NetworkPolicy" not in [o["kind"] for o in off], kinds(off))
    with open(os.path.join(TOOLS["helm_home"], "open-metrics.yaml"), "w") as f:
        f.write("networkPolicy:\n  metrics:\n    from: []\n")
    result = run(TOOLS["helm"], "template", "gracehook", CHART, "-f", os.path.join(TOOLS["helm_home"], "open-metrics.yaml"),
                 check=False)
    expect(result.returncode != 0 and "networkPolicy.metrics.from" in result.stderr,
           f"an empty metrics.from (open to all) was rendered: {result.returncode} {result.stderr}")


@scenario
def the_pods_are_system_cluster_critical_with_the_quota_that_allows_it(t):
    for sets, cls in (([], "system-cluster-critical"), (["priorityClassName=system-node-critical"], "system-node-critical")):
        objects = helm_template(*sets, release="web", namespace="hooks")
        expect(pod_spec(objects).get("priorityClassName") == cls, pod_spec(objects).get("priorityClassName"))
        quota = find(objects, "ResourceQuota", "web-gracehook-critical-pods")
        expect(quota["metadata"]["namespace"] == "hooks", quota["metadata"])
        expect(quota["spec"]["scopeSelector"]["matchExpressions"] == [
            {"scopeName": "PriorityClass", "operator": "In", "values": [cls]}], quota["spec"])
        deploy = webhook_deployment(objects)["spec"]
        expect(int(quota["spec"]["hard"]["pods"]) >= deploy["replicas"] + deploy["strategy"]["rollingUpdate"]["maxSurge"],
               quota["spec"]["hard"])
    for sets in (["priorityClassName="], ["criticalPodsQuota.enabled=false"]):
        objects = helm_template(*sets)
        expect("ResourceQuota" not in [o["kind"] for o in objects], f"{sets}: {kinds(objects)}")
    expect("priorityClassName" not in pod_spec(helm_template("priorityClassName=")), "an empty class rendered")


@scenario
def the_spread_keeps_the_replicas_of_one_revision_on_different_nodes(t):
    objects = helm_template()
    pod = pod_spec(objects)
    labels = webhook_deployment(objects)["spec"]["template"]["metadata"]["labels"]
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    expect(sorted(spread) == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"], sorted(spread))
    for key, c in spread.items():
        expect(c["maxSkew"] == 1 and c["whenUnsatisfiable"] == "ScheduleAnyway", c)
        selector = c["labelSelector"]["matchLabels"]
        expect(selector and all(labels.get(k) == v for k, v in selector.items()), f"{key}: {selector} vs {labels}")
        expect(c.get("matchLabelKeys") == ["pod-template-hash"], c)
    extra = pod_spec(helm_template("topologySpreadConstraints[0].maxSkew=1",
                                   "topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
                                   "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
                                   "topologySpreadConstraints[0].labelSelector.matchLabels.app=x"))
    expect(len(extra["topologySpreadConstraints"]) == 3 and extra["topologySpreadConstraints"][2]["whenUnsatisfiable"]
           == "DoNotSchedule", extra["topologySpreadConstraints"])


@scenario
def tls_server_names_is_the_name_the_api_server_checks(t):
    for release, namespace, sets in (("gracehook", "gracehook-system", SOURCES["generate"]),
                                     ("web", "hooks", SOURCES["cert-manager"]), ("web", "hooks", SOURCES["secret"])):
        objects = helm_template(*sets, release=release, namespace=namespace)
        service = find(objects, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["service"]
        want = f"{service['name']}.{service['namespace']}.svc"
        env = env_of(pod_spec(objects)["containers"][0])
        expect(env.get("GRACEHOOK_TLS_SERVER_NAMES") == want, f"{release}/{namespace}: {env.get('GRACEHOOK_TLS_SERVER_NAMES')!r}, want {want!r}")
        if "certificate.source=cert-manager" in sets:
            expect(want in find(objects, "Certificate", "web-gracehook-serving")["spec"]["dnsNames"], "not in the Certificate")
    env = env_of(pod_spec(helm_template("tlsServerNames={a.example.com,b.example.com}"))["containers"][0])
    expect(env.get("GRACEHOOK_TLS_SERVER_NAMES") == "a.example.com,b.example.com", env)
    base = find(base_objects(), "Deployment", "gracehook")
    expect(env_of(base["spec"]["template"]["spec"]["containers"][0]).get("GRACEHOOK_TLS_SERVER_NAMES")
           == "gracehook.gracehook-system.svc", "manifests/base")


@scenario
def the_client_ca_is_mounted_and_set_only_when_configured(t):
    container = pod_spec(helm_template())["containers"][0]
    expect("GRACEHOOK_CLIENT_CA" not in env_of(container), "a client CA by default")
    expect([m["name"] for m in container["volumeMounts"]] == ["tls"], container["volumeMounts"])
    for sets, source in ((["clientCA.secretName=apiserver-ca"], {"secret": {"secretName": "apiserver-ca"}}),
                         (["clientCA.configMapName=apiserver-ca", "clientCA.key=bundle.pem"], {"configMap": {"name": "apiserver-ca"}})):
        pod = pod_spec(helm_template(*sets))
        container = pod["containers"][0]
        key = "bundle.pem" if "bundle.pem" in sets[-1] else "ca.crt"
        volume = [v for v in pod["volumes"] if v["name"] == "client-ca"]
        expect(len(volume) == 1, pod["volumes"])
        (kind, spec), = source.items()
        expect(all(volume[0][kind].get(k) == v for k, v in spec.items())
               and volume[0][kind]["items"] == [{"key": key, "path": key}], volume)
        mount = [m for m in container["volumeMounts"] if m["name"] == "client-ca"]
        expect(len(mount) == 1 and mount[0]["readOnly"] is True, container["volumeMounts"])
        expect(env_of(container).get("GRACEHOOK_CLIENT_CA") == f"{mount[0]['mountPath']}/{key}", env_of(container))
        expect(not mount[0]["mountPath"].startswith("/etc/gracehook/tls"), mount)
    result = run(TOOLS["helm"], "template", "gracehook", CHART, "--set", "clientCA.secretName=a",
                 "--set", "clientCA.configMapName=b", check=False)
    expect(result.returncode != 0 and "not both" in result.stderr, result.stderr)


@scenario
def a_generated_certificate_says_it_is_made_at_every_render(t):
    """`helm template` cannot look up the Secret of an earlier install: the
    rendered Secret says so and names the sources that render stably (the e2e
    suite checks that install and upgrade keep it)."""
    for name, sets in SOURCES.items():
        args = [a for s in sets for a in ("--set", s)]
        out = run(TOOLS["helm"], "template", "gracehook", CHART, "--namespace", "gracehook-system", *args).stdout
        warned = re.search(r"# WARNING: a new CA.*?\n(?:#.*\n)*apiVersion: v1\nkind: Secret", out, re.S)
        if name == "generate":
            expect(warned and "certificate.source=cert-manager" in warned.group(0), out[:2000])
        else:
            expect("# WARNING" not in out, f"{name}: {out[:2000]}")


# -- the observer: the chart against manifests/observe -------------------------

@scenario
def chart_observer_equals_manifests_observe(t):
    """The chart's observer objects (observe.enabled, the default) are
    manifests/observe's: the same kinds and names, specs and rules; only the
    labels differ (Helm's own)."""
    chart = observer_objects(helm_template())
    component = observer_objects(component_objects(("observe",)))
    expect(kinds(chart) == kinds(component) == sorted(f"{k}/gracehook-observe" for k in OBSERVER_KINDS),
           f"{kinds(chart)} != {kinds(component)}")
    for k in component:
        c = json.loads(json.dumps(find(chart, k["kind"], k["metadata"]["name"])))
        k = json.loads(json.dumps(k))
        for o in (c, k):
            o["metadata"].pop("labels", None)
            o["metadata"].pop("annotations", None)
        if k["kind"] == "Deployment":
            k_labels = k["spec"]["template"]["metadata"].pop("labels")
            c_labels = c["spec"]["template"]["metadata"].pop("labels")
            expect(all(c_labels.get(key) == v for key, v in k_labels.items()), f"pod labels {c_labels} lack {k_labels}")
            expect(c_labels.get("app.kubernetes.io/name") == "gracehook-observe", c_labels)
        expect_equal(c, k, f"{k['kind']}/{k['metadata']['name']} of the chart and manifests/observe")
    # The webhook's objects are the same with the observer or without it (a
    # fixed certificate: `generate` makes a new CA at every render).
    with_observer = helm_template(*SOURCES["secret"])
    expect_equal([o for o in with_observer if o not in observer_objects(with_observer)],
                 helm_template("observe.enabled=false", *SOURCES["secret"]),
                 "the webhook's objects with and without the observer")


@scenario
def observe_enabled_false_renders_no_observer_object(t):
    for sets in ((), ("monitoring.enabled=true",), *((s,) for s in SOURCES["cert-manager"][:1])):
        on = helm_template(*sets)
        expect(kinds(observer_objects(on)) == sorted(f"{k}/gracehook-observe" for k in OBSERVER_KINDS),
               f"{sets}: {kinds(observer_objects(on))}")
        off = helm_template("observe.enabled=false", *sets)
        leftover = [f"{o['kind']}/{o['metadata']['name']}" for o in off
                    if "observe" in o["metadata"]["name"] or o in observer_objects(off)
                    or o["kind"] in ("Role", "RoleBinding")]
        expect(not leftover, f"observe.enabled=false {sets}: {leftover}")
        expect(len(off) == len(on) - len(OBSERVER_KINDS), f"{len(off)} objects, {len(on)} with the observer")
    # The webhook-free mode renders no observer either.
    expect(not observer_objects(helm_template("policy.enabled=true")), "an observer in policy mode")


@scenario
def observer_values_reach_the_objects(t):
    objects = helm_template("observe.replicas=3", "observe.leaseDuration=30s", "observe.resources.limits.memory=1Gi",
                            "observe.priorityClassName=platform-low", "observe.extraEnv[0].name=GRACEHOOK_MAX_OWNERS",
                            "observe.extraEnv[0].value=1000", "logFormat=text", "image.tag=9.9.9",
                            "observe.podAnnotations.team=platform", "nodeSelector.pool=system",
                            release="web", namespace="hooks")
    deploy = find(objects, "Deployment", "web-gracehook-observe")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    expect(deploy["spec"]["replicas"] == 3 and deploy["metadata"]["namespace"] == "hooks", deploy["metadata"])
    expect(container["args"] == ["observe"] and container["image"] == "ghcr.io/gracehook/gracehook:9.9.9", container)
    expect(env["GRACEHOOK_LEASE_DURATION"]["value"] == "30s" and env["GRACEHOOK_LOG_FORMAT"]["value"] == "text"
           and env["GRACEHOOK_MAX_OWNERS"]["value"] == "1000", env)
    expect(container["resources"]["limits"]["memory"] == "1Gi", container["resources"])
    expect(pod["priorityClassName"] == "platform-low" and pod["nodeSelector"] == {"pool": "system"}, pod)
    expect(deploy["spec"]["template"]["metadata"]["annotations"]["team"] == "platform", deploy["spec"]["template"])
    # The Lease: in the pod's namespace, named as the Role allows, held by the pod's name.
    lease = env["GRACEHOOK_LEASE_NAME"]["value"]
    expect(lease == "web-gracehook-observe", lease)
    expect(env["GRACEHOOK_LEASE_NAMESPACE"].get("valueFrom") == {"fieldRef": {"fieldPath": "metadata.namespace"}}, env)
    expect(env["GRACEHOOK_IDENTITY"].get("valueFrom") == {"fieldRef": {"fieldPath": "metadata.name"}}, env)
    role = find(objects, "Role", "web-gracehook-observe")
    expect(role["metadata"]["namespace"] == "hooks", role["metadata"])
    expect([r.get("resourceNames") for r in role["rules"]] == [[lease], None], role["rules"])
    sa = pod["serviceAccountName"]
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        binding = find(objects, kind, "web-gracehook-observe")
        expect(binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "hooks"}], binding)
    expect(sa == "web-gracehook-observe" and sa != webhook_deployment(objects)["spec"]["template"]["spec"]["serviceAccountName"],
           "the observer shares the webhook's ServiceAccount")
    # No class by default, unlike the webhook.
    default = find(helm_template(), "Deployment", "gracehook-observe")["spec"]["template"]["spec"]
    expect("priorityClassName" not in default, default.get("priorityClassName"))


@scenario
def the_observer_network_policy_opens_metrics_to_prometheus_and_egress_to_the_api_server_ports(t):
    objects = helm_template()
    policy = find(objects, "NetworkPolicy", "gracehook-observe")
    observer = find(objects, "Deployment", "gracehook-observe")["spec"]["template"]["metadata"]["labels"]
    webhook = webhook_deployment(objects)["spec"]["template"]["metadata"]["labels"]
    expect(selects(policy["spec"]["podSelector"], observer) and not selects(policy["spec"]["podSelector"], webhook),
           policy["spec"]["podSelector"])
    expect(not selects(find(objects, "NetworkPolicy", "gracehook")["spec"]["podSelector"], observer),
           "the webhook's policy selects the observer")
    expect(policy["spec"]["policyTypes"] == ["Ingress", "Egress"], policy["spec"])
    expect(len(policy["spec"]["ingress"]) == 1, policy["spec"]["ingress"])
    expect(ingress_rule(policy, 9090)["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}], policy["spec"]["ingress"])
    expect(policy["spec"]["egress"] == [{"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}],
           policy["spec"]["egress"])
    ports = find(objects, "Deployment", "gracehook-observe")["spec"]["template"]["spec"]["containers"][0]["ports"]
    expect(ports == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}], ports)
    # The metrics peers are the webhook's; egress [] leaves egress open; off with networkPolicy.enabled.
    narrow = find(helm_template("networkPolicy.metrics.from[0].namespaceSelector.matchLabels.team=observability",
                                "observe.networkPolicy.egress=null"), "NetworkPolicy", "gracehook-observe")
    expect(ingress_rule(narrow, 9090)["from"] == [{"namespaceSelector": {"matchLabels": {"team": "observability"}}}],
           narrow["spec"])
    expect(narrow["spec"]["policyTypes"] == ["Ingress"] and "egress" not in narrow["spec"], narrow["spec"])
    off = helm_template("networkPolicy.enabled=false")
    expect("NetworkPolicy" not in [o["kind"] for o in off], kinds(off))
