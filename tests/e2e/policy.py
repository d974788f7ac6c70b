"""Webhook-free mode on the real API server (docs/policy.md): the policies
`gracehook policy` prints, against the webhook, pod by pod.

Every pod is created twice over HTTP — once in namespaces the webhook
handles, once in namespaces the generated policies handle, with the
webhook's registration removed meanwhile — in enforce and in audit mode,
and the answers are compared: the stored pods field by field, what is
denied and why, and the warnings. The known differences are excused by
name, from DIFFERENCES, the list docs/policy.md shows. Then the cost: pod
CREATE latency with the webhook, with the policies and with neither.
"""

import contextlib
import copy
import json
import os
import random
import re
import subprocess
import time

from cluster import REPO, SEED, SEED_HOOK, log, percentile, pod
from mesh import istio_init, istio_proxy, linkerd_init, linkerd_proxy, meshed
from harness import expect, scenario, wait_for

# The documented differences (docs/policy.md, "Differences"), by name: the
# only ones the comparison excuses. A test checks that docs/policy.md names
# every one.
DIFFERENCES = {
    "denial-status": "a denial is 422 Invalid from the policy, 400 BadRequest from the webhook",
    "message-prefix": "the API server's own prefix before gracehook's message differs",
    "api-validation-first": "a pod the API server's validation refuses gets that error, not gracehook's",
    "raised-grace-warning": "the policy does not warn that it raised the grace period",
    "notes-in-one-warning": "the enforce-mode notes come as one warning, joined with '; '",
    "notes-when-unchanged": "the notes warning also comes for a pod that needed no change",
    "duration-overflow": "a Go-style duration beyond int64 nanoseconds fails in CEL: denied with the API server's "
                         "error in enforce mode, no warning in audit mode",
}

# Go-style durations beyond int64 nanoseconds (about 292 years): the
# webhook reads them and refuses the grace period above --max-grace; CEL's
# duration() fails (`duration-overflow`).
DURATIONS_OVERFLOW = ["9999999h", "300000000000s"]

POLICY_KINDS = ("mutatingadmissionpolicies,mutatingadmissionpolicybindings,"
                "validatingadmissionpolicies,validatingadmissionpolicybindings")
POLICY_SELECTOR = "app.kubernetes.io/component=policy"
PREFIX = re.compile(r"^Validation failed for ValidatingAdmissionPolicy '[^']+' with binding '[^']+': ")


# -- HTTP --------------------------------------------------------------------

def warnings_of(response):
    """The Warning headers' texts (`299 - "text"`, quotes escaped)."""
    found = []
    for value in response.headers.get_all("Warning") or []:
        match = re.match(r'^\d{3} \S+ "(.*)"$', value)
        text = match.group(1) if match else value
        found.append(re.sub(r'\\(.)', r'\1', text))
    return found


class Api:
    """One keep-alive HTTPS connection to the API server."""

    def __init__(self, c):
        self.c = c
        self.conn, self.headers = c.api()

    def create(self, namespace, body, dry_run=False):
        path = f"/api/v1/namespaces/{namespace}/pods" + ("?dryRun=All" if dry_run else "")
        for attempt in range(3):
            try:
                self.conn.request("POST", path, body=json.dumps(body), headers=self.headers)
                response = self.conn.getresponse()
                data = json.loads(response.read() or b"{}")
                return {"status": response.status, "body": data, "warnings": warnings_of(response)}
            except (ConnectionError, OSError):
                if attempt == 2:
                    raise
                self.conn.close()
                self.conn, self.headers = self.c.api()

    def close(self):
        self.conn.close()


# -- the policies -------------------------------------------------------------

def policy_objects(c, *flags):
    result = subprocess.run([c.gracehook, "policy", "-o", "json", *flags], capture_output=True,
                            text=True, timeout=30, env=c.env)
    expect(result.returncode == 0, f"gracehook policy {' '.join(flags)}: {result.stderr}")
    return json.loads(result.stdout)


def plain_pod(name, annotations=None):
    return pod(name, annotations)


def active(c, api, enforce, audit):
    """Whether the API server runs the policies: it mutates, denies and warns."""
    mutated = api.create(enforce, plain_pod("probe"), dry_run=True)
    if mutated["status"] != 201 or "lifecycle" not in mutated["body"]["spec"]["containers"][0]:
        return False
    denied = api.create(enforce, plain_pod("probe", {"gracehook.io/margin": "soon"}), dry_run=True)
    warned = api.create(audit, plain_pod("probe"), dry_run=True)
    return denied["status"] >= 400 and any("gracehook audit:" in w for w in warned["warnings"])


def inactive(api, enforce):
    plain = api.create(enforce, plain_pod("probe"), dry_run=True)
    invalid = api.create(enforce, plain_pod("probe", {"gracehook.io/margin": "soon"}), dry_run=True)
    return (plain["status"] == 201 and "lifecycle" not in plain["body"]["spec"]["containers"][0]
            and invalid["status"] == 201)


@contextlib.contextmanager
def policies_instead_of_the_webhook(c, flags, enforce, audit, restore=None):
    """The generated policies applied, the webhook's registration removed;
    afterwards the policies removed and the webhook registered again."""
    api = Api(c)
    c.kubectl("delete", "mutatingwebhookconfiguration", "gracehook")
    try:
        c.kubectl("apply", "-f", "-", input=json.dumps(policy_objects(c, *flags)))
        wait_for("the API server to run the policies", lambda: active(c, api, enforce, audit),
                 timeout=30, interval=0.3)
        yield
    finally:
        c.kubectl("delete", POLICY_KINDS, "-l", POLICY_SELECTOR, "--wait=true", check=False)
        wait_for("the API server to drop the policies", lambda: inactive(api, enforce),
                 timeout=30, interval=0.3)
        api.close()
        port, metrics = restore or (c.webhook_port, c.metrics_port)
        c.register(port, metrics)


# -- the pods -----------------------------------------------------------------

def container(name, prestop=None, lifecycle=None):
    c = {"name": name, "image": "busybox:1.36"}
    if lifecycle is not None:
        c["lifecycle"] = lifecycle
    if prestop is not None:
        c.setdefault("lifecycle", {})["preStop"] = prestop
    return c


def templates(c):
    """The pod templates of the fixtures and the example."""
    found = []
    for path in ("tests/fixtures/multi-container.yaml", "tests/fixtures/workloads.yaml",
                 "tests/fixtures/invalid.yaml", "examples/apache-deployment.yaml"):
        for obj in c.to_objects(open(os.path.join(REPO, path)).read()):
            kind, spec = obj["kind"], obj.get("spec", {})
            template = {"Pod": obj, "CronJob": spec.get("jobTemplate", {}).get("spec", {}).get("template")
                        }.get(kind, spec.get("template"))
            if template and kind != "Service":
                found.append((f"{os.path.basename(path)}:{kind}/{obj['metadata'].get('name')}", template))
    return found


def as_pod(name, template):
    metadata = template.get("metadata", {})
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "annotations": dict(metadata.get("annotations", {})),
                      "labels": dict(metadata.get("labels", {}))},
         "spec": copy.deepcopy(template["spec"])}
    return p


DURATIONS_OK = ["3s", "1.5s", "500ms", "90", "1m30s", "+7", " 30 ", ".5s", "5.s", "1h", "0", "0s",
                "1µs", "2500us", "3s500ms", "+", "000000000000000000030", "2m", "45", "10s"]
DURATIONS_BAD = ["thirty", "-5s", "1.5", "5sec", "5d", "1s2", "", " ", "99999999999999999999", "-0",
                 "1.5s3.5", "1s.", "s", ".s", "5 s"]
HOOK_EXEC = {"exec": {"command": SEED_HOOK}}


def named_cases(c):
    """The pods the issue names: fixtures, the seed, overrides, sidecars and
    proxies, existing hooks, odd durations, invalid values, many containers."""
    cases = [(label, as_pod("x", t)) for label, t in templates(c)]
    cases += [
        ("seed", pod("x", dict(SEED), grace=30)),
        ("defaults", pod("x")),
        ("seed with an istio-proxy and a linkerd-proxy",
         pod("x", dict(SEED), containers=[container("web"), container("istio-proxy"), container("linkerd-proxy")])),
        ("per-container overrides", pod("x", {
            "gracehook.io/drain-delay": "2s", "gracehook.io/drain-delay.api": "4s",
            "gracehook.io/request-timeout.api": "1m", "gracehook.io/drain-command.web": "nginx -s quit",
            "gracehook.io/inject.jobs": "false", "gracehook.io/inject.api": "true"},
            containers=[container("web"), container("api"), container("jobs")])),
        ("native sidecar and init container", {**pod("x", {"gracehook.io/containers": "web, log, setup, ghost"}),
            "spec": {"initContainers": [{**container("log"), "restartPolicy": "Always"}, container("setup")],
                     "containers": [container("web"), container("other")]}}),
        ("gracehook's own hooks already there", pod("x", dict(SEED), containers=[
            container("web", HOOK_EXEC), container("b", {"sleep": {"seconds": 3}})], grace=40)),
        ("a hook of its own and a postStart", pod("x", {"gracehook.io/drain-delay": "4s"}, containers=[
            container("own", {"httpGet": {"path": "/drain", "port": 8080}}),
            container("post", lifecycle={"postStart": {"exec": {"command": ["true"]}}}),
            container("older", {"exec": {"command": ["sh", "-c", "sleep 3; apachectl -k graceful-stop; sleep 30"]}}),
            container("pasted", {"exec": {"command": [
                "sh", "-c", "trap 'exit 0' TERM; sleep 3; apachectl -k graceful-stop; sleep 30 & wait"]}})])),
        ("status already recorded", pod("x", {"gracehook.io/status": '{"grace":40,"containers":{"web":"sleep"}}'},
                                         containers=[container("web", {"sleep": {"seconds": 5}})], grace=40)),
        ("a stale status", pod("x", {"gracehook.io/status": "old"})),
        ("a longer grace period kept", pod("x", dict(SEED), grace=120)),
        ("a short grace period raised", pod("x", dict(SEED), grace=10)),
        ("no grace period", pod("x", dict(SEED))),
        ("no delay, no command", pod("x", {"gracehook.io/drain-delay": "0"})),
        ("no delay, a command", pod("x", {"gracehook.io/drain-delay": "0s", "gracehook.io/drain-command": "nginx -s quit"})),
        ("opted out by annotation", pod("x", {"gracehook.io/inject": " false "})),
        ("opted out by label", pod("x", labels={"gracehook.io/inject": "false"})),
        ("inject true", pod("x", {"gracehook.io/inject": "true"})),
        ("downgraded to audit", pod("x", {**SEED, "gracehook.io/mode": "audit"})),
        ("downgraded to audit, invalid", pod("x", {"gracehook.io/mode": " audit", "gracehook.io/margin": "soon"})),
        ("mode enforce", pod("x", {"gracehook.io/mode": "enforce"})),
        ("unknown keys", pod("x", {"gracehook.io/drain-dealy": "3s", "gracehook.io/margin.web": "1s",
                                   "gracehook.io/drain-delay.ghost": "1s"})),
        ("only skipped containers", pod("x", containers=[container("istio-proxy")])),
        ("invalid value on a skipped container", pod("x", {"gracehook.io/drain-delay.istio-proxy": "soon"},
                                                      containers=[container("web"), container("istio-proxy")])),
        ("invalid value on an opted-out container", pod("x", {"gracehook.io/inject.web": "false",
                                                              "gracehook.io/drain-delay.web": "soon"})),
        ("Windows with a command", {**pod("x", dict(SEED)), "spec": {"os": {"name": "windows"},
                                                                    "containers": [container("web")]}}),
        ("Windows without delay", {**pod("x", {"gracehook.io/drain-delay": "0", "gracehook.io/drain-command": "x"}),
                                   "spec": {"os": {"name": "windows"}, "containers": [container("web")]}}),
        ("above the maximum grace", pod("x", {"gracehook.io/request-timeout": "1h"})),
        ("just below the maximum grace", pod("x", {"gracehook.io/request-timeout": "59m50s"})),
        ("a margin above the maximum", pod("x", {"gracehook.io/margin": "2h"},
                                           containers=[container("a"), container("b")])),
        ("a mirror pod", {**pod("x", {"kubernetes.io/config.mirror": "abc", "gracehook.io/margin": "soon"}),
                          "spec": {"nodeName": "node-1", "containers": [container("web")]}}),
        ("a generated name", {**pod("x", {"gracehook.io/margin": "soon"}),
                              "metadata": {"generateName": "gen-", "annotations": {"gracehook.io/margin": "soon"}}}),
        ("many containers", pod("x", {f"gracehook.io/drain-delay.c{i}": f"{i % 7}s" for i in range(0, 40, 3)}
                                | {"gracehook.io/drain-command.c5": "nginx -s quit"},
                                containers=[container(f"c{i}") for i in range(40)])),
    ]
    cases += mesh_cases()
    for value in DURATIONS_OVERFLOW:
        cases.append((f"overflow: drain-delay {value!r}", pod("x", {"gracehook.io/drain-delay": value})))
    for value in DURATIONS_OK + DURATIONS_BAD:
        cases.append((f"drain-delay {value!r}", pod("x", {"gracehook.io/drain-delay": value})))
        cases.append((f"request-timeout.web {value!r}", pod("x", {"gracehook.io/request-timeout.web": value})))
    for key, value in [("gracehook.io/inject", "no"), ("gracehook.io/mode", "strict"),
                       ("gracehook.io/drain-command", "  "), ("gracehook.io/containers", " , "),
                       ("gracehook.io/inject.web", "maybe"), ("gracehook.io/drain-command.web", ""),
                       ("gracehook.io/containers", "ghost"), ("gracehook.io/containers", "web,web"),
                       # Drain commands: each runs as the hook's argument, whatever its text;
                       # open quoting is refused by both.
                       ("gracehook.io/drain-command", "nginx -s quit;"),
                       ("gracehook.io/drain-command", "nginx -s quit &"),
                       ("gracehook.io/drain-command", "kill -QUIT 1 # don't wait"),
                       ("gracehook.io/drain-command", "echo \"a 'b'\" && true || false | cat\nsecond line"),
                       ("gracehook.io/drain-command", "echo $HOME ${X:-y} \\\nnext"),
                       ("gracehook.io/drain-command", "echo 'unclosed"),
                       ("gracehook.io/drain-command.web", "echo \"a\\\""),
                       ("gracehook.io/drain-command", "nginx -s quit \\")]:
        cases.append((f"{key} {value!r}", pod("x", {key: value})))
    return cases


def mesh_cases():
    """Istio- and Linkerd-injected pods (tests/e2e/mesh.py), mesh settings
    read, unreadable and contradicting the plan, and named sidecars."""
    web = {"name": "web", "image": "httpd:2.4.43"}
    shipper = {"name": "log-shipper", "image": "fluent/fluent-bit:3.0", "restartPolicy": "Always"}
    cases = [
        ("Istio classic, 20s drain, hold", meshed("x", [istio_proxy(drain="20s", hold=True), web], [istio_init()],
                                                  {"proxy.istio.io/config": "terminationDrainDuration: 20s"})),
        ("Istio native", meshed("x", [web], [istio_init(), istio_proxy(native=True)])),
        ("Istio native, drain in PROXY_CONFIG only", meshed("x", [web], [istio_proxy(native=True, drain="40s")])),
        ("Istio, JSON config", meshed("x", [web, istio_proxy()], [],
                                      {"proxy.istio.io/config": '{ "terminationDrainDuration": "1m" }'})),
        ("Istio, unreadable config", meshed("x", [web, istio_proxy(drain="12s")], [],
                                            {"proxy.istio.io/config": "terminationDrainDuration: forever"})),
        ("Istio, key without value", meshed("x", [web, istio_proxy()], [],
                                            {"proxy.istio.io/config": "terminationDrainDuration"})),
        ("Istio, exit on zero", meshed("x", [web, {**istio_proxy(), "env": [
            {"name": "EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "value": "true"},
            {"name": "MINIMUM_DRAIN_DURATION", "value": "2s"}]}])),
        ("Istio, exit on zero, bad minimum", meshed("x", [web, {**istio_proxy(), "env": [
            {"name": "EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "value": "true"},
            {"name": "MINIMUM_DRAIN_DURATION", "value": "soon"}]}])),
        ("Istio opted out, 5s drain", meshed("x", [web, istio_proxy(drain="5s")], [],
                                             {"gracehook.io/inject.istio-proxy": "false",
                                              "proxy.istio.io/config": "terminationDrainDuration: 5s"})),
        ("Istio proxy with a hook already", meshed("x", [web, {**istio_proxy(), "lifecycle": {
            "preStop": {"sleep": {"seconds": 33}}}}])),
        ("Linkerd classic, wait before exit 5", meshed("x", [linkerd_proxy(wait_before_exit=5), web],
                                                       [linkerd_init()])),
        ("Linkerd classic, sh sleep 60", meshed("x", [{**linkerd_proxy(), "lifecycle": {"preStop": {"exec": {
            "command": ["sh", "-c", "sleep 60"]}}}}, web])),
        ("Linkerd native, 30s grace", meshed("x", [web], [linkerd_init(), linkerd_proxy(native=True, grace="30000ms")],
                                             {"config.linkerd.io/shutdown-grace-period": "30s"})),
        ("Linkerd native, unreadable grace", meshed("x", [web], [linkerd_proxy(native=True, grace="later")])),
        ("two native sidecars add up", meshed("x", [web], [linkerd_proxy(native=True, grace="10s"), shipper],
                                              {"gracehook.io/sidecar-shutdown.log-shipper": "4s"})),
        ("a named sidecar, its typo", meshed("x", [web], [shipper], {"gracehook.io/sidecar-shutdown.log-shiper": "8s",
                                                                     "gracehook.io/sidecar-shutdown.web": "1s"})),
        ("an invalid sidecar shutdown", meshed("x", [web], [shipper],
                                               {"gracehook.io/sidecar-shutdown.log-shipper": "soon"})),
        ("an invalid sidecar inject", meshed("x", [web, istio_proxy()], [], {"gracehook.io/inject.istio-proxy": "no"})),
        ("a sidecar shutdown above the maximum", meshed("x", [web], [shipper],
                                                        {"gracehook.io/sidecar-shutdown.log-shipper": "2h"})),
        ("only a proxy, an invalid sidecar shutdown", {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "x", "annotations": {"gracehook.io/sidecar-shutdown.istio-proxy": "soon"}},
            "spec": {"containers": [istio_proxy()]}}),
        ("Windows, a classic proxy", {**meshed("x", [web, istio_proxy()]),
                                      "spec": {"os": {"name": "windows"}, "containers": [web, istio_proxy()]}}),
        ("no drain, a classic proxy", meshed("x", [web, istio_proxy()], [], {"gracehook.io/drain-delay": "0",
                                                                             "gracehook.io/request-timeout": "0"})),
    ]
    return [(label, p) for label, p in cases]


def generated_cases(seed, count):
    """Seeded random pods: containers from a small pool (mesh proxies
    included), annotations from valid and invalid values, own hooks, grace
    periods."""
    rng = random.Random(seed)
    names = ["web", "api", "worker", "istio-proxy", "linkerd-proxy", "envoy", "log"]
    commands = ["apachectl -k graceful-stop", "nginx -s quit", "  ", "kill -QUIT 1"]
    cases = []
    for i in range(count):
        chosen = rng.sample(names, rng.randint(1, 4))
        containers = []
        for name in chosen:
            hook = rng.choice([None, None, None, {"sleep": {"seconds": rng.randint(1, 9)}},
                               {"exec": {"command": ["sh", "-c", "sleep 5"]}}, {"sleep": {"seconds": 5}}])
            containers.append(container(name, hook))
        annotations = {}
        for key in ("drain-delay", "request-timeout", "margin"):
            if rng.random() < 0.4:
                pool = DURATIONS_BAD if rng.random() < 0.1 else DURATIONS_OK
                annotations[f"gracehook.io/{key}"] = rng.choice(pool)
        if rng.random() < 0.3:
            annotations["gracehook.io/drain-command"] = rng.choice(commands)
        for name in chosen:
            for key in ("drain-delay", "request-timeout", "drain-command", "inject"):
                if rng.random() < 0.1:
                    value = {"drain-command": rng.choice(commands), "inject": rng.choice(["true", "false", "x"])
                             }.get(key) or rng.choice(DURATIONS_OK + DURATIONS_BAD[:2])
                    annotations[f"gracehook.io/{key}.{name}"] = value
        if rng.random() < 0.15:
            annotations["gracehook.io/containers"] = ",".join(rng.sample(names, rng.randint(1, 3)))
        if rng.random() < 0.05:
            annotations["gracehook.io/mode"] = rng.choice(["audit", "enforce", "bogus"])
        if rng.random() < 0.05:
            annotations["gracehook.io/drain-dealy"] = "3s"
        # Sidecars: a native one now and then, their shutdowns, Istio's drain.
        init = []
        if rng.random() < 0.25:
            init.append({**container("shipper"), "restartPolicy": "Always"})
        for name in chosen + [c["name"] for c in init]:
            if rng.random() < 0.15:
                annotations[f"gracehook.io/sidecar-shutdown.{name}"] = rng.choice(DURATIONS_OK + DURATIONS_BAD[:2])
        if rng.random() < 0.1:
            annotations["proxy.istio.io/config"] = f"terminationDrainDuration: {rng.choice(DURATIONS_OK + ['x'])}"
        grace = rng.choice([None, None, 0, 10, 30, 45, 600])
        p = pod("x", annotations, containers=containers, grace=grace)
        if init:
            p["spec"]["initContainers"] = init
        cases.append((f"generated #{i} (seed {seed})", p))
    return cases


# -- the comparison -----------------------------------------------------------

def gracehook_message(body):
    message = body.get("message", "")
    at = message.find("gracehook: pod ")
    return message[at:] if at >= 0 else message


def validation_error(result):
    """The API server's own validation refused the pod (422, not gracehook)."""
    return result["status"] == 422 and "gracehook" not in result["body"].get("message", "")


def stored(body):
    metadata = body.get("metadata", {})
    return {"annotations": metadata.get("annotations", {}), "labels": metadata.get("labels", {}),
            "spec": body.get("spec")}


def compare(mode, webhook, policy, label=""):
    """What differs between the webhook's and the policies' answers, with
    the documented differences excused."""
    problems = []
    if label.startswith("overflow: "):  # `duration-overflow`
        too_large = "above the maximum of"
        if mode == "enforce":
            ok = (webhook["status"] != 201 and policy["status"] != 201
                  and too_large in gracehook_message(webhook["body"]))
        else:
            ok = (webhook["status"] == policy["status"] == 201
                  and stored(webhook["body"]) == stored(policy["body"])
                  and any(too_large in w for w in webhook["warnings"]))
        return [] if ok else [f"overflow: webhook {webhook['status']} {webhook['warnings']} "
                              f"{gracehook_message(webhook['body'])!r}, policy {policy['status']} "
                              f"{policy['warnings']} {gracehook_message(policy['body'])!r}"]
    if (webhook["status"] == 201) != (policy["status"] == 201):
        return [f"webhook HTTP {webhook['status']} {gracehook_message(webhook['body'])!r}, "
                f"policy HTTP {policy['status']} {gracehook_message(policy['body'])!r}"]
    if webhook["status"] != 201:
        w, p = gracehook_message(webhook["body"]), gracehook_message(policy["body"])
        # Validating policies run after the API server's validation; the
        # webhook, a mutating one, before it (`api-validation-first`).
        if w != p and not validation_error(policy):
            problems.append(f"denied for other reasons:\n    webhook {w!r}\n    policy  {p!r}")
        return problems
    w, p = stored(webhook["body"]), stored(policy["body"])
    if w != p:
        problems.append(f"stored pods differ:\n    webhook {json.dumps(w, sort_keys=True)}\n"
                        f"    policy  {json.dumps(p, sort_keys=True)}")
    ours = [PREFIX.sub("", x) for x in policy["warnings"]]
    theirs = [x for x in webhook["warnings"] if x.startswith("gracehook")]
    # A pod in an enforce namespace may downgrade itself to audit.
    if mode == "audit" or any(x.startswith("gracehook audit:") for x in theirs):
        if ours != theirs:
            problems.append(f"audit warnings differ:\n    webhook {theirs}\n    policy  {ours}")
        return problems
    notes = [x[len("gracehook: "):] for x in theirs
             if not x.startswith("gracehook: raised terminationGracePeriodSeconds")]
    want = ["gracehook: " + "; ".join(notes)] if notes else []
    if want and len(want[0]) > 256:
        want = [want[0][:253] + "..."]
    if ours != want and not (not notes and all(x.startswith("gracehook: ") for x in ours)
                             and is_unchanged(webhook)):
        problems.append(f"enforce warnings differ:\n    webhook {theirs}\n    policy  {ours}")
    return problems


def is_unchanged(webhook):
    """A pod the webhook did not change (`notes-when-unchanged`)."""
    return not webhook["warnings"]


def create_all(api, namespace, cases):
    results = []
    for i, (_, p) in enumerate(cases):
        body = copy.deepcopy(p)
        if "name" in body["metadata"]:
            body["metadata"]["name"] = f"c{i}"
        results.append(api.create(namespace, body))
    return results


def differential(c, variant, cases, flags=(), server_flags=(), ns_annotations=None, extra_ns=()):
    """Creates `cases` through the webhook (started with `server_flags`, or
    the suite's own) and through `gracehook policy FLAGS`, and compares."""
    names = {f"{side}-{mode}": f"{side}-{variant}-{mode}" for side in ("wh", "pol") for mode in ("enforce", "audit")}
    for key, ns in names.items():
        c.namespace(ns, key.split("-")[1], **(ns_annotations or {}))
    for ns in extra_ns:
        c.namespace(ns, "enforce")
    server = None
    if server_flags:
        port, metrics = c.start_gracehook(f"gracehook-{variant}", *server_flags, env=c.env)
        c.register(port, metrics)
        server = (port, metrics)
    results = {}
    api = Api(c)
    try:
        for mode in ("enforce", "audit"):
            results[("webhook", mode)] = create_all(api, names[f"wh-{mode}"], cases)
        api.close()
        with policies_instead_of_the_webhook(c, flags, names["pol-enforce"], names["pol-audit"]):
            api = Api(c)
            for mode in ("enforce", "audit"):
                results[("policy", mode)] = create_all(api, names[f"pol-{mode}"], cases)
    finally:
        api.close()
        if server:
            c.register(c.webhook_port, c.metrics_port)
            c.stop(f"gracehook-{variant}")
    failures, denied, mutated = [], 0, 0
    for mode in ("enforce", "audit"):
        for i, (label, _) in enumerate(cases):
            webhook, policy = results[("webhook", mode)][i], results[("policy", mode)][i]
            denied += webhook["status"] != 201
            mutated += mode == "enforce" and "gracehook.io/status" in stored(webhook["body"])["annotations"]
            for problem in compare(mode, webhook, policy, label):
                failures.append(f"{variant}/{mode} c{i} {label}: {problem}")
    log(f"policy vs webhook, {variant}: {len(cases)} pods x 2 modes, {mutated} mutated, {denied} denied, "
        f"{len(failures)} differences")
    expect(not failures, f"{len(failures)} differences:\n" + "\n".join(failures[:15]))
    expect(mutated > 0 and denied > 0, "nothing was mutated or denied: the comparison proves nothing")
    return results


@scenario
def policy_matches_the_webhook(c):
    count = int(os.environ.get("GRACEHOOK_E2E_POLICY_PODS", "60"))
    seed = int(os.environ.get("GRACEHOOK_E2E_POLICY_SEED", "15"))
    cases = named_cases(c) + generated_cases(seed, count)
    differential(c, "defaults", cases)


@scenario
def policy_matches_the_webhook_with_other_settings(c):
    flags = ["--prestop-style", "exec", "--default-drain-delay", "2s", "--default-request-timeout", "20s",
             "--default-margin", "3s", "--max-grace", "2m", "--skip-containers", "envoy,log",
             "--exclude-namespaces", "kube-system,wh-custom-skip,pol-custom-skip"]
    cases = named_cases(c) + generated_cases(7, 30)
    differential(c, "custom", cases, flags=flags, server_flags=flags)
    # An excluded namespace, labelled enforce: neither touches its pods
    # (the webhook side with the same flags: the suite's own server
    # excludes only the defaults).
    for side in ("wh", "pol"):
        c.namespace(f"{side}-custom-skip", "enforce")
    outcomes = []
    api = Api(c)
    try:
        with policies_instead_of_the_webhook(c, flags, "pol-custom-enforce", "pol-custom-audit"):
            outcomes.append(api.create("pol-custom-skip", pod("skipped", dict(SEED))))
        port, metrics = c.start_gracehook("gracehook-custom-skip", *flags, env=c.env)
        try:
            c.register(port, metrics)
            # The same pod in an enforce namespace that is not excluded is
            # patched: the server is the one answering.
            patched = api.create("wh-custom-enforce", pod("not-skipped", dict(SEED)))
            expect("gracehook.io/status" in patched["body"]["metadata"].get("annotations", {}),
                   f"the custom server did not patch a pod it should: {patched}")
            outcomes.append(api.create("wh-custom-skip", pod("skipped", dict(SEED))))
        finally:
            c.register(c.webhook_port, c.metrics_port)
            c.stop("gracehook-custom-skip")
    finally:
        api.close()
    for outcome in outcomes:
        expect(outcome["status"] == 201 and "gracehook.io/status" not in outcome["body"]["metadata"].get("annotations", {}),
               f"a pod in an excluded namespace was changed: {outcome}")


@scenario
def policy_matches_the_webhook_with_namespace_defaults(c):
    annotations = {"gracehook.io/request-timeout": "50s", "gracehook.io/drain-delay": "1.5s",
                   "gracehook.io/margin": "bogus"}
    cases = [case for case in named_cases(c) if not case[0].startswith(("drain-delay ", "request-timeout.web "))]
    differential(c, "nsdefaults", cases + generated_cases(3, 20), flags=["--namespace-defaults"],
                 server_flags=["--watch-namespaces"], ns_annotations=annotations)


@scenario
def policy_matches_the_webhook_with_a_namespace_default_too_long(c):
    """`request-timeout: 2h` on a namespace, above --max-grace 1h, is ignored
    by both (it used to deny every plain pod); the fitting drain delay is
    kept."""
    annotations = {"gracehook.io/request-timeout": "2h", "gracehook.io/drain-delay": "10s"}
    cases = [("defaults", pod("x")), ("seed", pod("x", dict(SEED))),
             ("own request timeout too long", pod("x", {"gracehook.io/request-timeout": "2h"}))]
    results = differential(c, "nslong", cases + generated_cases(4, 8), flags=["--namespace-defaults"],
                           server_flags=["--watch-namespaces"], ns_annotations=annotations)
    for side in ("webhook", "policy"):
        plain = results[(side, "enforce")][0]
        expect(plain["status"] == 201, f"{side} refused a plain pod: {plain}")
        grace = plain["body"]["spec"]["terminationGracePeriodSeconds"]
        expect(grace == 10 + 30 + 5, f"{side}: grace {grace}, not 10s + the flags' 30s + 5s")


@scenario
def policy_differences_are_documented(c):
    text = open(os.path.join(REPO, "docs", "policy.md")).read()
    missing = [name for name in DIFFERENCES if f"`{name}`" not in text]
    expect(not missing, f"docs/policy.md does not name {missing}")


@scenario
def policy_pod_create_latency(c):
    """Pod CREATE through the API server with the webhook, with the policies,
    with the MutatingAdmissionPolicy alone and with neither, interleaved on
    one keep-alive connection. Printed, not asserted (BENCHMARKS.md)."""
    count = int(os.environ.get("GRACEHOOK_E2E_LATENCY_PODS", "200"))
    with_policy = c.namespace("lat-policy", "enforce")
    with_webhook = c.namespace("lat-webhook")
    c.kubectl("label", "namespace", with_webhook, "e2e.gracehook.io/webhook=enforce")
    plain = c.namespace("lat-plain")
    audit = c.namespace("lat-policy-audit", "audit")
    # Where the policies' cost lies: the MutatingAdmissionPolicy alone, a
    # copy bound by another label.
    mutating_only = c.namespace("lat-mutating-only")
    c.kubectl("label", "namespace", mutating_only, "e2e.gracehook.io/mutating-only=enforce")
    copies = [copy.deepcopy(o) for o in policy_objects(c)["items"] if o["kind"].startswith("MutatingAdmissionPolicy")]
    for o in copies:
        o["metadata"]["name"] = "mutating-only.gracehook.io"
        if o["kind"] == "MutatingAdmissionPolicyBinding":
            o["spec"]["policyName"] = "mutating-only.gracehook.io"
            o["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["key"] = "e2e.gracehook.io/mutating-only"
    # And the API server's own cost of a mutating policy: one that only adds
    # an annotation, no variables.
    trivial = c.namespace("lat-trivial")
    c.kubectl("label", "namespace", trivial, "e2e.gracehook.io/trivial=enforce")
    policy, binding = copy.deepcopy(copies)
    for o in (policy, binding):
        o["metadata"]["name"] = "trivial.gracehook.io"
    policy["spec"] = {"failurePolicy": "Ignore", "reinvocationPolicy": "IfNeeded",
                      "matchConstraints": policy["spec"]["matchConstraints"],
                      "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression":
                                     "[JSONPatch{op: 'add', path: '/metadata/labels', value: {'trivial': 'yes'}}]"}}]}
    binding["spec"]["policyName"] = "trivial.gracehook.io"
    binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["key"] = "e2e.gracehook.io/trivial"
    copies += [policy, binding]
    times = {with_policy: [], with_webhook: [], plain: [], mutating_only: [], trivial: []}
    with policies_instead_of_the_webhook(c, [], with_policy, audit):
        # The webhook too, on another label, so that both run side by side.
        config = next(o for o in c.kustomize("base") if o.get("kind") == "MutatingWebhookConfiguration")
        config["metadata"]["name"] = "gracehook-latency"
        for webhook in config["webhooks"]:
            webhook["clientConfig"]["service"]["port"] = c.webhook_port
            webhook["clientConfig"]["caBundle"] = c.ca_bundle
            webhook["namespaceSelector"]["matchExpressions"][0]["key"] = "e2e.gracehook.io/webhook"
        c.kubectl("apply", "-f", "-", input=json.dumps(config))
        c.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": copies}))
        api = Api(c)
        try:
            for ns in (with_webhook, mutating_only):
                wait_for(f"gracehook in {ns}", lambda: "lifecycle" in api.create(
                    ns, plain_pod("probe"), dry_run=True)["body"]["spec"]["containers"][0], timeout=30)
            wait_for("the trivial policy", lambda: "trivial" in api.create(
                trivial, plain_pod("probe"), dry_run=True)["body"]["metadata"].get("labels", {}), timeout=30)
            for i in range(count + 20):
                for ns in (with_webhook, with_policy, mutating_only, trivial, plain):
                    started = time.perf_counter()
                    result = api.create(ns, pod(f"p{i}", annotations=dict(SEED)))
                    elapsed = time.perf_counter() - started
                    expect(result["status"] == 201, f"{ns}/p{i}: HTTP {result['status']}")
                    if i >= 20:  # the first ones warm connections and caches up
                        times[ns].append(elapsed * 1000)
        finally:
            api.close()
            c.kubectl("delete", "mutatingwebhookconfiguration", "gracehook-latency")
            c.kubectl("delete", "mutatingadmissionpolicybinding,mutatingadmissionpolicy",
                      "mutating-only.gracehook.io", "trivial.gracehook.io")
    for ns in (with_webhook, with_policy, mutating_only):
        p = c.get_pod(ns, "p0")
        expect(p["spec"]["terminationGracePeriodSeconds"] == 40, f"{ns}/p0 was not mutated")
    summary = ", ".join(f"{label} median {percentile(times[ns], 0.5):.2f} ms p99 {percentile(times[ns], 0.99):.2f} ms"
                        for label, ns in (("webhook", with_webhook), ("policy", with_policy),
                                          ("the mutating policy alone", mutating_only),
                                          ("a trivial mutating policy", trivial), ("neither", plain)))
    log(f"pod CREATE through the API server, {count} each, seed annotations: {summary}")
