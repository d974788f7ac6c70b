"""The e2e suite's own scenarios: gracehook behind a real kube-apiserver
(enforce, audit and the opt-outs, the pre-stop styles, namespace defaults,
reinvocation, failure policy, certificate rotation, `gracehook audit`, the
HTTP versions, latency and memory measurements). Imported by `run`, before
ops.py and policy.py; the Cluster and the pod builders are in cluster.py.
"""

import json
import os
import subprocess
import threading
import time
import urllib.request

from cluster import REPO, SEED, SEED_HOOK, audit_run, big_deployment, deployment, log, logged, percentile, pod, prestop
from harness import expect, scenario, wait_for

# -- scenarios -------------------------------------------------------------

@scenario
def enforce_seed_recipe(c):
    ns = c.namespace("shop", "enforce")
    c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("web", SEED, grace=30)))
    p = c.get_pod(ns, "web")
    expect(prestop(p) == {"exec": {"command": SEED_HOOK}},
           f"preStop {prestop(p)}")
    expect(p["spec"]["terminationGracePeriodSeconds"] == 40, p["spec"]["terminationGracePeriodSeconds"])
    status = json.loads(p["metadata"]["annotations"]["gracehook.io/status"])
    expect(status == {"grace": 40, "containers": {"web": "exec"}}, status)


@scenario
def enforce_defaults_native_sleep(c):
    ns = c.namespace("defaults", "enforce")
    c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("plain")))
    p = c.get_pod(ns, "plain")
    expect(prestop(p) == {"sleep": {"seconds": 5}}, f"preStop {prestop(p)}")
    expect(p["spec"]["terminationGracePeriodSeconds"] == 40, p["spec"])


@scenario
def enforce_exec_style(c):
    ns = c.namespace("exec-style", "enforce")
    port, metrics = c.start_gracehook("gracehook-exec", "--prestop-style", "exec")
    try:
        c.register(port, metrics)
        c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("plain")))
        p = c.get_pod(ns, "plain")
        expect(prestop(p) == {"exec": {"command": ["sh", "-c", "sleep 5"]}}, f"preStop {prestop(p)}")
        expect(c.calls(metrics) >= 1, "the exec-style server was not called")
    finally:
        c.register(c.webhook_port, c.metrics_port)
        c.stop("gracehook-exec")


@scenario
def auto_style_asks_the_api_server(c):
    ns = c.namespace("auto-style", "enforce")
    # Outside a cluster the kube client reads KUBECONFIG, as kubectl does.
    port, metrics = c.start_gracehook("gracehook-auto", "--prestop-style", "auto",
                                      env=c.env)
    try:
        # Log lines are written out within 200 ms.
        wait_for("the start-up line", lambda: "--prestop-style auto: chose from the API server's version"
                 in c.tail("gracehook-auto", 20), timeout=5)
        expect("v1.37" in c.tail("gracehook-auto", 20), c.tail("gracehook-auto", 20))
        c.register(port, metrics)
        c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("plain")))
        p = c.get_pod(ns, "plain")
        expect(prestop(p) == {"sleep": {"seconds": 5}}, f"preStop {prestop(p)}")
        expect(c.calls(metrics) >= 1, "the auto-style server was not called")
    finally:
        c.register(c.webhook_port, c.metrics_port)
        c.stop("gracehook-auto")


@scenario
def namespace_defaults_are_watched(c):
    ns = c.namespace("ns-defaults", "enforce", **{"gracehook.io/request-timeout": "50s"})
    port, metrics = c.start_gracehook("gracehook-ns", "--watch-namespaces",
                                      env=dict(c.env, RUST_LOG="info,gracehook=debug"))
    try:
        c.register(port, metrics)
        c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("first")))
        grace = c.get_pod(ns, "first")["spec"]["terminationGracePeriodSeconds"]
        expect(grace == 5 + 50 + 5, f"namespace default not applied: grace {grace}")
        # (The API server defaults the grace period to 30, which gracehook
        # never lowers: the new value must lead above it.)
        c.kubectl("annotate", "namespace", ns, "gracehook.io/request-timeout=40s", "--overwrite")
        changed = time.time()
        names = iter(range(1000))

        def picked_up():
            name = f"p{next(names)}"
            c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod(name)))
            return c.get_pod(ns, name)["spec"]["terminationGracePeriodSeconds"] == 5 + 40 + 5
        wait_for("the changed namespace default", picked_up, timeout=10, interval=0.2)
        log(f"namespace change seen after {time.time() - changed:.1f}s")
        # A pod's own annotation still wins.
        c.kubectl("create", "-n", ns, "-f", "-",
                  input=json.dumps(pod("own", {"gracehook.io/request-timeout": "25s"})))
        expect(c.get_pod(ns, "own")["spec"]["terminationGracePeriodSeconds"] == 5 + 25 + 5,
               "pod annotation did not win over the namespace")
    finally:
        c.register(c.webhook_port, c.metrics_port)
        c.stop("gracehook-ns")


@scenario
def audit_namespace_warns_and_stores_unchanged(c):
    ns = c.namespace("audited", "audit")
    result = c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("web", SEED)))
    expect("Warning: gracehook audit: would set terminationGracePeriodSeconds 30 -> 40 and add preStop "
           "(sleep 3s; apachectl -k graceful-stop; sleep 30s) to container web" in result.stderr,
           f"stderr: {result.stderr}")
    p = c.get_pod(ns, "web")
    expect(prestop(p) is None, "audit mode changed the pod")
    expect(p["spec"]["terminationGracePeriodSeconds"] == 30, p["spec"])
    expect("gracehook.io/status" not in p["metadata"]["annotations"], "status written in audit mode")

    def in_audit_log():
        with open(c.audit_log) as f:
            for line in f:
                event = json.loads(line)
                ref = event.get("objectRef", {})
                if ref.get("namespace") == ns and ref.get("name") == "web" and event.get("verb") == "create":
                    annotations = event.get("annotations", {})
                    if "audit.gracehook.io/patch" in annotations and "audit.gracehook.io/summary" in annotations:
                        return True
        return False
    wait_for("gracehook's audit annotations in the audit log", in_audit_log, timeout=10)


@scenario
def untouched_pods_and_uncalled_webhook(c):
    plain = c.namespace("unlabelled")
    enforce = c.namespace("optout", "enforce")
    c.kubectl("label", "namespace", "kube-system", "gracehook.io/mode=enforce", "--overwrite")
    try:
        before = c.calls()
        for ns, p in [(plain, pod("a")), (enforce, pod("b", labels={"gracehook.io/inject": "false"})),
                      ("kube-system", pod("c"))]:
            c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(p))
            got = c.get_pod(ns, p["metadata"]["name"])
            expect(prestop(got) is None and got["spec"]["terminationGracePeriodSeconds"] == 30,
                   f"{ns}/{p['metadata']['name']} was changed")
        expect(c.calls() == before, f"the webhook was called: {c.metrics()}")
        # The annotation opt-out reaches gracehook, which leaves the pod alone.
        c.kubectl("create", "-n", enforce, "-f", "-",
                  input=json.dumps(pod("d", annotations={"gracehook.io/inject": "false"})))
        got = c.get_pod(enforce, "d")
        expect(prestop(got) is None, "annotation opt-out ignored")
        skipped = c.metrics().get('{path="/mutate",outcome="skipped"}', 0)
        expect(skipped >= 1, f"not counted as skipped: {c.metrics()}")
    finally:
        c.kubectl("label", "namespace", "kube-system", "gracehook.io/mode-")


@scenario
def invalid_annotation_is_denied_with_the_message(c):
    ns = c.namespace("invalid", "enforce")
    result = c.kubectl("apply", "-n", ns, "-f", "-", check=False,
                       input=json.dumps(pod("bad", {"gracehook.io/request-timeout": "thirty"})))
    expect(result.returncode != 0, "the invalid pod was accepted")
    for needle in ("gracehook.io/request-timeout", '"thirty"', '"30s"'):
        expect(needle in result.stderr, f"{needle} not in: {result.stderr}")
    expect(c.kubectl("get", "pod", "-n", ns, "bad", check=False).returncode != 0, "the pod was stored")


@scenario
def server_side_dry_run_shows_the_mutation_and_stores_nothing(c):
    ns = c.namespace("dryrun", "enforce")
    result = c.kubectl("apply", "-n", ns, "--dry-run=server", "-o", "json", "-f", "-",
                       input=json.dumps(pod("preview", SEED)))
    p = json.loads(result.stdout)
    expect(prestop(p)["exec"]["command"] == SEED_HOOK, prestop(p))
    expect(c.kubectl("get", "pod", "-n", ns, "preview", check=False).returncode != 0, "dry run stored the pod")


@scenario
def reinvocation_does_not_patch_twice(c):
    ns = c.namespace("twice", "enforce")
    c.register(c.webhook_port, c.metrics_port, name="gracehook-second")
    try:
        before = c.metrics()
        c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("web", SEED)))
        p = c.get_pod(ns, "web")
        expect(prestop(p)["exec"]["command"] == SEED_HOOK, prestop(p))
        after = c.metrics()
        key = '{path="/mutate",outcome="%s"}'
        expect(after.get(key % "patched", 0) - before.get(key % "patched", 0) == 1,
               f"patched more than once: {after}")
        expect(after.get(key % "unchanged", 0) > before.get(key % "unchanged", 0),
               f"the second call did not see an already patched pod: {after}")
    finally:
        c.kubectl("delete", "mutatingwebhookconfiguration", "gracehook-second")
        time.sleep(1.5)


@scenario
def failure_policy_ignore_when_gracehook_is_down(c):
    ns = c.namespace("outage", "enforce")
    c.stop("gracehook")
    c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("during")))
    expect(prestop(c.get_pod(ns, "during")) is None, "mutated while gracehook was down")
    port = c.webhook_port
    # Same port, so the registered configuration works again.
    c.spawn("gracehook", [
        c.gracehook, "serve", "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{c.metrics_port}",
        "--tls-cert", f"{c.webhook_dir}/tls.crt", "--tls-key", f"{c.webhook_dir}/tls.key",
        "--tls-reload-interval", "200ms", "--shutdown-delay", "0s", "--log-format", "json"])
    wait_for("gracehook back", lambda: urllib.request.urlopen(
        f"http://127.0.0.1:{c.metrics_port}/readyz", timeout=2).status == 200)
    c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("after")))
    expect(prestop(c.get_pod(ns, "after")) == {"sleep": {"seconds": 5}}, "mutation did not resume")


@scenario
def certificate_rotation_while_the_api_server_calls(c):
    ns = c.namespace("rotation", "enforce")
    before = c.metrics()
    names = []
    for i in range(30):
        if i == 10:
            c.publish_cert("second", f"{c.dir}/webhook-2")
        name = f"p{i}"
        c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod(name)))
        names.append(name)
        time.sleep(0.05)
    for name in names:
        expect(prestop(c.get_pod(ns, name)) == {"sleep": {"seconds": 5}}, f"{name} not mutated")
    wait_for("the reload", lambda: c.reloads() >= 1, timeout=10)
    served = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{c.webhook_port}"],
                            input="", capture_output=True, text=True, timeout=20).stdout
    second = open(f"{c.dir}/webhook-2/tls.crt").read().split("-----")[2].replace("\n", "")
    expect(second in served.replace("\n", ""), "the second certificate is not served")
    expect(c.metrics().get('{path="/mutate",outcome="patched"}', 0)
           - before.get('{path="/mutate",outcome="patched"}', 0) == 30, "not every pod went through gracehook")


def auditor(c, account, namespace):
    """`gracehook audit ARGS` as the ServiceAccount `account`, with a token
    in a kubeconfig of its own."""
    token = c.kubectl("create", "token", account, "-n", namespace).stdout.strip()
    config = json.load(open(c.env["KUBECONFIG"]))
    config["users"][0]["user"] = {"token": token}
    kubeconfig = os.path.join(c.dir, f"kubeconfig-{namespace}-{account}")
    with open(kubeconfig, "w") as f:
        json.dump(config, f)

    def audit(*args):
        return subprocess.run([c.gracehook, "audit", "--kubeconfig", kubeconfig, *args],
                              capture_output=True, text=True, timeout=120)
    return audit


@scenario
def audit_reports_a_live_cluster_with_list_permission_only(c):
    ns = c.namespace("audit-report")
    calm = c.namespace("audit-calm")
    objects = [
        deployment("bare"),
        deployment("graceful", {"gracehook.io/drain-delay": "3s"},
                   {"exec": {"command": ["sh", "-c", "sleep 3"]}}, grace=40),
        deployment("invalid", {"gracehook.io/request-timeout": "soon"}),
        pod("single"),
    ]
    for obj in objects:
        c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(obj))
    c.kubectl("create", "-n", calm, "-f", "-", input=json.dumps(objects[1]))

    # As a ServiceAccount bound to manifests/audit: list permission only.
    c.kubectl("create", "namespace", "gracehook-system", check=False)
    c.kubectl("apply", "-k", os.path.join(REPO, "manifests", "audit"))
    audit = auditor(c, "gracehook-audit", "gracehook-system")

    result = audit("-n", ns, "-o", "json")
    expect(result.returncode == 0, result.stderr)
    report = json.loads(result.stdout)
    found = {w["name"]: w for w in report["workloads"]}
    expect(set(found) == {"bare", "graceful", "invalid", "single"}, sorted(found))
    expect(found["single"]["kind"] == "Pod" and found["bare"]["kind"] == "Deployment", found)
    expect(any(r == "web: no preStop delay" for r in found["bare"]["risks"]), found["bare"])
    expect(any("invalid annotation gracehook.io/request-timeout" in r for r in found["invalid"]["risks"]),
           found["invalid"])
    expect(found["single"]["risks"], found["single"])
    expect(found["graceful"]["risks"] == [], found["graceful"])
    expect(report["summary"]["total"] == 4 and report["summary"]["atRisk"] == 3, report["summary"])

    table = audit("-n", ns)
    expect(table.stdout.splitlines()[0].startswith("NAMESPACE"), table.stdout)
    expect(table.stdout.splitlines()[-1].startswith("4 workloads: 3 at risk, 1 ok"), table.stdout)
    expect("\x1b[" not in table.stdout, "colour off a terminal")
    expect("listed" in table.stderr, "no progress on stderr")

    risky = audit("-n", ns, "--fail-on-risk")
    expect(risky.returncode == 3, f"exit {risky.returncode}")
    fine = audit("-n", calm, "--fail-on-risk")
    expect(fine.returncode == 0, f"exit {fine.returncode}: {fine.stdout} {fine.stderr}")
    everywhere = audit("-A", "-o", "json")
    expect(everywhere.returncode == 0, everywhere.stderr)
    expect(json.loads(everywhere.stdout)["summary"]["total"] >= 5, everywhere.stdout[:500])
    missing = audit("-n", "does-not-exist")
    expect(missing.returncode == 1, f"exit {missing.returncode}")
    expect("namespace does-not-exist not found" in missing.stderr, missing.stderr)


@scenario
def audit_of_one_namespace_needs_rights_in_that_namespace_only(c):
    """`audit -n NS` gets its Namespace and lists inside it: a user whose
    Role covers one namespace audits it, and gets a clear, complete-false
    report elsewhere."""
    ns = c.namespace("audit-rbac", "audit")
    other = c.namespace("audit-rbac-other", "audit")
    for namespace in (ns, other):
        c.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(deployment("bare")))
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "auditor", "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                      {"apiGroups": ["apps"], "verbs": ["list"],
                       "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"]},
                      {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["list"]}]}
    # Getting a Namespace is a cluster-scoped right: one ClusterRole, bound in
    # the namespace by a RoleBinding, grants it for that namespace only.
    getter = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": "audit-rbac-namespace-get"},
              "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]}
    c.kubectl("create", "serviceaccount", "auditor", "-n", ns)
    for obj in (role, getter):
        c.kubectl("apply", "-f", "-", input=json.dumps(obj))
    c.kubectl("create", "rolebinding", "auditor", "-n", ns, "--role", "auditor",
              f"--serviceaccount={ns}:auditor")
    c.kubectl("create", "rolebinding", "auditor-namespace", "-n", ns,
              "--clusterrole", "audit-rbac-namespace-get", f"--serviceaccount={ns}:auditor")
    audit = auditor(c, "auditor", ns)

    mine = audit("-n", ns, "-o", "json")
    expect(mine.returncode == 0, mine.stderr)
    report = json.loads(mine.stdout)
    expect([w["name"] for w in report["workloads"]] == ["bare"], report["workloads"])
    expect(report["workloads"][0]["mode"] == "audit", report["workloads"][0])
    expect(report["summary"]["complete"] is True, report["summary"])
    for args, words in [(("-n", other), ["getting namespace audit-rbac-other", "403"]),
                        (("-A",), ["listing namespaces", "403"])]:
        refused = audit(*args, "-o", "json")
        expect(refused.returncode == 1, f"{args}: exit {refused.returncode}")
        summary = json.loads(refused.stdout)["summary"]
        expect(summary["complete"] is False, summary)
        expect(all(w in summary.get("error", "") for w in words), summary)


@scenario
def the_api_server_calls_through_the_service_over_http11(c):
    ns = c.namespace("protocol", "enforce")
    c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("h1")))
    expect(prestop(c.get_pod(ns, "h1")) == {"sleep": {"seconds": 5}}, "not mutated")
    lines = logged(c, "gracehook", ns, "h1")
    expect(all(e["http"] == "1.1" for e in lines), f"not HTTP/1.1: {lines}")
    expect(all(e["path"] == "/mutate" and e["outcome"] == "patched" for e in lines), lines)


@scenario
def url_registration_is_called_over_http2(c):
    """Registered by URL at a loopback address, the API server uses HTTP/2:
    both protocols stay covered."""
    ns = c.namespace("protocol-url", "enforce")
    port, metrics = c.start_gracehook("gracehook-url")
    try:
        c.register(port, metrics, by_url=True)
        c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("h2")))
        expect(prestop(c.get_pod(ns, "h2")) == {"sleep": {"seconds": 5}}, "not mutated")
        lines = logged(c, "gracehook-url", ns, "h2")
        expect(all(e["http"] == "2" for e in lines), f"not HTTP/2: {lines}")
    finally:
        c.register(c.webhook_port, c.metrics_port)
        c.stop("gracehook-url")


@scenario
def pod_create_latency_through_the_api_server(c):
    """What a user pays per pod: CREATE in an enforce namespace (the API server
    calls gracehook over HTTP/1.1) against an unlabelled one (no call),
    interleaved on one keep-alive connection. Measured and printed, never
    asserted (docs: BENCHMARKS.md)."""
    count = int(os.environ.get("GRACEHOOK_E2E_LATENCY_PODS", "200"))
    enforce, plain = c.namespace("latency-enforce", "enforce"), c.namespace("latency-plain")
    conn, headers = c.api()
    times = {enforce: [], plain: []}
    try:
        for i in range(count + 20):
            for ns in (enforce, plain):
                body = json.dumps(pod(f"p{i}", annotations=dict(SEED)))
                started = time.perf_counter()
                conn.request("POST", f"/api/v1/namespaces/{ns}/pods", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                expect(response.status == 201, f"{ns}/p{i}: HTTP {response.status}")
                if i >= 20:  # the first ones warm connections and caches up
                    times[ns].append(elapsed * 1000)
    finally:
        conn.close()
    expect(prestop(c.get_pod(enforce, "p0")) is not None and prestop(c.get_pod(plain, "p0")) is None,
           "the enforce pods were not mutated, or the others were")
    e50, e99 = percentile(times[enforce], 0.5), percentile(times[enforce], 0.99)
    p50, p99 = percentile(times[plain], 0.5), percentile(times[plain], 0.99)
    log(f"pod CREATE through the API server, {count} each: enforce median {e50:.2f} ms p99 {e99:.2f} ms; "
        f"unlabelled median {p50:.2f} ms p99 {p99:.2f} ms; gracehook adds {e50 - p50:+.2f} ms median, "
        f"{e99 - p99:+.2f} ms p99")


@scenario
def audit_reads_many_workloads_in_flat_memory(c):
    """`gracehook audit` lists page by page and keeps only findings: its peak
    RSS must not grow with the number of workloads. Sizes from
    GRACEHOOK_E2E_AUDIT_SIZES (default 150,600, more than the 100 a page holds; BENCHMARKS.md uses 3000,30000)."""
    sizes = [int(n) for n in os.environ.get("GRACEHOOK_E2E_AUDIT_SIZES", "150,600").split(",")]
    # GRACEHOOK_E2E_AUDIT_BASELINE=OLD_BINARY measures another build in the same run.
    ns = c.namespace("audit-scale")
    created = [0]
    lock = threading.Lock()

    def create(upto):
        conn, headers = c.api()
        try:
            while True:
                with lock:
                    if created[0] >= upto:
                        return
                    i = created[0]
                    created[0] += 1
                body = json.dumps(big_deployment(f"d{i:05d}", 28 * 1024))
                conn.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 201:
                    raise AssertionError(f"creating d{i:05d}: HTTP {response.status}")
        finally:
            conn.close()
    results = []
    for size in sizes:
        started = time.time()
        workers = [threading.Thread(target=create, args=(size,)) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        log(f"{size} Deployments of ~28 KiB in {ns} ({time.time() - started:.0f}s to create)")
        baseline = os.environ.get("GRACEHOOK_E2E_AUDIT_BASELINE")
        for binary in [c.gracehook] + ([baseline] if baseline else []):
            elapsed, peak = audit_run(c, binary, ns, size)
            log(f"gracehook audit of {size} Deployments{' (baseline ' + binary + ')' if binary != c.gracehook else ''}: "
                f"{elapsed:.1f}s, peak RSS {peak:.1f} MiB")
            if binary == c.gracehook:
                results.append((size, elapsed, peak))
    if len(results) > 1:
        growth = results[-1][2] / results[0][2]
        expect(growth < 1.5, f"peak RSS grew {growth:.2f}x from {results[0][0]} to {results[-1][0]} workloads")


@scenario
def manifests_pass_server_side_validation(c):
    c.kubectl("create", "namespace", "gracehook-system", check=False)
    for name in ("base", "cert-manager", "audit"):
        # Client-side conversion cannot map cert-manager kinds without the CRDs.
        rendered = c.kubectl("kustomize", os.path.join(REPO, "manifests", name)).stdout
        kept = [doc for doc in rendered.split("\n---\n") if "cert-manager.io/v1" not in doc.split("\n", 2)[0]]
        objects = c.to_objects("\n---\n".join(kept))
        objects = [o for o in objects if not o["apiVersion"].startswith("cert-manager.io/")
                   and o["kind"] != "Namespace"]
        result = c.kubectl("apply", "--dry-run=server", "-f", "-", check=False,
                           input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
        expect(result.returncode == 0, f"{name}: {result.stderr}")
        expect(result.stderr.strip() == "" or "Warning" not in result.stderr, f"{name} warnings: {result.stderr}")


@scenario
def the_largest_pod_the_api_server_stores_fits_the_body_limit(c):
    """The body limit (7 MiB, src/server/routes.rs) must hold the review of
    any pod CREATE the API server can store. Bisects the number of minimal
    containers a stored pod can have (the request limit is 3 MiB, etcd's
    1.5 MiB; defaulting adds ~150 bytes to each container), and measures the
    stored pod's JSON, which is the review's object (printed for
    docs/operations.md)."""
    ns = c.namespace("bodylimit", "enforce")

    def create(count):
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"big-{count}"},
                "spec": {"containers": [{"name": f"c{i}", "image": "b"} for i in range(count)]}}
        result = c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(body), check=False)
        return result.returncode == 0

    lo, hi = 1, 120_000
    while hi - lo > max(lo // 50, 1):
        mid = (lo + hi) // 2
        if create(mid):
            lo = mid
        else:
            hi = mid
    stored = json.loads(c.kubectl("get", "pod", "-n", ns, f"big-{lo}", "-o", "json").stdout)
    # As the API server writes it into a review: compact.
    size = len(json.dumps(stored, separators=(",", ":")).encode())
    limit = 7 * 1024 * 1024
    log(f"largest stored pod: {lo} minimal containers, {size} bytes of JSON "
        f"({size / 1024 / 1024:.2f} MiB; the body limit is 7 MiB)")
    expect(size + 64 * 1024 < limit, f"a storable pod's review ({size} bytes) does not fit the 7 MiB limit")
    c.kubectl("delete", "namespace", ns, "--wait=false")
