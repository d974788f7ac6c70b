"""e2e scenarios for operating gracehook (docs/operations.md): the metrics the
alerts select exist on the real kube-apiserver and on gracehook, the API
server's fail-open counter rises while gracehook is down, and the Helm chart's
objects pass the API server's validation. Imported by `run`; helm comes from
tests/ops/provision (cached under ~/.cache/gracehook).
"""

import base64
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request

from cluster import REPO, log, pod, prestop
from harness import expect, scenario, wait_for

CHART = os.path.join(REPO, "charts", "gracehook")
RULES = os.path.join(CHART, "files", "prometheusrule.yaml")
# Kinds of CRDs the e2e API server does not have.
FOREIGN_GROUPS = ("cert-manager.io/", "monitoring.coreos.com/")
FAILED_OPEN = "failed-open.mutation.webhook.admission.k8s.io/"
_helm = []
_outages = []


def helm(c, *args, check=True):
    if not _helm:
        out = subprocess.run([os.path.join(REPO, "tests", "ops", "provision")], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        _helm.append(os.path.join(out.strip().splitlines()[-1], "helm"))
    home = os.path.join(c.dir, "helm")
    env = dict(c.env, HELM_CACHE_HOME=home, HELM_CONFIG_HOME=home, HELM_DATA_HOME=home)
    result = subprocess.run([_helm[0], *args], env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {result.stderr}")
    return result


def documents(yaml_text):
    """helm's output, one YAML document per item."""
    docs, current = [], []
    for line in yaml_text.splitlines():
        if line == "---":
            docs.append("\n".join(current))
            current = []
        else:
            current.append(line)
    docs.append("\n".join(current))
    return [d for d in docs if re.search(r"^kind:", d, re.M)]


def api_version(doc):
    return re.search(r"^apiVersion: (\S+)", doc, re.M).group(1)


# -- metrics ------------------------------------------------------------------

LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text):
    """Prometheus text: [(name, {label: value})]."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s", line)
        if m:
            out.append((m.group(1), dict(LABEL.findall(m.group(2) or ""))))
    return out


def api_metrics(c):
    return samples(c.kubectl("get", "--raw", "/metrics").stdout)


def value(c, metric, **labels):
    """The sum of the API server's series of `metric` with these labels."""
    total = 0.0
    for line in c.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if line.startswith(metric + "{"):
            name_labels, number = line.rsplit(" ", 1)
            found = dict(LABEL.findall(name_labels))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(number)
    return total


def selectors(prefix, jobs=(None, "gracehook")):
    """The series selectors of the alert rules for metrics starting with
    `prefix` and scraped by one of `jobs` (None: no job selected; the
    observer's job is "gracehook-observe"): [(metric, [(label, op, value)])],
    `job` left out (Prometheus adds it)."""
    text = open(RULES).read()
    found = []
    for metric, body in re.findall(r"\b(" + prefix + r"\w*)\{([^}]*)\}", text):
        matchers = re.findall(r'(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"', body)
        job = next((v for k, _, v in matchers if k == "job"), None)
        if job not in jobs:
            continue
        found.append((metric, [(k, op, v) for k, op, v in matchers if k != "job"]))
    return found


def matches(labels, matchers):
    for key, op, want in matchers:
        got = labels.get(key, "")
        ok = {"=": got == want, "!=": got != want, "=~": re.fullmatch(want, got) is not None,
              "!~": re.fullmatch(want, got) is None}[op]
        if not ok:
            return False
    return True


WEBHOOKS = ("enforce.gracehook.io", "audit.gracehook.io")


def counters(c):
    return {name: (value(c, "apiserver_admission_webhook_fail_open_count", name=name),
                   value(c, "apiserver_admission_webhook_request_total", name=name)) for name in WEBHOOKS}


def outage(c, enforce_ns, audit_ns):
    """Points the webhook configuration at a gracehook started here, stops it,
    creates a pod in each namespace (failing open), and restores the
    registration of the suite's gracehook. Returns the pods' names and, per
    webhook, how much its fail-open and request counters rose meanwhile."""
    _outages.append(enforce_ns)
    port, metrics = c.start_gracehook("gracehook-outage")
    try:
        c.register(port, metrics)
        c.stop("gracehook-outage")
        before = counters(c)
        names = []
        for ns in (enforce_ns, audit_ns):
            name = f"during-outage-{len(_outages)}"
            c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod(name)))
            names.append(name)
        after = counters(c)
        rose = {name: (after[name][0] - before[name][0], after[name][1] - before[name][1]) for name in WEBHOOKS}
        return names, rose
    finally:
        c.stop("gracehook-outage")
        c.register(c.webhook_port, c.metrics_port)


# -- scenarios ---------------------------------------------------------------

@scenario
def fail_open_counter_rises_while_gracehook_is_down(c):
    enforce, audit = c.namespace("ops-outage", "enforce"), c.namespace("ops-outage-audit", "audit")
    (during, during_audit), rose = outage(c, enforce, audit)
    expect(prestop(c.get_pod(enforce, during)) is None, "mutated while gracehook was down")
    # One pod per namespace, one call each, and every call failed open: the
    # alert's ratio (fail-open over requests) is 100%.
    expect(rose == {name: (1.0, 1.0) for name in WEBHOOKS}, f"(fail-open, requests) rose by {rose}")
    # The API server's log says why, and its audit log names the pods (the
    # runbook's checks).
    expect("Failed calling webhook, failing open enforce.gracehook.io" in c.tail("kube-apiserver", 400),
           "no fail-open line in the API server's log")

    def annotated():
        marked = {}
        with open(c.audit_log) as f:
            for line in f:
                event = json.loads(line)
                ref = event.get("objectRef", {})
                if event.get("verb") == "create" and ref.get("resource") == "pods" and ref.get("name") in (during, during_audit):
                    for key, val in event.get("annotations", {}).items():
                        if key.startswith(FAILED_OPEN):
                            marked[ref["name"]] = val
        return marked == {during: "enforce.gracehook.io", during_audit: "audit.gracehook.io"} or None
    wait_for("the failed-open annotations in the audit log", annotated, timeout=10)
    # Restored: no more failing open.
    fail_open = value(c, "apiserver_admission_webhook_fail_open_count", name="enforce.gracehook.io")
    c.kubectl("create", "-n", enforce, "-f", "-", input=json.dumps(pod("after")))
    expect(prestop(c.get_pod(enforce, "after")) == {"sleep": {"seconds": 5}}, "mutation did not resume")
    expect(value(c, "apiserver_admission_webhook_fail_open_count", name="enforce.gracehook.io") == fail_open,
           "failed open after the restore")


@scenario
def api_server_and_gracehook_expose_what_the_alerts_select(c):
    # Some API server series exist only once a call, a denial or a failure
    # happened: make each happen here.
    enforce, audit = c.namespace("ops-metrics", "enforce"), c.namespace("ops-metrics-audit", "audit")
    c.kubectl("create", "-n", enforce, "-f", "-", input=json.dumps(pod("called")))
    c.kubectl("create", "-n", audit, "-f", "-", input=json.dumps(pod("called")))
    denied = c.create_pod(pod("denied", {"gracehook.io/margin": "soon"}), "-n", enforce)
    expect(denied.returncode != 0, "the invalid pod was admitted")
    present = api_metrics(c)
    names = {"enforce.gracehook.io", "audit.gracehook.io"}
    failed = {l.get("name") for m, l in present if m == "apiserver_admission_webhook_fail_open_count"}
    if not names <= failed:
        outage(c, enforce, audit)
        present = api_metrics(c)

    used = selectors("apiserver_")
    expect({m for m, _ in used} >= {"apiserver_admission_webhook_fail_open_count",
                                    "apiserver_admission_webhook_request_total"}, used)
    # The runbook reads these too.
    used += [("apiserver_admission_webhook_rejection_count",
              [("name", "=", "enforce.gracehook.io"), ("error_type", "=", "no_error"), ("rejection_code", "=", "400")]),
             ("apiserver_admission_webhook_admission_duration_seconds_bucket", [("name", "=", "enforce.gracehook.io")])]
    missing = [f"{m}{ {k: v for k, _, v in ls} }" for m, ls in used
               if not any(name == m and matches(labels, ls) for name, labels in present)]
    expect(not missing, f"not on the API server's /metrics: {missing}")
    log(f"the API server exposes the {len(used)} series the alerts and the runbook select")

    text = urllib.request.urlopen(f"http://127.0.0.1:{c.metrics_port}/metrics", timeout=5).read().decode()
    mine = samples(text)
    used = selectors("gracehook_")
    expect(len({m for m, _ in used}) >= 4, used)
    missing = [f"{m}{ {k: v for k, _, v in ls} }" for m, ls in used
               if not any(name == m and matches(labels, ls) for name, labels in mine)]
    expect(not missing, f"not on gracehook's /metrics: {missing}")


@scenario
def chart_objects_pass_server_side_validation(c):
    c.kubectl("create", "namespace", "gracehook-system", check=False)
    sources = {
        "generate": [],
        "cert-manager": ["certificate.source=cert-manager"],
        "secret": ["certificate.source=secret", "certificate.secret.name=gracehook-tls",
                   "certificate.secret.caBundle=" + c.ca_bundle],
    }
    for name, sets in sources.items():
        args = [a for s in sets + ["monitoring.enabled=true"] for a in ("--set", s)]
        rendered = helm(c, "template", "gracehook", CHART, "--namespace", "gracehook-system", *args).stdout
        docs = documents(rendered)
        skipped = sorted(re.search(r"^kind: (\S+)", d, re.M).group(1) for d in docs
                         if api_version(d).startswith(FOREIGN_GROUPS))
        want = ["PrometheusRule", "ServiceMonitor"] + (["Certificate", "Certificate", "Issuer", "Issuer"]
                                                       if name == "cert-manager" else [])
        expect(skipped == sorted(want), f"{name}: CRD kinds {skipped}")
        kept = "\n---\n".join(d for d in docs if not api_version(d).startswith(FOREIGN_GROUPS))
        objects = c.to_objects(kept)
        expect(len(objects) == len(docs) - len(skipped) and len(objects) >= 7, f"{name}: {len(objects)} objects")
        result = c.kubectl("apply", "--dry-run=server", "-f", "-", check=False,
                           input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
        expect(result.returncode == 0, f"{name}: {result.stderr}")
        expect("Warning" not in result.stderr, f"{name} warnings: {result.stderr}")
        log(f"chart ({name}): {len(objects)} objects pass server-side validation ({len(skipped)} CRD objects skipped)")


def pem_certificates(b64):
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                      base64.b64decode(b64).decode(), re.S)


@scenario
def chart_generated_certificate_is_kept_by_upgrades_then_renewed(c):
    """certificate.source=generate on a real API server: `helm install`, then
    `helm upgrade` keeps the Secret (lookup), and an upgrade inside renewDays
    makes a new pair while the caBundle still trusts the old CA."""
    ns = c.namespace("ops-certs")
    # Not `gracehook`: helm would refuse to take over the suite's own
    # MutatingWebhookConfiguration of that name. The release's configuration
    # is live while it exists, so no pod is created until it is uninstalled.
    release, name = "certs", "certs-gracehook"

    def installed():
        secret = json.loads(c.kubectl("get", "secret", "-n", ns, f"{name}-tls", "-o", "json").stdout)
        config = json.loads(c.kubectl("get", "mutatingwebhookconfiguration", name, "-o", "json").stdout)
        bundles = {w["clientConfig"]["caBundle"] for w in config["webhooks"]}
        expect(len(bundles) == 1, bundles)
        return secret, bundles.pop()

    helm(c, "install", release, CHART, "--namespace", ns)
    try:
        first, bundle = installed()
        expect(bundle == first["data"]["ca.crt"], "the caBundle is not the Secret's CA")
        helm(c, "upgrade", release, CHART, "--namespace", ns, "--reuse-values")
        kept, bundle = installed()
        expect(kept["data"] == first["data"], "helm upgrade made a new certificate")
        expect(bundle == first["data"]["ca.crt"], "helm upgrade changed the caBundle")

        # The certificate (365 days) is now inside renewDays, as it will be
        # after 335 days with the default of 30.
        helm(c, "upgrade", release, CHART, "--namespace", ns, "--reuse-values",
             "--set", "certificate.generate.renewDays=400")
        renewed, bundle = installed()
        expect(renewed["data"]["tls.crt"] != first["data"]["tls.crt"]
               and renewed["data"]["ca.crt"] != first["data"]["ca.crt"], "not renewed inside renewDays")
        expect(int(renewed["metadata"]["annotations"]["gracehook.io/not-after"])
               >= int(first["metadata"]["annotations"]["gracehook.io/not-after"]), renewed["metadata"])
        expect(pem_certificates(bundle) == pem_certificates(renewed["data"]["ca.crt"]) + pem_certificates(first["data"]["ca.crt"]),
               "the caBundle is not the new CA and then the old one")
        # Both the new certificate and the old one, served until the pods
        # reload, verify against the bundle.
        d = tempfile.mkdtemp(dir=c.dir)
        with open(f"{d}/bundle.pem", "wb") as f:
            f.write(base64.b64decode(bundle))
        for label, secret in (("new", renewed), ("old", first)):
            with open(f"{d}/{label}.crt", "wb") as f:
                f.write(base64.b64decode(secret["data"]["tls.crt"]))
            result = subprocess.run(["openssl", "verify", "-CAfile", f"{d}/bundle.pem", "-verify_hostname",
                                     f"{name}.{ns}.svc", f"{d}/{label}.crt"], capture_output=True, text=True)
            expect(result.returncode == 0, f"the {label} certificate does not verify: {result.stdout}{result.stderr}")
    finally:
        helm(c, "uninstall", release, "--namespace", ns, check=False)
        c.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found")
        time.sleep(1.5)  # the API server drops the configuration asynchronously
