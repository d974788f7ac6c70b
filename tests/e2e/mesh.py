"""Meshed pods through the real API server (docs/plan.md, "Sidecars and mesh
proxies"): the shapes Istio's and Linkerd's injectors write (classic and
native sidecars, trimmed to what gracehook reads and what the API server
requires, after Istio's injection-template.yaml and Linkerd's _proxy.tpl as
of Istio 1.28 and Linkerd 2.20), mesh settings that contradict the plan, a
sidecar the user names, and both webhook orders: the mesh injector before
gracehook (the pod arrives injected, or a MutatingAdmissionPolicy injects:
the API server runs those before webhooks) and after it (an injecting webhook
whose configuration sorts after gracehook's, which makes the API server call
gracehook again, `reinvocationPolicy: IfNeeded`). Every order must store the
same pod, and gracehook on the stored pod must change nothing.
"""

import base64
import http.server
import json
import ssl
import subprocess
import threading

from cluster import SEED, log
from harness import expect, scenario, wait_for

ISTIO_IMAGE = "docker.io/istio/proxyv2:1.28.0"
LINKERD_IMAGE = "cr.l5d.io/linkerd/proxy:edge-26.8.3"
# SEED's application drain: 3s delay + 30s request timeout; margin 7s.
APP_DRAIN = 33
MARGIN = 7


def web():
    return {"name": "web", "image": "httpd:2.4.43", "ports": [{"containerPort": 80}]}


def istio_proxy(native=False, drain=None, hold=False):
    """istio-proxy as Istio's injector writes it: `PROXY_CONFIG` holds the
    merged ProxyConfig with defaults removed; native mode adds the drain
    preStop, classic mode with holdApplicationUntilProxyStarts a postStart."""
    config = {"terminationDrainDuration": drain} if drain else {}
    c = {"name": "istio-proxy", "image": ISTIO_IMAGE,
         "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
         "ports": [{"containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom"}],
         "env": [{"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
                 {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                 {"name": "PROXY_CONFIG", "value": json.dumps(config, separators=(",", ":"))},
                 {"name": "ISTIO_META_APP_CONTAINERS", "value": "web"}],
         "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15},
         "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                             "runAsNonRoot": True, "runAsUser": 1337, "runAsGroup": 1337}}
    if native:
        c["restartPolicy"] = "Always"
        c["lifecycle"] = {"preStop": {"exec": {"command": ["pilot-agent", "request", "--debug-port=15020",
                                                            "POST", "drain"]}}}
    elif hold:
        c["lifecycle"] = {"postStart": {"exec": {"command": ["pilot-agent", "wait"]}}}
    return c


def istio_init():
    return {"name": "istio-init", "image": ISTIO_IMAGE,
            "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT"],
            "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}}}


def linkerd_proxy(native=False, wait_before_exit=None, grace=None):
    """linkerd-proxy as Linkerd's injector writes it: classic with the
    linkerd-await postStart (and `/bin/sleep N` for
    proxy-wait-before-exit-seconds), native with no hooks."""
    env = [{"name": "LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "value": "[::]:4143"},
           {"name": "_pod_ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    if grace:
        env.append({"name": "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", "value": grace})
    c = {"name": "linkerd-proxy", "image": LINKERD_IMAGE, "env": env,
         "ports": [{"containerPort": 4143, "name": "linkerd-proxy"}, {"containerPort": 4191, "name": "linkerd-admin"}],
         "readinessProbe": {"httpGet": {"path": "/ready", "port": 4191}},
         "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                             "runAsNonRoot": True, "runAsUser": 2102}}
    if native:
        c["restartPolicy"] = "Always"
    else:
        c["lifecycle"] = {"postStart": {"exec": {"command": ["/usr/lib/linkerd/linkerd-await", "--timeout=2m",
                                                              "--port=4191"]}}}
        if wait_before_exit:
            c["lifecycle"]["preStop"] = {"exec": {"command": ["/bin/sleep", str(wait_before_exit)]}}
    return c


def linkerd_init():
    return {"name": "linkerd-init", "image": "cr.l5d.io/linkerd/proxy-init:v2.4.1",
            "args": ["--incoming-proxy-port", "4143", "--outgoing-proxy-port", "4140", "--proxy-uid", "2102"],
            "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}}


def meshed(name, containers, init=(), annotations=None):
    spec = {"containers": containers}
    if init:
        spec["initContainers"] = list(init)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": dict(SEED, **(annotations or {}))}, "spec": spec}


def create(c, ns, p):
    """Creates `p`; returns the stored pod and gracehook's warnings."""
    result = c.create_pod(dict(p, metadata=dict(p["metadata"], namespace=ns)))
    expect(result.returncode == 0, f"{p['metadata']['name']}: {result.stderr}")
    warnings = [line for line in result.stderr.splitlines() if "gracehook" in line]
    return c.get_pod(ns, p["metadata"]["name"]), warnings


def named(p, name, init=False):
    key = "initContainers" if init else "containers"
    return next(x for x in p["spec"].get(key, []) if x["name"] == name)


def status(p):
    return json.loads(p["metadata"]["annotations"]["gracehook.io/status"])


def unchanged_by_a_second_pass(c, p):
    """`gracehook mutate` on the stored pod: a second pass adds nothing."""
    out = subprocess.run([c.gracehook, "mutate", "-f", "-", "-o", "json"], input=json.dumps(p),
                         capture_output=True, text=True, timeout=30, check=True).stdout
    again = json.loads(out)
    return again["spec"] == p["spec"] and again["metadata"].get("annotations") == p["metadata"].get("annotations")


# -- scenarios ---------------------------------------------------------------

@scenario
def injected_mesh_pods_are_planned_whole(c):
    ns = c.namespace("mesh", "enforce")
    found = []

    # Istio, classic, holdApplicationUntilProxyStarts, a 20s drain.
    p, _ = create(c, ns, meshed("istio-classic", [istio_proxy(drain="20s", hold=True), web()], [istio_init()],
                                {"proxy.istio.io/config": "terminationDrainDuration: 20s"}))
    proxy = named(p, "istio-proxy")
    expect(proxy["lifecycle"] == {"postStart": {"exec": {"command": ["pilot-agent", "wait"]}},
                                  "preStop": {"sleep": {"seconds": APP_DRAIN}}}, proxy.get("lifecycle"))
    expect(p["spec"]["terminationGracePeriodSeconds"] == APP_DRAIN + 20 + MARGIN, p["spec"])
    expect(status(p)["containers"] == {"istio-proxy": "sleep", "web": "exec"}, status(p))
    init = named(p, "istio-init", init=True)
    expect(init["args"] == istio_init()["args"] and "lifecycle" not in init, f"istio-init changed: {init}")
    expect(unchanged_by_a_second_pass(c, p), "a second pass changed the Istio classic pod")
    found.append(f"Istio classic: proxy sleeps {APP_DRAIN}s, grace {p['spec']['terminationGracePeriodSeconds']}")

    # Istio, native: no hook on the proxy, its default 5s drain in the grace.
    p, _ = create(c, ns, meshed("istio-native", [web()], [istio_init(), istio_proxy(native=True)]))
    proxy = named(p, "istio-proxy", init=True)
    expect(proxy["lifecycle"] == istio_proxy(native=True)["lifecycle"] and proxy["restartPolicy"] == "Always",
           f"the native istio-proxy changed: {proxy}")
    expect(p["spec"]["terminationGracePeriodSeconds"] == APP_DRAIN + 5 + MARGIN, p["spec"])
    expect(status(p)["containers"] == {"web": "exec"}, status(p))
    expect(unchanged_by_a_second_pass(c, p), "a second pass changed the Istio native pod")
    found.append(f"Istio native: proxy untouched, grace {p['spec']['terminationGracePeriodSeconds']}")

    # Linkerd, classic, proxy-wait-before-exit-seconds 5: its own preStop is
    # kept, and it exits before the drain ends: a warning.
    p, warnings = create(c, ns, meshed("linkerd-classic", [linkerd_proxy(wait_before_exit=5), web()],
                                       [linkerd_init()],
                                       {"config.alpha.linkerd.io/proxy-wait-before-exit-seconds": "5"}))
    expect(named(p, "linkerd-proxy")["lifecycle"]["preStop"] == {"exec": {"command": ["/bin/sleep", "5"]}},
           "Linkerd's own preStop was not kept")
    expect(p["spec"]["terminationGracePeriodSeconds"] == APP_DRAIN + MARGIN, p["spec"])
    expect(any("linkerd-proxy keeps its own preStop, which ends after 5s" in w for w in warnings), warnings)
    found.append(f"Linkerd classic with wait-before-exit 5: kept, warned ({len(warnings)} warning lines)")

    # Linkerd, native, shutdown-grace-period 30s (written by the injector).
    p, _ = create(c, ns, meshed("linkerd-native", [web()], [linkerd_init(), linkerd_proxy(native=True,
                                                                                          grace="30000ms")],
                                {"config.linkerd.io/shutdown-grace-period": "30s"}))
    expect(p["spec"]["terminationGracePeriodSeconds"] == APP_DRAIN + 30 + MARGIN, p["spec"])
    found.append(f"Linkerd native with a 30s shutdown grace period: grace "
                 f"{p['spec']['terminationGracePeriodSeconds']}")

    # An Istio proxy opted out of gracehook's hook, with an explicit 5s drain
    # shorter than the 33s drain: a warning, and no hook.
    p, warnings = create(c, ns, meshed("istio-opted-out", [web(), istio_proxy(drain="5s")], [],
                                       {"gracehook.io/inject.istio-proxy": "false",
                                        "proxy.istio.io/config": "terminationDrainDuration: 5s"}))
    expect("preStop" not in named(p, "istio-proxy").get("lifecycle", {}), "an opted-out proxy got a hook")
    expect(any("istio-proxy is opted out" in w and "before the 33s drain of web ends" in w for w in warnings),
           warnings)
    found.append("opted-out Istio proxy with a 5s drain: warned")

    # A sidecar the user names: a native log shipper that needs 8s.
    shipper = {"name": "log-shipper", "image": "fluent/fluent-bit:3.0", "restartPolicy": "Always"}
    p, _ = create(c, ns, meshed("shipper", [web()], [shipper], {"gracehook.io/sidecar-shutdown.log-shipper": "8s"}))
    expect(p["spec"]["terminationGracePeriodSeconds"] == APP_DRAIN + 8 + MARGIN, p["spec"])
    # ... and a typo in its name is reported, not silently ignored.
    p, warnings = create(c, ns, meshed("shipper-typo", [web()], [shipper],
                                       {"gracehook.io/sidecar-shutdown.log-shiper": "8s"}))
    expect(any("ignored unknown annotation gracehook.io/sidecar-shutdown.log-shiper" in w for w in warnings),
           warnings)
    found.append("a named native sidecar's 8s shutdown planned, a misspelt one reported")

    # An invalid sidecar shutdown is denied with its name.
    bad = meshed("bad", [web()], [shipper], {"gracehook.io/sidecar-shutdown.log-shipper": "soon"})
    bad["metadata"]["namespace"] = ns
    bad = c.create_pod(bad)
    expect(bad.returncode != 0 and "gracehook.io/sidecar-shutdown.log-shipper" in bad.stderr, bad.stderr)
    log("; ".join(found))
    c.kubectl("delete", "namespace", ns, "--wait=false")


def injector(name, native):
    """A MutatingAdmissionPolicy that injects istio-proxy as Istio's
    injector would (the fields gracehook reads), into pods labelled
    `mesh.e2e/inject=<name>`: it runs after gracehook's webhook, so the API
    server calls gracehook again. Returns it, its binding, and the
    container it injects."""
    full = istio_proxy(native=native, drain="20s")
    proxy = {"name": "istio-proxy", "image": ISTIO_IMAGE,
             "env": [e for e in full["env"] if "value" in e]}
    kind = "initContainers" if native else "containers"
    env = ", ".join(f"Object.spec.{kind}.env{{name: {json.dumps(e['name'])}, value: {json.dumps(e['value'])}}}"
                    for e in proxy["env"])
    fields = f"name: 'istio-proxy', image: {json.dumps(ISTIO_IMAGE)}, env: [{env}]"
    if native:
        proxy["restartPolicy"] = "Always"
        proxy["lifecycle"] = full["lifecycle"]
        fields += (", restartPolicy: 'Always', lifecycle: Object.spec.initContainers.lifecycle{preStop: "
                   "Object.spec.initContainers.lifecycle.preStop{exec: Object.spec.initContainers.lifecycle.preStop"
                   ".exec{command: ['pilot-agent', 'request', '--debug-port=15020', 'POST', 'drain']}}}")
    value = f"Object.spec.{kind}{{{fields}}}"
    patch = (f"has(object.spec.{kind}) ? [JSONPatch{{op: 'add', path: '/spec/{kind}/-', value: {value}}}] "
             f": [JSONPatch{{op: 'add', path: '/spec/{kind}', value: [{value}]}}]")
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
              "metadata": {"name": f"inject-{name}"},
              "spec": {"failurePolicy": "Fail", "reinvocationPolicy": "IfNeeded",
                       "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                               "operations": ["CREATE"], "resources": ["pods"]}]},
                       "matchConditions": [
                           {"name": "labelled", "expression":
                            f"object.metadata.?labels['mesh.e2e/inject'].orValue('') == '{name}'"},
                           {"name": "not-injected", "expression":
                            "!object.spec.containers.exists(c, c.name == 'istio-proxy') && "
                            "!object.spec.?initContainers.orValue([]).exists(c, c.name == 'istio-proxy')"}],
                       "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": patch}}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
               "metadata": {"name": f"inject-{name}"}, "spec": {"policyName": f"inject-{name}"}}
    return policy, binding, proxy


class Injector:
    """A mesh injector webhook on loopback (the e2e webhook certificate):
    adds `proxy` to pods labelled `mesh.e2e/inject=<label>` that lack it.
    Registered as `zz-mesh-injector`, it sorts after gracehook's
    configuration, so the API server calls it after gracehook."""

    def __init__(self, c, label, proxy, native):
        kind = "initContainers" if native else "containers"
        calls = self.calls = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = review["request"]
                spec = request["object"]["spec"]
                calls.append(request["uid"])
                response = {"uid": request["uid"], "allowed": True}
                if not any(x["name"] == proxy["name"] for x in spec.get(kind) or []):
                    patch = ([{"op": "add", "path": f"/spec/{kind}/-", "value": proxy}] if spec.get(kind)
                             else [{"op": "add", "path": f"/spec/{kind}", "value": [proxy]}])
                    response.update(patchType="JSONPatch", patch=base64.b64encode(json.dumps(patch).encode()).decode())
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": response}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(f"{c.webhook_dir}/tls.crt", f"{c.webhook_dir}/tls.key")
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.c = c
        c.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "zz-mesh-injector"},
            "webhooks": [{"name": "inject.mesh.e2e",
                          "clientConfig": {"url": f"https://127.0.0.1:{self.server.server_address[1]}/inject",
                                           "caBundle": c.ca_bundle},
                          "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                     "resources": ["pods"]}],
                          "objectSelector": {"matchLabels": {"mesh.e2e/inject": label}},
                          "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
                          "reinvocationPolicy": "IfNeeded", "timeoutSeconds": 5}]}))

    def stop(self):
        self.c.kubectl("delete", "mutatingwebhookconfiguration", "zz-mesh-injector", check=False)
        self.server.shutdown()
        self.server.server_close()


def injected_by(c, ns, label):
    """Whether a dry-run pod labelled `label` comes back with the proxy."""
    probe = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "probe", "namespace": ns, "labels": {"mesh.e2e/inject": label}},
             "spec": {"containers": [web()]}}
    return "istio-proxy" in c.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                                      input=json.dumps(probe)).stdout


def gracehook_patches(c):
    return c.metrics().get('{path="/mutate",outcome="patched"}', 0)


@scenario
def a_mesh_injector_before_or_after_gracehook_stores_the_same_pod(c):
    ns = c.namespace("mesh-order", "enforce")
    annotations = dict(SEED, **{"proxy.istio.io/config": "terminationDrainDuration: 20s"})
    outcomes = []
    for name, native in (("classic", False), ("native", True)):
        policy, binding, proxy = injector(name, native)

        def create_labelled(pod_name, label):
            p = {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": pod_name, "annotations": annotations, "labels": {"mesh.e2e/inject": label}},
                 "spec": {"containers": [web()]}}
            before = gracehook_patches(c)
            stored, _ = create(c, ns, p)
            return stored, gracehook_patches(c) - before

        # Before gracehook, in the admission chain: a MutatingAdmissionPolicy.
        c.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                         "items": [policy, binding]}))
        try:
            wait_for(f"the {name} injector policy", lambda: injected_by(c, ns, name), timeout=30, interval=0.5)
            by_policy, policy_patches = create_labelled(f"policy-{name}", name)
        finally:
            c.kubectl("delete", "mutatingadmissionpolicybinding,mutatingadmissionpolicy", f"inject-{name}")
        # After gracehook: a webhook whose configuration sorts after it.
        hook = Injector(c, f"{name}-webhook", proxy, native)
        try:
            wait_for(f"the {name} injector webhook", lambda: injected_by(c, ns, f"{name}-webhook"), timeout=30,
                     interval=0.5)
            by_webhook, webhook_patches = create_labelled(f"webhook-{name}", f"{name}-webhook")
        finally:
            hook.stop()
        # Injected before it reached the API server.
        spec = {"containers": [web()]}
        if native:
            spec["initContainers"] = [proxy]
        else:
            spec["containers"].append(proxy)
        pre, _ = create(c, ns, {"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": f"pre-{name}", "annotations": annotations}, "spec": spec})
        keys = ("containers", "initContainers", "terminationGracePeriodSeconds")
        shape = {label: ({k: p["spec"].get(k) for k in keys}, p["metadata"]["annotations"]["gracehook.io/status"])
                 for label, p in (("pre-injected", pre), ("policy before", by_policy), ("webhook after", by_webhook))}
        expect(len({json.dumps(v, sort_keys=True) for v in shape.values()}) == 1,
               f"{name}: the order changed the pod:\n" + "\n".join(f"  {k}: {json.dumps(v)}" for k, v in shape.items()))
        expect(pre["spec"]["terminationGracePeriodSeconds"] == APP_DRAIN + 20 + MARGIN, pre["spec"])
        expect(policy_patches == 1, f"{name}: gracehook patched {policy_patches} times after the policy injected")
        expect(webhook_patches == 2,
               f"{name}: gracehook patched {webhook_patches} times, not twice (before and after the webhook injected)")
        expect(unchanged_by_a_second_pass(c, by_webhook), f"{name}: a second pass changed the pod")
        outcomes.append(f"{name}: the same pod pre-injected, injected before gracehook (a policy) and after it "
                        f"(a webhook: gracehook called again, patched twice), grace "
                        f"{pre['spec']['terminationGracePeriodSeconds']}")
    log("; ".join(outcomes))
    c.kubectl("delete", "namespace", ns, "--wait=false")
