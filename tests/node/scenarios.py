"""The node suite's scenarios (see `run` and README.md): `Context`, what
every scenario gets (the running Node of node.py, the config, lines to print
after the teardown), the install from manifests/ that always runs first, the
pod and Deployment builders, and the scenarios themselves, in order.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import load as loadlib
import node as nodelib
from harness import SCENARIOS, expect, scenario, wait_for
from node import log

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


class Context:
    """The node, the installed gracehook, and what scenarios share."""

    def __init__(self, node, config):
        self.node = node
        self.config = config
        self.gracehook = config["gracehook"]
        self.web = config["images"]["web"][0]
        self.nginx = config["images"]["nginx"][0]
        self.nginx_quit = config["images"]["nginx-quit"][0]
        self.proxy = config["images"]["proxy"][0]
        self.lines = []  # printed at the end, after the teardown
        self.shared = {}

    def __getattr__(self, name):
        return getattr(self.node, name)

    def say(self, line):
        log(line)
        self.lines.append(line)


def gracehook_installs_from_its_manifests(c):
    """gracehook as a user installs it: `gracehook certs --out certs` then
    `kubectl apply -k certs`, from copies of the repository's manifests/ and
    certs/, with only the image reference changed (kustomize `images:`)."""
    source = os.environ.get("GRACEHOOK_NODE_SOURCE", REPO)
    work = tempfile.mkdtemp(dir=c.node.dir, prefix="install-")
    shutil.copytree(os.path.join(source, "manifests"), os.path.join(work, "manifests"))
    os.makedirs(os.path.join(work, "certs"))
    shutil.copy(os.path.join(source, "certs", "kustomization.yaml"), os.path.join(work, "certs"))
    nodelib.sh(c.gracehook, "certs", "--out", os.path.join(work, "certs"))
    deployment = open(os.path.join(source, "manifests", "base", "deployment.yaml")).read()
    original = re.search(r"^\s*image:\s*(\S+)", deployment, re.M).group(1)
    name, tag = c.config["images"]["gracehook"][0].rsplit(":", 1)
    os.makedirs(os.path.join(work, "install"))
    with open(os.path.join(work, "install", "kustomization.yaml"), "w") as f:
        f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                "resources:\n- ../certs\n"
                f"images:\n- name: {original.rsplit(':', 1)[0]}\n  newName: {name}\n  newTag: \"{tag}\"\n")
    c.kubectl("apply", "-k", os.path.join(work, "install"))
    rollout = c.kubectl("-n", "gracehook-system", "rollout", "status", "deploy/gracehook", "--timeout=90s",
                        timeout=120, check=False)
    if rollout.returncode != 0:
        why = c.kubectl("-n", "gracehook-system", "logs", "deploy/gracehook", "--previous", "--tail=5",
                        check=False)
        raise AssertionError(f"gracehook's Deployment did not become available: {rollout.stderr.strip()}\n"
                             f"its log: {(why.stdout + why.stderr).strip()}")
    # The observer (manifests/observe, which certs/ includes): both replicas
    # roll out, and one of them holds the Lease.
    rollout = c.kubectl("-n", "gracehook-system", "rollout", "status", "deploy/gracehook-observe",
                        "--timeout=90s", timeout=120, check=False)
    if rollout.returncode != 0:
        why = c.kubectl("-n", "gracehook-system", "logs", "deploy/gracehook-observe", "--tail=5", check=False)
        raise AssertionError(f"the observer's Deployment did not become available: {rollout.stderr.strip()}\n"
                             f"its log: {(why.stdout + why.stderr).strip()}")
    observers = {p["metadata"]["name"] for p in c.get("pods", "-n", "gracehook-system", "-l", OBSERVER)["items"]}
    expect(len(observers) == 2, f"observer pods: {sorted(observers)}")
    leader = wait_for("an observer to hold the Lease gracehook-system/gracehook-observe",
                      lambda: observer_leader(c) in observers and observer_leader(c), timeout=30, interval=0.5)
    log(f"observer {leader} holds the Lease gracehook-system/gracehook-observe (of {sorted(observers)})")
    c.namespace("probe", "enforce")
    probe = pod("probe", c.web)

    def mutated():
        out = c.kubectl("create", "-n", "probe", "--dry-run=server", "-o", "json", "-f", "-",
                        input=json.dumps(probe)).stdout
        return "gracehook.io/status" in json.loads(out)["metadata"].get("annotations", {})
    wait_for("the API server to call gracehook through its Service", mutated, timeout=60, interval=0.5)
    log("gracehook installed: " + c.config["images"]["gracehook"][0])


# Always first: the other scenarios need it.
SCENARIOS.insert(0, gracehook_installs_from_its_manifests)


def pod(name, image, annotations=None, labels=None, command=None, grace=None, prestop=None):
    container = {"name": "web", "image": image, "imagePullPolicy": "Never"}
    if command:
        container["command"] = command
    if prestop:
        container["lifecycle"] = {"preStop": prestop}
    spec = {"containers": [container], "enableServiceLinks": False}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations or {}, "labels": labels or {}},
            "spec": spec}


def deployment(name, image, replicas=3, annotations=None, command=None, readiness=True, grace=None, prestop=None,
               containers=(), init_containers=()):
    """`containers` and `init_containers` are added after the first
    container (`web`), as they are (a sidecar, for example)."""
    template = pod(name, image, annotations, {"app": name}, command, grace, prestop)
    if readiness:
        template["spec"]["containers"][0]["readinessProbe"] = {
            "httpGet": {"path": "/index.html", "port": 80}, "periodSeconds": 1, "failureThreshold": 1}
        template["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "name": "http"}]
    template["spec"]["containers"] += list(containers)
    if init_containers:
        template["spec"]["initContainers"] = list(init_containers)
    del template["metadata"]["name"], template["apiVersion"], template["kind"]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template}}


def service(name, target_port=80):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": target_port, "name": "http"}]}}


def prestop_of(p, i=0):
    return p["spec"]["containers"][i].get("lifecycle", {}).get("preStop")


def pods_of(c, namespace, app):
    return c.get("pods", "-n", namespace, "-l", f"app={app}")["items"]


def wait_ready(c, namespace, name, timeout=120):
    c.kubectl("-n", namespace, "rollout", "status", f"deploy/{name}", f"--timeout={timeout}s", timeout=timeout + 20)


# -- the drain-outcome observer (docs/observe.md) ---------------------------

WEBHOOK = "app.kubernetes.io/name=gracehook"
OBSERVER = "app.kubernetes.io/name=gracehook-observe"
SUGGESTION = re.compile(r"raise gracehook\.io/request-timeout to at least (\d+)s")


def observer_leader(c):
    """The holder of the Lease gracehook-system/gracehook-observe (None: none)."""
    lease = c.get("lease", "-n", "gracehook-system", "gracehook-observe")
    return lease.get("spec", {}).get("holderIdentity") or None


def observer_counts(c, observer, ns):
    """`gracehook_terminations_total` of the namespace `ns` on one observer
    (its /metrics on port 9090, through the API server's pod proxy), summed
    per outcome; zeros left out."""
    text = c.kubectl("get", "--raw", f"/api/v1/namespaces/gracehook-system/pods/{observer}:9090/proxy/metrics").stdout
    counts = {}
    for m in re.finditer(r"^gracehook_terminations_total\{([^}]*)\}\s+(\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("namespace") == ns and float(m.group(2)):
            counts[labels["outcome"]] = counts.get(labels["outcome"], 0) + int(float(m.group(2)))
    return counts


def drains(c, ns):
    """`gracehook drains -n ns -o json` with the node's kubeconfig: the workloads."""
    out = nodelib.sh(c.gracehook, "drains", "--kubeconfig", c.kubeconfig, "-n", ns, "-o", "json", env=c.env,
                     timeout=60).stdout
    return json.loads(out)["workloads"]


def wait_drains(c, ns, pods, timeout=45):
    """`gracehook drains` once the observer has counted `pods` terminations in
    `ns` (it decides a pod 5-9 s after the pod object is gone: its settle
    time and its 2 s tick), or what it has counted after `timeout`."""
    try:
        return wait_for(f"the observer to count {pods} terminations in {ns}", lambda: (
            lambda report: sum(w["terminations"] for w in report) >= pods and report)(drains(c, ns)),
            timeout=timeout, interval=1)
    except AssertionError:
        return drains(c, ns)


def workload(report, name="web"):
    """The Deployment `name` in a `gracehook drains` report, or an empty record."""
    return next((w for w in report if w["kind"] == "Deployment" and w["name"] == name),
                {"terminations": 0, "outcomes": {}, "suggestion": None})


def decisions(text, ns):
    """The observer's log lines of decided pods in `ns` (one JSON object a
    line: namespace, pod, outcome, the sentence as message)."""
    found = []
    for line in text.splitlines():
        line = line[line.find("{"):] if "{" in line else ""
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        fields = dict(entry, **entry.get("fields", {}))
        if fields.get("namespace") == ns and fields.get("outcome") and fields.get("pod"):
            found.append({k: fields.get(k) for k in ("timestamp", "pod", "outcome", "drain_seconds", "grace",
                                                      "message")})
    return found


REFUSED = "the API refused the drain Event"


def refused(text, ns):
    """The observer's warnings for Event writes in `ns` the API refused."""
    found = []
    for line in text.splitlines():
        try:
            entry = json.loads(line[line.find("{"):])
        except ValueError:
            continue
        if entry.get("message") == REFUSED and entry.get("namespace") == ns:
            found.append(f"{entry.get('outcome')}: {entry.get('error', '')[:240]}")
    return found


def observer_log(c, observer):
    return c.kubectl("logs", "-n", "gracehook-system", observer, "--tail=-1", check=False).stdout


def drain_outcomes(w):
    o = w["outcomes"]
    others = ", ".join(f"{k} {n}" for k, n in sorted(o.items()) if n and k not in ("clean", "killed", "hook-failed"))
    return (f"clean {o.get('clean', 0)}, killed {o.get('killed', 0)}, hook-failed {o.get('hook-failed', 0)}"
            + (f", {others}" if others else ""))


def leader_log(c, ns, pods, timeout=10):
    """The leader and its log, once the log shows `pods` decisions in `ns`
    (or after `timeout`): the observer writes its log in bursts (every
    200 ms) and the runtime copies it on, so a decision can be in the
    Events a moment before it is in `kubectl logs`."""
    deadline = time.time() + timeout
    while True:
        leader = observer_leader(c)
        text = observer_log(c, leader) if leader else ""
        if len(decisions(text, ns)) >= pods or time.time() > deadline:
            return leader, text
        time.sleep(0.5)


def observed(c, ns, pods, label):
    """What the observer made of `pods` terminations in `ns`, read before the
    namespace (and its Events) goes: `gracehook drains`, the leader's
    counter and its log lines for the namespace. Prints the outcomes line."""
    w = workload(wait_drains(c, ns, pods))
    leader, text = leader_log(c, ns, pods)
    found = {"workload": w, "leader": leader, "metric": observer_counts(c, leader, ns) if leader else {},
             "decisions": decisions(text, ns), "refused": refused(text, ns)}
    c.say(f"drain outcomes {label}: {drain_outcomes(w)} (of {pods} old pods; "
          f"gracehook_terminations_total on the leader {leader}: "
          f"{', '.join(f'{k} {n}' for k, n in sorted(found['metric'].items())) or 'none'})")
    for d in found["decisions"]:
        log(f"  observer: {d['pod']} {d['outcome']}: {d['message']}")
    for line in found["refused"]:
        log(f"  observer: {REFUSED}: {line}")
    return found


def expect_all_clean(result):
    """Every old pod of a rollout counted once, clean, by `gracehook drains`
    and by the leader's counter."""
    seen, n = result["observed"], len(result["terminations"])
    w = seen["workload"]
    # Each old pod decided once, clean (the leader's log line per pod) ...
    decided = sorted((d["pod"], d["outcome"]) for d in seen["decisions"])
    expect(decided == sorted((name, "clean") for name in result["terminations"]),
           f"the observer decided {[(d['pod'], d['outcome'], d['message']) for d in seen['decisions']]} for the "
           f"old pods {sorted(result['terminations'])}; their facts: {json.dumps(result['terminations'])}")
    # ... its counter agrees ...
    expect(seen["metric"] == {"clean": n}, f"the leader's gracehook_terminations_total: {seen['metric']}, "
                                           f"not clean {n}")
    # ... and so do its Events, as `gracehook drains` reads them back.
    expect(w["terminations"] == n and w["outcomes"].get("clean") == n,
           f"{n} old pods decided clean, but gracehook drains says {drain_outcomes(w)} ({w['terminations']} "
           f"counted); Event writes the API refused: {seen['refused']}")


# -- scenarios -------------------------------------------------------------
#
# Times: the seed's recipe (3s / 30s / 7s) scaled down to test time.
SCALED = {"gracehook.io/drain-delay": "2s", "gracehook.io/request-timeout": "6s", "gracehook.io/margin": "2s"}
APACHE_DRAIN = "apache2ctl graceful-stop"
TRACER = ["/usr/local/bin/tracer"]
# The seed's hook text, as people write it by hand: Apache prefork's final
# kill(-1, SIGTERM) (it is the container's PID 1) ends it with 143.
SEED_TEXT = "sleep {d}; {cmd}; sleep {t}"
# What gracehook writes instead (docs/plan.md): the same waits, exit 0.
def gracehook_hook(d, cmd, t):
    """The exec command gracehook writes for a drain command (docs/plan.md)."""
    script = f"trap 'exit 0' TERM; sleep {d}; sh -c \"$1\" & sleep {t} & wait $!"
    return ["sh", "-c", script, "gracehook-drain", cmd]


@scenario
def a_pod_starts_and_stops(c):
    ns = c.namespace("basics")
    c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod("tracer", c.web, command=TRACER)))
    wait_for("the pod Running", lambda: c.get("pod", "-n", ns, "tracer")["status"].get("phase") == "Running",
             timeout=60)
    p = c.get("pod", "-n", ns, "tracer")
    expect(p["status"]["podIP"].startswith("10.244.0."), p["status"])
    logs = c.kubectl("logs", "-n", ns, "tracer").stdout
    expect(" start" in logs, logs)
    # No DNS: with resolvConf "" the kubelet gives pods `nameserver 127.0.0.1`
    # (their own loopback: "effectively disable DNS lookups"), never the machine's.
    resolv = c.kubectl("exec", "-n", ns, "tracer", "--", "cat", "/etc/resolv.conf").stdout
    servers = re.findall(r"^nameserver\s+(\S+)", resolv, re.M)
    expect(all(s in ("127.0.0.1", "::1") for s in servers), f"the pod has a resolver: {resolv}")
    c.kubectl("delete", "pod", "-n", ns, "tracer", "--wait=true", timeout=90)
    c.kubectl("delete", "namespace", ns, "--wait=false")


def http_get(host, path, port=80, timeout=5):
    import http.client
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


@scenario
def service_balances_across_pods(c):
    ns = c.namespace("balance")
    c.apply(deployment("web", c.web, 3), "-n", ns)
    c.apply(service("web"), "-n", ns)
    wait_ready(c, ns, "web")
    vip = c.get("service", "-n", ns, "web")["spec"]["clusterIP"]
    names = {p["metadata"]["name"] for p in pods_of(c, ns, "web")}
    seen = {}

    def all_answered():
        status, body = http_get(vip, "/cgi-bin/host")
        if status == 200:
            seen[body.strip()] = seen.get(body.strip(), 0) + 1
        return set(seen) == names
    wait_for(f"every pod to answer on the ClusterIP {vip}", all_answered, timeout=30, interval=0.05)
    log(f"ClusterIP {vip} answered from {len(seen)} pods in {sum(seen.values())} requests")
    c.kubectl("delete", "namespace", ns, "--wait=false")


def container_processes(name):
    """PIDs (in this PID namespace) of processes whose command line starts with `name`."""
    found = []
    for pid in nodelib.pids():
        if nodelib.cmdline(pid).startswith(name):
            found.append(pid)
    return found


@scenario
def gracehook_runs_as_its_manifests_describe(c):
    pods = c.get("pods", "-n", "gracehook-system", "-l", "app.kubernetes.io/name=gracehook")["items"]
    expect(len(pods) == 2, [p["metadata"]["name"] for p in pods])
    for p in pods:
        ready = [x for x in p["status"]["conditions"] if x["type"] == "Ready"]
        expect(ready and ready[0]["status"] == "True", f"{p['metadata']['name']} not Ready")
        container = p["spec"]["containers"][0]
        expect(container["image"] == c.config["images"]["gracehook"][0], container["image"])
        expect(container["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}, container.get("lifecycle"))
        expect(container["securityContext"]["readOnlyRootFilesystem"] is True, container["securityContext"])
        expect("readinessProbe" in container and "livenessProbe" in container, container)
        expect("gracehook.io/status" not in p["metadata"].get("annotations", {}), "gracehook mutated itself")
    # The processes, seen from the node: the image's user, a read-only root.
    pids = container_processes("/gracehook serve")
    expect(len(pids) == 2, f"gracehook processes on the node: {pids}")
    for pid in pids:
        status = open(f"/proc/{pid}/status").read()
        uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
        gid = re.search(r"^Gid:\s+(\d+)", status, re.M).group(1)
        expect((uid, gid) == ("65532", "65532"), f"gracehook runs as {uid}:{gid}")
        root = [line for line in open(f"/proc/{pid}/mountinfo") if line.split()[4] == "/"]
        expect(root and " ro," in f" {root[-1].split()[5]},", f"root not read-only: {root}")
    # The API server reached it through the Service: kube-proxy's DNAT of the
    # ClusterIP to a gracehook pod, as conntrack recorded it.
    vip = c.get("service", "-n", "gracehook-system", "gracehook")["spec"]["clusterIP"]
    pod_ips = {p["status"]["podIP"] for p in pods}
    c.kubectl("create", "-n", "probe", "--dry-run=server", "-f", "-", input=json.dumps(pod("probe", c.web)))
    entries = nodelib.sh("conntrack", "-L", "-p", "tcp", "--orig-dst", vip, "--orig-port-dst", "443").stdout
    dnat = [line for line in entries.splitlines() if any(f"src={ip} " in line and "sport=8443" in line
                                                         for ip in pod_ips)]
    expect(dnat, f"no connection to {vip}:443 translated to a gracehook pod: {entries}")
    log(f"API server -> {vip}:443 -> gracehook pods: {len(dnat)} conntrack entries")


# The seed's Deployment (examples/apache-deployment.yaml), on this node's image.
def seed_deployment(c):
    text = open(os.path.join(REPO, "examples", "apache-deployment.yaml")).read()
    dep = c.to_objects(text)[0]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container.update(image=c.web, imagePullPolicy="Never")
    del dep["metadata"]["namespace"]
    return dep


def seed_namespaces(c):
    """The seed's Deployment in an enforce and in an audit namespace (once)."""
    if "seed" in c.shared:
        return c.shared["seed"]
    namespaces = {"enforce": c.namespace("shop", "enforce"), "audit": c.namespace("shop-audit", "audit")}
    for ns in namespaces.values():
        c.apply(seed_deployment(c), "-n", ns)
    for ns in namespaces.values():
        wait_ready(c, ns, "web")
    c.shared["seed"] = namespaces
    return namespaces


@scenario
def controller_pods_carry_the_seed_recipe(c):
    ns = seed_namespaces(c)["enforce"]
    seed_hook = {"exec": {"command": gracehook_hook(3, "apachectl -k graceful-stop", 30)}}
    pods = pods_of(c, ns, "web")
    expect(len(pods) == 3, [p["metadata"]["name"] for p in pods])
    rs = c.get("replicasets", "-n", ns)["items"]
    expect(len(rs) == 1, [r["metadata"]["name"] for r in rs])
    for p in pods:
        meta = p["metadata"]
        expect(meta.get("generateName") == rs[0]["metadata"]["name"] + "-", meta.get("generateName"))
        owners = meta.get("ownerReferences", [])
        expect(owners and owners[0]["kind"] == "ReplicaSet" and owners[0]["controller"], owners)
        expect(prestop_of(p) == seed_hook, f"{meta['name']}: preStop {prestop_of(p)}")
        expect(p["spec"]["terminationGracePeriodSeconds"] == 40, p["spec"]["terminationGracePeriodSeconds"])
        expect(json.loads(meta["annotations"]["gracehook.io/status"]) == {"grace": 40,
                                                                          "containers": {"web": "exec"}}, meta)
        expect(p["status"]["phase"] == "Running", p["status"]["phase"])
    log(f"{len(pods)} pods of ReplicaSet {rs[0]['metadata']['name']} carry the seed's hook and grace 40")


@scenario
def audit_namespace_records_the_warning_for_controller_pods(c):
    ns = seed_namespaces(c)["audit"]
    pods = pods_of(c, ns, "web")
    expect(len(pods) == 3, [p["metadata"]["name"] for p in pods])
    for p in pods:
        expect(prestop_of(p) is None, f"audit mode changed {p['metadata']['name']}")
        expect(p["spec"]["terminationGracePeriodSeconds"] == 30, p["spec"]["terminationGracePeriodSeconds"])
        expect("gracehook.io/status" not in p["metadata"].get("annotations", {}), "status written in audit mode")
    # The warning goes back to the client that created the pod: here the
    # ReplicaSet controller. The API server's audit log keeps it for every pod.
    names = {p["metadata"]["name"] for p in pods}
    wanted = ("would set terminationGracePeriodSeconds 30 -> 40 and add preStop "
              "(sleep 3s; apachectl -k graceful-stop; sleep 30s) to container web")

    def recorded():
        found = {}
        for event in c.audit_events():
            ref = event.get("objectRef", {})
            if event.get("verb") == "create" and ref.get("resource") == "pods" and ref.get("namespace") == ns:
                name = ref.get("name") or event.get("responseObject", {}).get("metadata", {}).get("name")
                annotations = event.get("annotations", {})
                if "audit.gracehook.io/patch" in annotations:
                    found[name or f"?{len(found)}"] = (event["user"]["username"], annotations)
        return found if len(found) >= len(names) else None
    found = wait_for("the audit annotations of the controller's pod creations", recorded, timeout=15)
    for user, annotations in found.values():
        expect(user == "system:serviceaccount:kube-system:replicaset-controller", user)
        expect(wanted in annotations["audit.gracehook.io/summary"], annotations)
    log(f"audit log: {len(found)} pod creations by the replicaset-controller with gracehook's annotations")
    # gracehook's own log line for each of these admissions.
    logs = c.kubectl("logs", "-n", "gracehook-system", "-l", "app.kubernetes.io/name=gracehook",
                     "--tail=-1", "--prefix=false").stdout
    audited = [json.loads(line) for line in logs.splitlines() if line.startswith("{") and f'"{ns}"' in line]
    audited = [e for e in audited if e.get("outcome") == "audited" or e.get("fields", {}).get("outcome") == "audited"]
    expect(len(audited) >= len(names), f"gracehook logged {len(audited)} audited admissions in {ns}")
    # The warning text itself reaches no one: the ReplicaSet controller made
    # the request, and kube-controller-manager silences client-go warnings
    # (restclient.SetDefaultWarningHandler(NoWarnings{}) in its command).
    kcm = open(os.path.join(c.node.dir, "kube-controller-manager.log"), errors="replace").read()
    c.say(f"audit mode, controller-made pods: the warning is in the audit log ({len(found)} creations by "
          f"the replicaset-controller) and gracehook's log ({len(audited)} lines); kube-controller-manager "
          f"logged it {kcm.count('gracehook audit:')} times (it drops client-go warnings)")


@scenario
def gracehook_audit_reports_the_controller_workloads(c):
    namespaces = seed_namespaces(c)
    result = subprocess.run([c.gracehook, "audit", "--kubeconfig", c.kubeconfig, "-A", "-o", "json"],
                            capture_output=True, text=True, timeout=60)
    expect(result.returncode == 0, result.stderr)
    report = json.loads(result.stdout)
    for mode, ns in namespaces.items():
        found = [w for w in report["workloads"] if w["namespace"] == ns]
        expect([(w["kind"], w["name"]) for w in found] == [("Deployment", "web")],
               f"{ns}: {[(w['kind'], w['name']) for w in found]} (the ReplicaSet and its pods are the Deployment's)")
        w = found[0]
        expect(w["mode"] == mode, w)
        expect("preStop (sleep 3s; apachectl -k graceful-stop; sleep 30s)" in w["wouldSet"], w)
        expect("web: no preStop delay" in w["risks"], w)
    log("gracehook audit: " + report.get("summary", {}).__repr__())


def tracer_timeline(c, ns, name, annotations=None, prestop=None, grace=None):
    """Runs a tracer pod, deletes it, and returns (pod as created, deletion
    time from the audit log, the tracer's events with their times)."""
    c.kubectl("create", "-n", ns, "-f", "-",
              input=json.dumps(pod(name, c.web, annotations, command=TRACER, grace=grace, prestop=prestop)))
    wait_for(f"{name} Running", lambda: c.get("pod", "-n", ns, name)["status"].get("phase") == "Running", timeout=60)
    created = c.get("pod", "-n", ns, name)
    follow = subprocess.Popen([f"{c.node.bin}/kubectl", "logs", "-f", "-n", ns, name], env=c.node.env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wait_for("the tracer's first line", lambda: follow.stdout.readline(), timeout=10)
    c.kubectl("delete", "pod", "-n", ns, name, "--wait=false")
    try:
        out, _ = follow.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        follow.kill()
        out, _ = follow.communicate()
    deleted = None
    for event in c.audit_events():
        ref = event.get("objectRef", {})
        if (event.get("verb") == "delete" and ref.get("namespace") == ns and ref.get("name") == name
                and event["user"]["username"] == "admin"):
            deleted = timestamp(event["requestReceivedTimestamp"])
            break  # (the kubelet deletes the pod again once its containers are gone)
    expect(deleted, "the pod's deletion is not in the audit log")
    events = []
    for line in out.splitlines():
        at, _, what = line.partition(" ")
        try:
            events.append((float(at) - deleted, what))
        except ValueError:
            pass
    return created, deleted, events


def timestamp(text):
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def first(events, predicate):
    return next((at for at, what in events if predicate(what)), None)


def explain(c, p):
    """`gracehook mutate -o explain` on the pod as it was submitted: [(seconds, text)]."""
    path = os.path.join(c.node.dir, f"explain-{p['metadata']['name']}.json")
    with open(path, "w") as f:
        json.dump(p, f)
    out = nodelib.sh(c.gracehook, "mutate", "-f", path, "-o", "explain").stdout
    lines = []
    for line in out.splitlines():
        m = re.match(r"^\s*(\d+)s\s+(.*)$", line)
        if m:
            lines.append((int(m.group(1)), m.group(2)))
    return out, lines


def compare(c, title, rows):
    """rows: (event, expected seconds, observed seconds or None); within 1s."""
    table = [f"{title}:", f"  {'event':<34} {'explain':>8} {'observed':>9}"]
    bad = []
    for event, expected, observed in rows:
        table.append(f"  {event:<34} {expected:>7}s {'-' if observed is None else f'{observed:8.2f}s':>9}")
        if observed is None or abs(observed - expected) > 1.0:
            bad.append(event)
    for line in table:
        c.say(line)
    expect(not bad, f"not within 1s of explain: {', '.join(bad)}")


@scenario
def timeline_matches_explain(c):
    ns = c.shared.get("timeline-ns") or c.namespace("timeline", "enforce")
    c.shared["timeline-ns"] = ns
    annotations = dict(SCALED, **{"gracehook.io/drain-command": "kill -USR1 1"})
    submitted = pod("seed", c.web, annotations, command=TRACER, grace=10)
    text, plan = explain(c, submitted)
    log("gracehook mutate -o explain:\n" + text.rstrip())
    created, _, events = tracer_timeline(c, ns, "seed", annotations, grace=10)
    hook = prestop_of(created)["exec"]["command"][2]
    expected = {what: at for at, what in plan}

    def at(fragment):
        return next(v for k, v in expected.items() if fragment in k)
    started = first(events, lambda w: w.startswith("proc ") and " sh -c " in f" {w.split(' ', 5)[-1]}")
    expect(started is not None, "the preStop hook never ran")
    # explain's clock starts when the kubelet acts on the deletion; the
    # kubelet's own reaction time (its watch, its pod worker) is not part of
    # the plan, so the rows are compared from the hook's start, and that
    # reaction is only bounded.
    c.say(f"the kubelet started the preStop hook {started:.2f}s after the deletion")
    expect(started < 5.0, f"the preStop hook started {started:.2f}s after the deletion")
    since = lambda t: None if t is None else t - started + at("preStop runs")  # noqa: E731
    rows = [
        ("preStop starts (sh -c ...)", at("preStop runs"), since(started)),
        ("drain command (kill -USR1 1)", at("kill -USR1 1"), since(first(events, lambda w: w == "signal USR1"))),
        ("SIGTERM", at("SIGTERM"), since(first(events, lambda w: w == "signal TERM"))),
        ("container exit", at("SIGTERM"), since(first(events, lambda w: w.startswith("exit")))),
    ]
    compare(c, f"timeline of a pod with preStop {hook!r}, grace {created['spec']['terminationGracePeriodSeconds']}s"
            " (from the hook's start)", rows)
    expect(rows[-1][2] < at("SIGKILL"), "the container outlived its grace period")


@scenario
def native_sleep_delays_sigterm_by_the_drain_delay(c):
    ns = c.shared.get("timeline-ns") or c.namespace("timeline", "enforce")
    c.shared["timeline-ns"] = ns
    created, _, events = tracer_timeline(c, ns, "native", {"gracehook.io/drain-delay": "2s"})
    expect(prestop_of(created) == {"sleep": {"seconds": 2}}, prestop_of(created))
    sigterm = first(events, lambda w: w == "signal TERM")
    c.say(f"native sleep preStop (2s): SIGTERM {sigterm:.2f}s after the deletion")
    # Never before the delay; the kubelet's reaction to the deletion may add
    # to it (timeline_matches_explain bounds that at 5s).
    expect(sigterm is not None and 2.0 <= sigterm < 7.0, f"SIGTERM at {sigterm}s, not 2s after the deletion")
    during = [w for at, w in events if w.startswith("proc ") and 0 <= at < sigterm]
    expect(not during, f"the native sleep ran something in the container: {during}")


@scenario
def gracehook_rollout_mutates_every_pod(c):
    ns = c.namespace("during-rollout", "enforce")
    created, errors, stop = [], [], threading.Event()
    lock = threading.Lock()

    def create_pods(first):
        # Two creators, one pod after another each: bounded in count and time.
        for i in range(first, first + 500):
            if stop.is_set():
                return
            name = f"p{i:04d}"
            p = pod(name, c.web)
            p["spec"]["nodeSelector"] = {"gracehook.test/nowhere": "true"}  # never scheduled: no load
            result = c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(p), check=False)
            with lock:
                (created if result.returncode == 0 else errors).append(
                    name if result.returncode == 0 else result.stderr.strip())
    # The webhook's pods only: the observer's (gracehook-observe) stay.
    before = {p["metadata"]["name"] for p in c.get("pods", "-n", "gracehook-system", "-l", WEBHOOK)["items"]}
    creators = [threading.Thread(target=create_pods, args=(first,), daemon=True) for first in (0, 500)]
    for creator in creators:
        creator.start()
    time.sleep(2)
    started = time.time()
    c.kubectl("-n", "gracehook-system", "rollout", "restart", "deploy/gracehook")
    c.kubectl("-n", "gracehook-system", "rollout", "status", "deploy/gracehook", "--timeout=180s", timeout=200)
    rolled = time.time() - started
    wait_for("the old gracehook pods gone", lambda: not before & {
        p["metadata"]["name"] for p in c.get("pods", "-n", "gracehook-system", "-l", WEBHOOK)["items"]},
        timeout=90, interval=0.5)
    gone = time.time() - started
    time.sleep(2)
    stop.set()
    for creator in creators:
        creator.join(30)
    pods = c.get("pods", "-n", ns)["items"]
    unmutated = sorted(p["metadata"]["name"] for p in pods
                       if "gracehook.io/status" not in p["metadata"].get("annotations", {}))
    mutated = len(pods) - len(unmutated)
    c.say(f"gracehook's own rollout: {mutated} of {len(created)} pods created meanwhile were mutated "
          f"(rollout {rolled:.1f}s, old replicas gone after {gone:.1f}s)")
    expect(not errors, f"pod creations failed: {errors[:3]}")
    expect(len(pods) == len(created) and len(created) > 20, f"{len(pods)} pods for {len(created)} creations")
    expect(not unmutated, f"created without the mutation (the fail-open path): {unmutated[:10]}")
    c.kubectl("delete", "namespace", ns, "--wait=false")


# -- issue 14: Apache behind a Service, a rolling update under load ---------

def kubelet_hook_exits(c, ns, name=None):
    """The exit codes the kubelet logged for failed preStop hooks of pods in
    `ns` (of pod `name` only, if given)."""
    codes = []
    pod_ref = f'pod="{ns}/{name}"' if name else f'pod="{ns}/'
    with open(os.path.join(c.node.dir, "kubelet.log"), errors="replace") as f:
        # One record per klog header: a hook that printed something (nginx
        # -s quit does) makes the record span lines, its exit code below.
        records = re.split(r"\n(?=[IWEF]\d{4} )", f.read())
    for record in records:
        if "Exec lifecycle hook" in record and pod_ref in record:
            m = re.search(r"exited with (\d+)", record)
            codes.append(int(m.group(1)) if m else None)
    return codes


def follow_pods(c, ns, app, names, containers=()):
    """Starts `kubectl get pods -w -o json --output-watch-events` on the
    pods of `app` (the last state the API server had of each pod, including
    the DELETED event's, which carries the containers' final terminated
    state: the pod itself is gone afterwards), and `kubectl logs -f
    --timestamps` on each of `names` (the runtime's timestamps, to the
    nanosecond, where finishedAt has seconds; nginx logs the signals it gets
    and its exit); also on the other `containers` of each (`NAME:CONTAINER`)."""
    followers = {}
    for name, args in [(None, ["get", "pods", "-n", ns, "-l", f"app={app}", "-w", "-o", "json",
                               "--output-watch-events"])] + [
            (name, ["logs", "-f", "--timestamps", "-n", ns, name]) for name in sorted(names)] + [
            (f"{name}:{container}", ["logs", "-f", "--timestamps", "-n", ns, name, "-c", container])
            for name in sorted(names) for container in containers]:
        out = open(os.path.join(c.node.dir, f"{'watch' if name is None else 'log'}-{ns}-"
                                            f"{(name or app).replace(':', '-')}.txt"), "w+")
        followers[name] = (subprocess.Popen([f"{c.node.bin}/kubectl", *args], env=c.node.env, stdout=out,
                                            stderr=subprocess.DEVNULL), out)
    return followers


def stop_following(followers):
    """Stops the followers; their output by pod name (None: the watch)."""
    texts = {}
    for name, (process, out) in followers.items():
        if process.poll() is None:
            process.terminate()
        process.wait(10)
        out.seek(0)
        texts[name] = out.read()
        out.close()
    return texts


# The lines of a server's own log that tell how it stopped (nginx: "signal 3
# (SIGQUIT) received", "exit"; Apache: "caught SIGTERM", "SIGWINCH received").
STOP_LINES = re.compile(r"signal|SIG[A-Z]+|\bexit|shutting down")


def terminations(c, ns, followers, names):
    """For each pod in `names`: when it was deleted (the API server's audit
    log), its grace period, what the kubelet said of its preStop hook, and
    each container's final state — the facts that tell a drain that worked
    from one that failed (docs/plan.md, "Servers that exit by themselves")."""
    texts = stop_following(followers)
    last, grace, deadline = {}, {}, {}
    decoder, text, at = json.JSONDecoder(), texts[None], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        try:
            event, at = decoder.raw_decode(text, at)
        except ValueError:
            break  # the watch was stopped in the middle of an object
        p = event.get("object", {})
        name = p.get("metadata", {}).get("name")
        last[name] = dict(p, watchEvent=event.get("type"))
        # The grace period of the controller's deletion: the first one seen
        # (the kubelet deletes the pod again, with 0, once its containers are gone).
        if p["metadata"].get("deletionGracePeriodSeconds"):
            grace.setdefault(name, p["metadata"]["deletionGracePeriodSeconds"])
            # deletionTimestamp is the deletion plus the grace period: when SIGKILL is due
            deadline.setdefault(name, p["metadata"]["deletionTimestamp"])
    deleted = {}
    for event in c.audit_events():
        ref = event.get("objectRef", {})
        if event.get("verb") == "delete" and ref.get("namespace") == ns and ref.get("name") in names:
            deleted.setdefault(ref["name"], timestamp(event["requestReceivedTimestamp"]))  # the first: the controller's
    found = {}
    for name in sorted(names):
        p = last.get(name, {})
        due = timestamp(deadline[name]) if name in deadline else None
        containers = {}
        # initContainerStatuses: native sidecars (none in most pods).
        for status in (p.get("status", {}).get("containerStatuses", [])
                       + p.get("status", {}).get("initContainerStatuses", [])):
            ended = status.get("state", {}).get("terminated") or status.get("lastState", {}).get("terminated")
            if not ended:
                containers[status["name"]] = None
                continue
            finished = timestamp(ended["finishedAt"]) if ended.get("finishedAt") else None
            # finishedAt and deletionTimestamp have a resolution of one second;
            # the server's own log (below) has the runtime's timestamps.
            containers[status["name"]] = {
                "exitCode": ended.get("exitCode"), "reason": ended.get("reason"), "signal": ended.get("signal"),
                "finishedAt": ended.get("finishedAt"),
                "afterDeletion": None if finished is None or name not in deleted else round(
                    finished - deleted[name], 2),
                "beforeDeadline": None if finished is None or due is None else round(due - finished, 2)}
        stops = []
        sources = [("", texts.get(name, ""))] + [(f"[{key.split(':', 1)[1]}] ", texts[key]) for key in
                                                  sorted(k for k in texts if k and k.startswith(name + ":"))]
        for prefix, text in sources:
            for line in text.splitlines():
                stamp, _, what = line.partition(" ")
                if STOP_LINES.search(what) and name in deleted:
                    try:
                        stops.append((round(timestamp(stamp) - deleted[name], 3), prefix + what.strip()))
                    except ValueError:
                        pass
        stops.sort(key=lambda s: s[0])
        found[name] = {"deleted": deleted.get(name), "deletionTimestamp": deadline.get(name),
                       "grace": grace.get(name, p.get("spec", {}).get("terminationGracePeriodSeconds")),
                       "lastWatchEvent": p.get("watchEvent"), "hookExits": kubelet_hook_exits(c, ns, name),
                       "containers": containers, "serverLog": stops}
    return found


def describe_terminations(found):
    """`exit 0 (Completed) at 4s of 30s, hook 137` per old pod, for the log
    and the lines (seconds from the deletion to finishedAt, which is
    truncated to the second: "at 0s" may print as -1s)."""
    parts = []
    for facts in found.values():
        for container, state in facts["containers"].items():
            # Named only in pods of more than one container (sidecars).
            named = f"{container} " if len(facts["containers"]) > 1 else ""
            if not state:
                parts.append(f"{named}not seen terminated")
                continue
            at = state["afterDeletion"]
            parts.append(f"{named}exit {state['exitCode']} ({state['reason']}) at "
                         f"{'?' if at is None else f'{at:.0f}s'} of {facts['grace']}s"
                         f"{', hook ' + '/'.join(map(str, facts['hookExits'])) if facts['hookExits'] else ''}")
    return "; ".join(parts)


def rolling_update(c, key, label, mode=None, annotations=None, prestop=None, grace=None, image=None,
                   long_path=None, observe=False, sidecar=None, native=False, target_port=80):
    """A 3-replica Deployment (Apache, or `image` whose slow request is
    `long_path`) behind a ClusterIP Service; load on the VIP from this
    network namespace while `kubectl rollout restart` replaces every pod.
    With `observe`, also what the observer made of the old pods
    (`observed`). A `sidecar` container (its spec) goes next to Apache, or
    with `native` among the init containers; the Service targets
    `target_port`. Returns (and keeps) the measurements."""
    if key in c.shared:
        return c.shared[key]
    ns = c.namespace(f"rollout-{key}", mode)
    extra = {"init_containers" if native else "containers": [sidecar] if sidecar else []}
    c.apply(deployment("web", image or c.web, 3, annotations, prestop=prestop, grace=grace, **extra), "-n", ns)
    c.apply(service("web", target_port), "-n", ns)
    wait_ready(c, ns, "web")
    vip = c.get("service", "-n", ns, "web")["spec"]["clusterIP"]
    wait_for(f"{vip} answering", lambda: http_get(vip, "/index.html")[0] == 200, timeout=30)
    old = pods_of(c, ns, "web")
    template = old[0]
    old_names = {p["metadata"]["name"] for p in old}
    load = loadlib.Load(vip, 80, rate=20, duration=60, long_every=5, long_seconds=4, timeout=20,
                        long_path=long_path).start()
    followers = follow_pods(c, ns, "web", old_names, [sidecar["name"]] if sidecar else ())
    time.sleep(5)
    started = time.time()
    c.kubectl("-n", ns, "rollout", "restart", "deploy/web")
    c.kubectl("-n", ns, "rollout", "status", "deploy/web", "--timeout=120s", timeout=140)
    rolled = time.time() - started
    wait_for("the old pods gone", lambda: not old_names & {p["metadata"]["name"] for p in pods_of(c, ns, "web")},
             timeout=120, interval=0.5)
    replaced = time.time() - started
    summary = load.wait()
    load_end = load.started + load.duration
    failed_hooks = c.events(ns, "FailedPreStopHook")
    result = dict(summary, key=key, label=label, namespace=ns, rollout=rolled, replaced=replaced,
                  hook=prestop_of(template), grace=template["spec"]["terminationGracePeriodSeconds"],
                  failed_prestop_hooks=sum(e.get("count", 1) for e in failed_hooks),
                  failed_prestop_hook_events=[
                      {"pod": e["involvedObject"].get("name"), "message": e.get("message"), "count": e.get("count"),
                       "lastTimestamp": e.get("lastTimestamp")} for e in failed_hooks],
                  kubelet_hook_exits=kubelet_hook_exits(c, ns), terminations=terminations(c, ns, followers, old_names),
                  within_load=started - load.started + replaced + 3 < load.duration and time.time() >= load_end)
    side = ""
    if sidecar:
        spec = template["spec"]
        [s] = [x for x in spec.get("initContainers" if native else "containers", []) if x["name"] == sidecar["name"]]
        result.update(sidecar=s["name"], native=native, sidecar_hook=s.get("lifecycle", {}).get("preStop"),
                      sidecar_restart_policy=s.get("restartPolicy"),
                      status=template["metadata"].get("annotations", {}).get("gracehook.io/status"))
        side = (f"; {s['name']} ({'native' if native else 'classic'} sidecar) preStop "
                f"{describe_hook(result['sidecar_hook'])}")
    c.shared[key] = result
    detail = ", ".join(f"{n} {k}" for k, n in sorted(summary["by_outcome"].items()))
    c.say(f"rolling update {label}: {summary['failed']} of {summary['requests']} requests failed"
          f"{' (' + detail + ')' if detail else ''}; rollout {rolled:.1f}s, old pods gone after {replaced:.1f}s; "
          f"preStop {describe_hook(result['hook'])}, grace {result['grace']}s; "
          f"FailedPreStopHook events: {result['failed_prestop_hooks']}{side}")
    log(f"  old pods, from their deletion: {describe_terminations(result['terminations'])}")
    for failure in summary["failures"][:5]:
        log(f"  failed at {failure['at']}s {failure['path']}: {failure['outcome']} {failure['detail'][:80]}")
    if observe:
        # The load ran 60 s, the old pods were gone after about 10: the
        # observer has decided them; its Events go with the namespace.
        result["observed"] = observed(c, ns, len(old_names), f"rolling update {label}")
    with open(os.path.join(c.node.dir, f"rollout-{key}.json"), "w") as f:
        json.dump(result, f, indent=1)
    c.kubectl("delete", "namespace", ns, "--wait=false")
    expect(result["within_load"], f"the rollout ({replaced:.0f}s) did not fit in the load window: nothing proven")
    return result


def describe_hook(hook):
    if not hook:
        return "none"
    if "sleep" in hook:
        return f"sleep {hook['sleep']['seconds']}s"
    return repr(" ".join(hook["exec"]["command"][:2]) + " " + repr(hook["exec"]["command"][2]))


def with_gracehook(c):
    return rolling_update(c, "gracehook", "with gracehook", "enforce",
                          dict(SCALED, **{"gracehook.io/drain-command": APACHE_DRAIN}), observe=True)


@scenario
def rolling_update_with_gracehook(c):
    result = with_gracehook(c)
    expected = {"exec": {"command": gracehook_hook(2, APACHE_DRAIN, 6)}}
    expect(result["hook"] == expected, f"preStop {result['hook']}")
    expect(result["failed"] == 0, f"{result['failed']} requests failed: {result['failures'][:5]}")
    expect(result["requests"] == 1200, result["requests"])
    expect_all_clean(result)


@scenario
def rolling_update_without_gracehook(c):
    result = rolling_update(c, "plain", "without gracehook")
    expect(result["hook"] is None and result["grace"] == 30, (result["hook"], result["grace"]))
    expect(result["failed"] > 0, "no request failed without gracehook: the load proves nothing")


@scenario
def rolling_update_with_gracehook_defaults(c):
    result = rolling_update(c, "defaults", "with gracehook defaults", "enforce", observe=True)
    expect(result["hook"] == {"sleep": {"seconds": 5}} and result["grace"] == 40, (result["hook"], result["grace"]))
    expect_all_clean(result)


@scenario
def rolling_update_leaves_no_failed_prestop_hook(c):
    """The gracehook run drains every pod correctly, so no pod may record
    FailedPreStopHook (the seed's own text does: see the next scenario)."""
    result = with_gracehook(c)
    expect(result["failed_prestop_hooks"] == 0,
           f"{result['failed_prestop_hooks']} FailedPreStopHook events for preStop {describe_hook(result['hook'])}; "
           f"the kubelet logged exit codes {result['kubelet_hook_exits']}")


@scenario
def the_seeds_hook_by_hand_drains_but_records_failed_prestop_hooks(c):
    """The contrast: the seed's recipe written by hand drains as well (no
    request fails), but every terminated pod records a FailedPreStopHook
    warning, exit 143 — the noise gracehook's text avoids. In an enforce
    namespace with the scaled annotations: gracehook keeps a container's own
    hook (`kept` in gracehook.io/status, the grace period 2 + 6 + 2 = the
    pod's own 10), and the observer follows it: a hook gracehook did not
    write, killed by Apache's kill(-1, SIGTERM), is `hook-failed`
    (docs/observe.md, "Servers that exit by themselves")."""
    hook = SEED_TEXT.format(d=2, cmd=APACHE_DRAIN, t=6)
    result = rolling_update(c, "seed-text", "with the seed's hook by hand", "enforce", dict(SCALED),
                            prestop={"exec": {"command": ["sh", "-c", hook]}}, grace=10, observe=True)
    expect(result["hook"] == {"exec": {"command": ["sh", "-c", hook]}} and result["grace"] == 10,
           (result["hook"], result["grace"]))
    expect(result["failed"] == 0, f"{result['failed']} requests failed: {result['failures'][:5]}")
    expect(result["failed_prestop_hooks"] > 0 and 143 in result["kubelet_hook_exits"],
           f"no FailedPreStopHook with exit 143 (events {result['failed_prestop_hooks']}, "
           f"exits {result['kubelet_hook_exits']}): the contrast shows nothing")
    # Issue 27 item 4: the observer calls them what they are.
    seen, n = result["observed"], len(result["terminations"])
    w = seen["workload"]
    expect(w["outcomes"].get("hook-failed", 0) >= 1,
           f"{n} old pods, FailedPreStopHook exits {result['kubelet_hook_exits']}, the observer says "
           f"{drain_outcomes(w)}: {[(d['pod'], d['outcome'], d['message']) for d in seen['decisions']]}")
    failed_pods = {e["pod"] for e in result["failed_prestop_hook_events"]}
    wrong = [(d["pod"], d["outcome"]) for d in seen["decisions"]
             if (d["outcome"] == "hook-failed") != (d["pod"] in failed_pods)]
    expect(not wrong and len(seen["decisions"]) == n,
           f"outcomes that disagree with the pods' FailedPreStopHook events ({sorted(failed_pods)}): {wrong}; "
           f"decided {len(seen['decisions'])} of {n}")
    expect("fix its preStop hook" in (w.get("suggestion") or ""), f"suggestion: {w.get('suggestion')}")
    expect(w["terminations"] == n, f"{n} old pods decided, but gracehook drains says {drain_outcomes(w)}; "
                                   f"Event writes the API refused: {seen['refused']}")


# -- issue 23: nginx, a server whose PID 1 exits by itself once drained -----
#
# `nginx -s quit` lets the requests in flight finish, then the master (the
# container's PID 1) exits without signalling the container first: the
# kernel SIGKILLs the hook still waiting in its PID namespace (137), and the
# kubelet records FailedPreStopHook for a drain that worked (docs/plan.md,
# "Servers that exit by themselves"). These runs measure both: the requests,
# and each old pod's termination facts in rollout-nginx*.json.
NGINX_DRAIN = "nginx -s quit"


def nginx_rolling_update(c, key, label, mode=None, annotations=None, observe=False):
    return rolling_update(c, key, label, mode, annotations, image=c.nginx, long_path="/slow", observe=observe)


@scenario
def rolling_update_nginx_with_gracehook(c):
    result = nginx_rolling_update(c, "nginx", "nginx with gracehook", "enforce",
                                  dict(SCALED, **{"gracehook.io/drain-command": NGINX_DRAIN}), observe=True)
    expect(result["hook"] == {"exec": {"command": gracehook_hook(2, NGINX_DRAIN, 6)}}, f"preStop {result['hook']}")
    expect(result["failed"] == 0, f"{result['failed']} requests failed: {result['failures'][:5]}")
    expect(result["requests"] == 1200, result["requests"])
    # What makes the FailedPreStopHook events false alarms: every old pod's
    # container ended by itself, exit 0, well inside its grace period.
    for name, facts in result["terminations"].items():
        for state in facts["containers"].values():
            expect(state and state["exitCode"] == 0 and state["afterDeletion"] is not None
                   and state["afterDeletion"] < facts["grace"],
                   f"{name}: {state}, grace {facts['grace']}s: not a clean exit within the grace period")
    c.say(f"rolling update nginx with gracehook, old pods: {describe_terminations(result['terminations'])}")
    # Issue 23's point: the FailedPreStopHook (137) of a hook cut short by
    # its container's own clean exit is no failure; the observer says clean.
    expect_all_clean(result)


@scenario
def rolling_update_nginx_without_gracehook(c):
    result = nginx_rolling_update(c, "nginx-plain", "nginx without gracehook")
    expect(result["hook"] is None and result["grace"] == 30, (result["hook"], result["grace"]))
    expect(result["failed"] > 0, "no request failed without gracehook: nginx's SIGTERM proves nothing")


# -- issue 22: through a mesh proxy ----------------------------------------
#
# The Service targets a stand-in for Istio's sidecar (programs/proxy.c, the
# `proxy` image) in a container named `istio-proxy`: it listens on 8080 and
# forwards each connection to Apache on 127.0.0.1:80. On SIGTERM it keeps
# accepting and forwarding for its drain (2 s here, as
# `terminationDrainDuration: 2s`), then exits 0 cutting whatever is open,
# as pilot-agent ends Envoy. gracehook is told the same drain through the
# pod's `proxy.istio.io/config`, Istio's own knob.
PROXY_DRAIN = 2
PROXY_PORT = 8080
PROXY_ANNOTATIONS = {"proxy.istio.io/config": f"terminationDrainDuration: {PROXY_DRAIN}s"}


def proxy_container(c, native=False):
    container = {"name": "istio-proxy", "image": c.proxy, "imagePullPolicy": "Never",
                 "args": [str(PROXY_PORT), "80", str(PROXY_DRAIN)],
                 "ports": [{"containerPort": PROXY_PORT, "name": "http-proxy"}],
                 # Ready once it forwards to a serving Apache.
                 "readinessProbe": {"httpGet": {"path": "/index.html", "port": PROXY_PORT}, "periodSeconds": 1,
                                    "failureThreshold": 1}}
    if native:
        container["restartPolicy"] = "Always"  # a native sidecar (an init container)
    return container


def proxy_rolling_update(c, key, label, mode=None, annotations=None, native=False):
    return rolling_update(c, key, label, mode, annotations, sidecar=proxy_container(c, native), native=native,
                          target_port=PROXY_PORT)


def sidecar_annotations(**extra):
    """The seed's scaled drain for Apache, and the proxy's drain for gracehook."""
    return dict(SCALED, **{"gracehook.io/drain-command": APACHE_DRAIN}, **PROXY_ANNOTATIONS, **extra)


def expect_no_kill(result):
    """Every container of every old pod exited by itself (not 137), before
    its pod's grace period ran out, and the old pods were gone before it."""
    for name, facts in result["terminations"].items():
        expect(facts["containers"] and all(facts["containers"].values()),
               f"{name}: containers not all seen terminated: {facts['containers']}")
        for container, state in facts["containers"].items():
            expect(state["exitCode"] != 137 and state["beforeDeadline"] is not None and state["beforeDeadline"] > 0,
                   f"{name}/{container}: {state}, grace {facts['grace']}s: SIGKILLed, or past its grace period")
    # Each old pod was deleted after the rollout started and gone `replaced` s after it.
    expect(result["replaced"] < min(f["grace"] for f in result["terminations"].values()),
           f"old pods gone after {result['replaced']:.1f}s, not within their grace period")


@scenario
def rolling_update_through_a_classic_sidecar_proxy_with_gracehook(c):
    """The proxy a regular container (Istio's injection without native
    sidecars): gracehook's sidecar-aware plan gives it a native preStop
    sleep of the application's need (drain delay + request timeout: 2 + 6),
    so it outlasts Apache's drain; no request may fail."""
    result = proxy_rolling_update(c, "proxy-classic", "through a classic sidecar proxy with gracehook", "enforce",
                                  sidecar_annotations())
    c.say(f"rolling update through a classic sidecar proxy with gracehook, old pods: "
          f"{describe_terminations(result['terminations'])}")
    expect(result["hook"] == {"exec": {"command": gracehook_hook(2, APACHE_DRAIN, 6)}}, f"preStop {result['hook']}")
    expect(result["sidecar_hook"] == {"sleep": {"seconds": 2 + 6}},
           f"istio-proxy's preStop {result['sidecar_hook']}, not sleep 8 (status {result['status']})")
    expect(result["failed"] == 0, f"{result['failed']} requests failed: {result['failures'][:5]}")
    expect(result["requests"] == 1200, result["requests"])
    expect_no_kill(result)


@scenario
def rolling_update_through_a_classic_sidecar_proxy_with_the_old_plan(c):
    """The contrast: the application-only plan (what gracehook did before,
    and does with `gracehook.io/inject.istio-proxy: "false"`): Apache
    drains, but the proxy gets SIGTERM at the deletion and exits 2 s later,
    cutting the slow requests (4 s) still in flight through it."""
    result = proxy_rolling_update(
        c, "proxy-old-plan", "through a classic sidecar proxy with the old plan (no hook on the proxy)", "enforce",
        sidecar_annotations(**{"gracehook.io/inject.istio-proxy": "false"}))
    c.say(f"rolling update through a classic sidecar proxy with the old plan, old pods: "
          f"{describe_terminations(result['terminations'])}")
    expect(result["hook"] == {"exec": {"command": gracehook_hook(2, APACHE_DRAIN, 6)}}, f"preStop {result['hook']}")
    expect(result["sidecar_hook"] is None, f"istio-proxy's preStop {result['sidecar_hook']} despite inject false")
    expect(result["failed"] > 0, "no request failed through a proxy that exits 2s after the deletion: "
                                 "the contrast proves nothing")


@scenario
def rolling_update_through_a_native_sidecar_proxy_with_gracehook(c):
    """The proxy a native sidecar (an init container with `restartPolicy:
    Always`): no hook (the kubelet stops it only after Apache has exited),
    a grace period that includes its drain; no request may fail, and no
    container is SIGKILLed."""
    result = proxy_rolling_update(c, "proxy-native", "through a native sidecar proxy with gracehook", "enforce",
                                  sidecar_annotations(), native=True)
    c.say(f"rolling update through a native sidecar proxy with gracehook, old pods: "
          f"{describe_terminations(result['terminations'])}")
    expect(result["sidecar_restart_policy"] == "Always" and result["sidecar_hook"] is None,
           f"istio-proxy: restartPolicy {result['sidecar_restart_policy']}, preStop {result['sidecar_hook']}")
    expect(result["hook"] == {"exec": {"command": gracehook_hook(2, APACHE_DRAIN, 6)}}, f"preStop {result['hook']}")
    expect(result["failed"] == 0, f"{result['failed']} requests failed: {result['failures'][:5]}")
    expect(result["requests"] == 1200, result["requests"])
    expect_no_kill(result)


@scenario
def rolling_update_through_a_native_sidecar_proxy_without_gracehook(c):
    """The same pods without gracehook (no preStop, grace 30): Apache gets
    SIGTERM at the deletion and stops at once. Reported, not asserted."""
    result = proxy_rolling_update(c, "proxy-native-plain", "through a native sidecar proxy without gracehook",
                                  annotations=dict(PROXY_ANNOTATIONS), native=True)
    c.say(f"rolling update through a native sidecar proxy without gracehook, old pods: "
          f"{describe_terminations(result['terminations'])}")
    expect(result["hook"] is None and result["sidecar_hook"] is None, (result["hook"], result["sidecar_hook"]))
    expect(result["requests"] == 1200, result["requests"])



# -- issue 21: the observer on real terminations -----------------------------
#
# The rollouts above check that it calls clean drains clean (issue 23's nginx
# included) and the seed's hand-written hook hook-failed. Below: a real kill
# at grace expiry and its suggestion, and a hand-over of the Lease while a
# workload rolls.

def slow_request(host, path):
    """One request to `host` (a pod's IP) in a thread: (thread, result)."""
    result = {}

    def run():
        result["started"] = time.time()
        try:
            status, body = http_get(host, path, timeout=60)
            result.update(status=status, complete=status == 200 and body.endswith("end\n"), bytes=len(body))
        except Exception as e:  # noqa: BLE001 - a cut request is an outcome
            result.update(complete=False, error=f"{type(e).__name__}: {e}")
        result["seconds"] = round(time.time() - result["started"], 2)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def roll_one(c, ns, change, slow_path=None):
    """Replaces the one pod of deploy/web in `ns` by running `change`, with
    a request to `slow_path` on the old pod in flight at its deletion (if
    given). Returns (the old pod, the request's result, its termination
    facts)."""
    [old] = pods_of(c, ns, "web")
    name = old["metadata"]["name"]
    followers = follow_pods(c, ns, "web", {name})
    thread, request = slow_request(old["status"]["podIP"], slow_path) if slow_path else (None, {})
    time.sleep(1)  # connected, and some of the response sent
    change()
    wait_for(f"{name} gone", lambda: name not in {p["metadata"]["name"] for p in pods_of(c, ns, "web")},
             timeout=90, interval=0.5)
    if thread:
        thread.join(70)
    facts = terminations(c, ns, followers, {name})[name]
    if request and facts["deleted"]:
        request["inFlightAtDeletion"] = round(facts["deleted"] - request["started"], 2)
    return old, request, facts


def kill_after(facts):
    """Seconds from the deletion to the container's exit as the observer
    reads them: the API's seconds (deletionTimestamp - grace, finishedAt)."""
    [state] = facts["containers"].values()
    return int(timestamp(state["finishedAt"]) - (timestamp(facts["deletionTimestamp"]) - facts["grace"]))


@scenario
def observer_sees_a_kill_and_its_suggestion_drains_cleanly(c):
    """A request longer than request-timeout + margin, in flight at the
    deletion, on nginx that keeps draining through the kubelet's stop signal
    (the `nginx-quit` image: STOPSIGNAL SIGQUIT) behind gracehook's drain
    hook (`nginx -s quit`): the grace period's SIGKILL ends it (exit 137) —
    `killed`, a DrainKilled Event on the Deployment, the counter, and the
    suggestion. Then the suggestion applied (the template's request timeout;
    that change rolls the pod once, idle) and the same request in flight
    through a rollout: `clean`, and the request completes."""
    ns = c.namespace("drain-killed", "enforce")
    annotations = dict(SCALED, **{"gracehook.io/drain-command": NGINX_DRAIN})
    # grace 10 = 2 + 6 + 2: the API server's default 30 would outlast the request.
    c.apply(deployment("web", c.nginx_quit, 1, annotations, grace=10), "-n", ns)
    wait_ready(c, ns, "web")
    restart = lambda: c.kubectl("-n", ns, "rollout", "restart", "deploy/web")  # noqa: E731
    started = time.time()
    old, request, facts = roll_one(c, ns, restart, "/slow16")
    log(f"  killed run: {old['metadata']['name']}: request {request}; facts {json.dumps(facts)}")
    expect(prestop_of(old) == {"exec": {"command": gracehook_hook(2, NGINX_DRAIN, 6)}}
           and old["spec"]["terminationGracePeriodSeconds"] == 10, (prestop_of(old), old["spec"]))
    expect(request.get("inFlightAtDeletion", -1) > 0, f"the slow request was not in flight at the deletion: {request}")
    expect(not request["complete"], f"the slow request completed: nothing was cut ({request})")
    [state] = facts["containers"].values()
    expect(state and state["exitCode"] == 137, f"not killed: {state}")
    k = kill_after(facts)
    expected = max(2 * (k - 2) - 2, 6 + 1)
    seen = observed(c, ns, 1, "nginx-quit outlasting its request timeout")
    w = seen["workload"]
    decided = {d["pod"]: d["outcome"] for d in seen["decisions"]}
    expect(w["outcomes"].get("killed") == 1 and w["terminations"] == 1 and decided == {old["metadata"]["name"]: "killed"},
           f"the observer says {drain_outcomes(w)}, {seen['decisions']}; the pod's facts {json.dumps(facts)}")
    expect(seen["metric"] == {"killed": 1}, f"the leader's gracehook_terminations_total: {seen['metric']}")
    m = SUGGESTION.search(w.get("suggestion") or "")
    expect(m and int(m.group(1)) == expected,
           f"suggestion {w.get('suggestion')!r}, expected {expected}s (killed {k}s after deletion, delay 2, margin 2)")
    suggested = int(m.group(1))
    describe = c.kubectl("-n", ns, "describe", "deploy", "web").stdout
    events = [e for e in c.events(ns, "DrainKilled") if e.get("reportingComponent") == "gracehook.io/observe"]
    record = json.loads(events[0]["metadata"]["annotations"]["gracehook.io/drains"]) if events else {}
    expect("DrainKilled" in describe, f"kubectl describe deploy/web shows no DrainKilled:\n{describe[-1500:]}")
    expect(events and events[0]["involvedObject"]["kind"] == "Deployment" and record.get("outcome") == "killed"
           and record.get("suggestedRequestTimeoutSeconds") == suggested, f"DrainKilled Events: {events}")
    note = [line.strip() for line in describe.splitlines() if "DrainKilled" in line]
    log(f"  kubectl describe deploy/web: {note}")

    # The suggestion, applied as a user would: the template's annotation.
    # That change is itself a rollout (of the idle pod, drained clean).
    patch = {"spec": {"template": {"metadata": {"annotations": {"gracehook.io/request-timeout": f"{suggested}s"}}}}}
    idle, _, _ = roll_one(c, ns, lambda: c.kubectl("-n", ns, "patch", "deploy", "web", "--type=merge",
                                                   "-p", json.dumps(patch)))
    wait_ready(c, ns, "web")
    again, request2, facts2 = roll_one(c, ns, restart, "/slow16")
    log(f"  after the suggestion: {again['metadata']['name']}: request {request2}; facts {json.dumps(facts2)}")
    grace = 2 + suggested + 2
    expect(prestop_of(again) == {"exec": {"command": gracehook_hook(2, NGINX_DRAIN, suggested)}}
           and again["spec"]["terminationGracePeriodSeconds"] == grace, (prestop_of(again), again["spec"]))
    expect(request2.get("inFlightAtDeletion", -1) > 0, f"the slow request was not in flight: {request2}")
    expect(request2["complete"], f"the slow request was cut with request-timeout {suggested}s: {request2}")
    w2 = workload(wait_drains(c, ns, 3))
    leader, text = leader_log(c, ns, 3)
    decided = {d["pod"]: d for d in decisions(text, ns)}
    metric = observer_counts(c, leader, ns)
    [state2] = facts2["containers"].values()
    c.say(f"suggestion after the kill: {w['suggestion']} (killed {k}s after deletion; expected "
          f"max(2*({k}-2)-2, 7) = {expected}); applied: the next rollout's pod "
          f"{decided.get(again['metadata']['name'], {}).get('outcome', 'not counted')}, exit {state2['exitCode']} "
          f"at {state2['afterDeletion']:.0f}s of {grace}s, its {request2['seconds']:.1f}s request "
          f"{'complete' if request2['complete'] else 'cut'}; drain outcomes: {drain_outcomes(w2)} "
          f"(the patch's own rollout of the idle pod included); {time.time() - started:.0f}s")
    for d in decided.values():
        log(f"  observer: {d['pod']} {d['outcome']}: {d['message']}")
    expect(decided.get(again["metadata"]["name"], {}).get("outcome") == "clean",
           f"{again['metadata']['name']}: {decided.get(again['metadata']['name'])}; facts {json.dumps(facts2)}")
    expect(decided.get(idle["metadata"]["name"], {}).get("outcome") == "clean", decided.get(idle["metadata"]["name"]))
    expect(metric == {"killed": 1, "clean": 2}, f"the leader's gracehook_terminations_total: {metric}")
    expect(w2["outcomes"].get("killed") == 1 and w2["outcomes"].get("clean") == 2 and w2["terminations"] == 3,
           f"killed 1 and clean 2 decided, but gracehook drains says {drain_outcomes(w2)}; Event writes the API "
           f"refused: {refused(observer_log(c, leader), ns)}")
    c.kubectl("delete", "namespace", ns, "--wait=false")


class Stamped:
    """A kubectl that streams lines (a watch, `logs -f`), each kept with the
    time it arrived."""

    def __init__(self, c, *args):
        self.lines = []
        self.process = subprocess.Popen([f"{c.node.bin}/kubectl", *args], env=c.node.env, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        for line in self.process.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(10)
        self.thread.join(5)
        return self.lines


def log_time(line):
    """The timestamp of an observer's JSON log line, as epoch seconds."""
    try:
        return timestamp(json.loads(line[line.find("{"):])["timestamp"])
    except (ValueError, KeyError):
        return None


@scenario
def observer_hand_over_counts_each_termination_once(c):
    """While a 3-replica Deployment with gracehook's drain hook rolls, the
    observer's own Deployment rolls too (`kubectl rollout restart`: each
    leader stops gracefully, decides what is pending, releases the Lease,
    and a standby takes it). No termination may be counted twice: each pod
    in one observer's log at most once, and the Events' series add up to
    the pods logged. Reported: how many old pods were counted, and which
    were gone while no observer was watching (the hand-over window: from a
    leader's stop to its successor's first list)."""
    ns = c.namespace("handover", "enforce")
    c.apply(deployment("web", c.web, 3, dict(SCALED, **{"gracehook.io/drain-command": APACHE_DRAIN})), "-n", ns)
    wait_ready(c, ns, "web")
    old = {p["metadata"]["name"] for p in pods_of(c, ns, "web")}
    before = {p["metadata"]["name"] for p in c.get("pods", "-n", "gracehook-system", "-l", OBSERVER)["items"]}
    leader_before = observer_leader(c)
    # A deleted pod's log goes with it: follow the observers before they go.
    followed = {name: Stamped(c, "logs", "-f", "-n", "gracehook-system", name) for name in sorted(before)}
    lease = Stamped(c, "get", "lease", "-n", "gracehook-system", "gracehook-observe", "-w",
                    "-o", "jsonpath={.spec.holderIdentity}{\"\\n\"}")
    watch = Stamped(c, "get", "pods", "-n", ns, "-l", "app=web", "-w", "--output-watch-events",
                    "-o", "jsonpath={.type} {.object.metadata.name}{\"\\n\"}")
    time.sleep(1)
    started = time.time()
    # The observer's first new replica is Ready after about 5 s, and then
    # the first old one stops; the workload's old pods go from about 5 s
    # after its restart: started 2 s apart, they overlap.
    c.kubectl("-n", "gracehook-system", "rollout", "restart", "deploy/gracehook-observe")
    time.sleep(2)
    c.kubectl("-n", ns, "rollout", "restart", "deploy/web")
    c.kubectl("-n", ns, "rollout", "status", "deploy/web", "--timeout=120s", timeout=140)
    c.kubectl("-n", "gracehook-system", "rollout", "status", "deploy/gracehook-observe", "--timeout=120s",
              timeout=140)
    wait_for("the old pods and the old observers gone", lambda: not (
        old & {p["metadata"]["name"] for p in pods_of(c, ns, "web")}
        or before & {p["metadata"]["name"] for p in c.get("pods", "-n", "gracehook-system", "-l", OBSERVER)["items"]}
    ), timeout=120, interval=0.5)
    report = wait_drains(c, ns, len(old), timeout=30)
    after = {p["metadata"]["name"] for p in c.get("pods", "-n", "gracehook-system", "-l", OBSERVER)["items"]}
    logs = {name: "\n".join(line for _, line in f.stop()) for name, f in followed.items()}
    for name in sorted(after):
        logs[name] = observer_log(c, name)
    holders = [(round(at - started, 2), who) for at, who in lease.stop()]
    gone = {}
    for at, line in watch.stop():
        kind, _, name = line.partition(" ")
        if kind == "DELETED" and name in old:
            gone[name] = at
    expect(set(gone) == old, f"the watch saw {sorted(gone)} of the old pods {sorted(old)} go")
    leader_after = observer_leader(c)
    events = [e for e in c.events(ns) if e.get("reportingComponent") == "gracehook.io/observe"]
    in_events = sum(json.loads(e["metadata"]["annotations"]["gracehook.io/drains"])["pods"] for e in events)
    w = workload(report)
    # Who decided what, and the hand-over windows, from the observers' logs.
    decided, problems = [], []
    stops, lists = [], []
    for name, text in logs.items():
        for d in decisions(text, ns):
            decided.append((name, d["pod"], d["outcome"]))
        problems += refused(text, ns)
        leading = False
        for line in text.splitlines():
            if "holding the Lease: observing terminations" in line or "observing again" in line:
                leading = True
            if "shutting down: deciding what is pending" in line and leading:  # a leader's stop
                stops.append((log_time(line), name))
            if "pods listed; following the terminations" in line:
                lists.append((log_time(line), name))
    windows = []
    for stop, name in sorted(s for s in stops if s[0]):
        following = [t for t, n in sorted(lists) if t and t > stop and n != name]
        windows.append((name, stop, following[0] if following else None))
    in_window = sorted(p for p, at in gone.items() for _, a, b in windows if a <= at and (b is None or at <= b))
    pods = [p for _, p, _ in decided]
    twice = sorted({p for p in pods if pods.count(p) > 1})
    counted = set(pods)
    with open(os.path.join(c.node.dir, "handover.json"), "w") as f:
        json.dump({"old": sorted(old), "gone": {p: round(t - started, 2) for p, t in gone.items()},
                   "holders": holders, "windows": [(n, round(a - started, 2), b and round(b - started, 2))
                                                   for n, a, b in windows],
                   "decided": decided, "events": in_events, "drains": w, "logs": logs}, f, indent=1)
    c.say(f"observer hand-over during a rollout: {len(counted)} of {len(old)} old pods counted "
          f"({', '.join(f'{p} by {n}: {o}' for n, p, o in sorted(decided, key=lambda d: gone.get(d[1], 0)))}); "
          f"counted twice: {len(twice)}; Events' series add up to {in_events}, gracehook drains {w['terminations']}; "
          f"Lease {leader_before} -> {leader_after}, holders "
          f"{' -> '.join(f'{who or chr(34) * 2}@{at:.1f}s' for at, who in holders)}; "
          f"hand-over windows {', '.join(f'{a - started:.1f}-{b - started:.1f}s' if b else f'{a - started:.1f}s-?' for _, a, b in windows)}; "
          f"old pods gone at {', '.join(f'{t - started:.1f}s' for t in sorted(gone.values()))}; "
          f"gone inside a window: {len(in_window)}{' (' + ', '.join(in_window) + ')' if in_window else ''}")
    expect(not twice, f"counted twice: {twice} ({decided})")
    expect(counted <= old, f"decided pods that were not the old ones: {counted - old}")
    expect(all(o == "clean" for _, _, o in decided), f"not all clean: {decided}")
    expect(windows and leader_after in after, f"no hand-over seen: windows {windows}, Lease {leader_after}")
    # Every pod gone outside a hand-over window is counted.
    missed = sorted(old - counted - set(in_window))
    expect(not missed, f"not counted, though gone while an observer watched: {missed} (gone at "
                       f"{[round(gone.get(p, 0) - started, 2) for p in missed]}, windows {windows})")
    expect(in_events == len(counted) == w["terminations"],
           f"the Events add up to {in_events}, gracehook drains says {w['terminations']}, the logs {len(counted)}; "
           f"Event writes the API refused: {problems}")
    c.kubectl("delete", "namespace", ns, "--wait=false")
