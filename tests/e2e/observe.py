"""e2e scenarios for `gracehook observe` (docs/observe.md) on the real
kube-apiserver: two observers elect a leader on a Lease, and terminations are
played the way the kubelet writes them, without a kubelet: a pod bound to a
node that does not exist is deleted (the API server grants its grace period
and keeps it), its container statuses are written as terminated through the
status subresource, the kubelet's FailedPreStopHook Event is created where
a scenario wants one, and the pod is then deleted with grace 0, as the
kubelet does once its containers are gone. The node suite does the same with
a real kubelet.

The observers run with the ServiceAccount and RBAC of manifests/observe, so
the scenarios also prove that its permissions are enough. Imported by `run`.
"""

import calendar
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request

import ops
from cluster import REPO, drain_hook, free_port, log
from harness import expect, scenario, wait_for

LEASE_NS = "gracehook-system"
STATUS = json.dumps({"grace": 10, "containers": {"web": "exec"}}, separators=(",", ":"))
HOOK = {"exec": {"command": drain_hook(2, "nginx -s quit", 6)}}
LEASE_SECONDS = 4
_state = {"observers": {}}


# -- the observers -------------------------------------------------------------

def service_account_kubeconfig(c):
    """A kubeconfig for the observer's ServiceAccount, with the RBAC objects of
    manifests/observe applied (rendered through a kustomization that adds the
    component to the base, as a user's overlay does)."""
    if "kubeconfig" in _state:
        return _state["kubeconfig"]
    work = tempfile.mkdtemp(dir=c.dir, prefix="observe-")
    with open(os.path.join(work, "kustomization.yaml"), "w") as f:
        # kustomize takes relative paths only.
        base, component = (os.path.relpath(os.path.join(REPO, "manifests", d), work) for d in ("base", "observe"))
        f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                f"resources:\n- {base}\ncomponents:\n- {component}\n")
    items = c.to_objects(c.kubectl("kustomize", work).stdout)
    rbac = [o for o in items if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                                               "RoleBinding") and "observe" in o["metadata"]["name"]]
    expect(len(rbac) >= 5, f"manifests/observe has no complete RBAC: {[o['metadata']['name'] for o in rbac]}")
    c.kubectl("create", "namespace", LEASE_NS, check=False)
    c.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac}))
    account = next(o for o in rbac if o["kind"] == "ServiceAccount")
    token = c.kubectl("create", "token", "-n", account["metadata"]["namespace"], account["metadata"]["name"],
                      "--duration=2h").stdout.strip()
    config = json.load(open(c.env["KUBECONFIG"]))
    config["users"] = [{"name": "e2e", "user": {"token": token}}]
    path = os.path.join(work, "kubeconfig")
    with open(path, "w") as f:
        json.dump(config, f)
    _state["kubeconfig"] = path
    return path


def start_observer(c, name):
    port = free_port()
    env = dict(c.env, KUBECONFIG=service_account_kubeconfig(c))
    c.spawn(name, [c.gracehook, "observe", "--metrics-listen", f"127.0.0.1:{port}",
                   "--lease-namespace", LEASE_NS, "--identity", name,
                   "--lease-duration", f"{LEASE_SECONDS}s", "--settle", "2s", "--log-format", "json"], env=env)
    wait_for(f"{name} /readyz", lambda: urllib.request.urlopen(
        f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200, timeout=30)
    _state["observers"][name] = port
    return port


def scrape(port):
    """{(metric, frozenset(labels)): value} of an observer, {} if it is gone."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    samples = {}
    for line in text.splitlines():
        m = re.match(r"^(gracehook_\w+)(?:\{(.*)\})? (\S+)$", line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def terminations(port, **wanted):
    """gracehook_terminations_total summed over the series matching `wanted`."""
    total = 0.0
    for (metric, labels), value in scrape(port).items():
        if metric == "gracehook_terminations_total" and all((k, v) in labels for k, v in wanted.items()):
            total += value
    return total


def leader(c):
    """The observer whose gauge says it leads, once exactly one does."""
    leaders = [name for name, port in _state["observers"].items()
               if name in c.procs and scrape(port).get(("gracehook_observer_leader", frozenset())) == 1.0]
    return leaders[0] if len(leaders) == 1 else None


def observers(c):
    """Two observers, a and b, and the name of the leader."""
    for name in ("observe-a", "observe-b"):
        if name not in c.procs:
            start_observer(c, name)
    return wait_for("one observer to hold the Lease", lambda: leader(c), timeout=30, interval=0.3)


# -- terminations, as the kubelet writes them ---------------------------------

def rfc3339(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def workload(c, ns, name):
    """A Deployment and a ReplicaSet it controls (no controller-manager runs
    here: both are only objects): the RS's uid, for pods' ownerReferences."""
    c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}))
    dep = json.loads(c.kubectl("get", "deployment", "-n", ns, name, "-o", "json").stdout)
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": f"{name}-7d9", "ownerReferences": [{
              "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": dep["metadata"]["uid"],
              "controller": True}]},
          "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                   "template": {"metadata": {"labels": {"app": name}},
                                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
    c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(rs))
    got = json.loads(c.kubectl("get", "replicaset", "-n", ns, rs["metadata"]["name"], "-o", "json").stdout)
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": got["metadata"]["name"],
            "uid": got["metadata"]["uid"], "controller": True}


def running_pod(c, ns, name, owner=None, status=STATUS, hook=HOOK):
    """A patched pod, bound to a node that does not exist, reported Running."""
    meta = {"name": name, "annotations": {"gracehook.io/status": status}, "labels": {"app": "web"}}
    if owner:
        meta["ownerReferences"] = [owner]
    container = {"name": "web", "image": "nginx", "lifecycle": {"preStop": hook}}
    c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": "ghost", "terminationGracePeriodSeconds": 10, "containers": [container]}}))
    started = rfc3339(time.time() - 60)
    status_patch = {"status": {"phase": "Running", "containerStatuses": [{
        "name": "web", "image": "nginx", "imageID": "", "ready": True, "restartCount": 0,
        "state": {"running": {"startedAt": started}}}]}}
    c.kubectl("patch", "pod", "-n", ns, name, "--subresource=status", "--type=merge", "-p", json.dumps(status_patch))


def begin_deletion(c, ns, name):
    """`kubectl delete` with the pod's grace period: returns (uid, deletion time)."""
    c.kubectl("delete", "pod", "-n", ns, name, "--wait=false")
    p = json.loads(c.kubectl("get", "pod", "-n", ns, name, "-o", "json").stdout)
    meta = p["metadata"]
    expect(meta.get("deletionGracePeriodSeconds") == 10, meta)
    expiry = calendar.timegm(time.strptime(meta["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    return meta["uid"], expiry - 10


def exited(c, ns, name, deleted_at, exit_code, after, phase=None):
    """What the kubelet writes once the container is gone (and, since
    Kubernetes 1.27, the terminal phase of a deleted pod)."""
    terminated = {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed",
                  "startedAt": rfc3339(deleted_at - 60), "finishedAt": rfc3339(deleted_at + after)}
    status = {"containerStatuses": [{"name": "web", "image": "nginx", "imageID": "", "ready": False,
                                     "restartCount": 0, "state": {"terminated": terminated}}]}
    if phase:
        status["phase"] = phase
    c.kubectl("patch", "pod", "-n", ns, name, "--subresource=status", "--type=merge", "-p",
              json.dumps({"status": status}))


def final_delete(c, ns, name):
    """The kubelet's last word: the delete with grace 0."""
    c.kubectl("delete", "pod", "-n", ns, name, "--grace-period=0", "--force", "--wait=false")


def finish(c, ns, name, uid, deleted_at, exit_code, after, hook_failed_after=None):
    """What the kubelet writes once the container is gone, then the final delete."""
    if hook_failed_after is not None:
        at = rfc3339(deleted_at + hook_failed_after)
        c.kubectl("create", "-n", ns, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{name}.prestop", "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name, "uid": uid,
                               "fieldPath": "spec.containers{web}"},
            "reason": "FailedPreStopHook", "message": "PreStopHook failed", "type": "Warning",
            "firstTimestamp": at, "lastTimestamp": at, "count": 1,
            "source": {"component": "kubelet", "host": "ghost"}}))
    exited(c, ns, name, deleted_at, exit_code, after)
    final_delete(c, ns, name)


def terminate(c, ns, name, exit_code, after, hook_failed_after=None):
    uid, deleted_at = begin_deletion(c, ns, name)
    finish(c, ns, name, uid, deleted_at, exit_code, after, hook_failed_after)


def observer_events(c, ns):
    out = json.loads(c.kubectl("get", "events", "-n", ns, "-o", "json",
                               "--field-selector", "reportingComponent=gracehook.io/observe").stdout)
    return out["items"]


def drains_report(c, ns):
    result = subprocess.run([c.gracehook, "drains", "-n", ns, "-o", "json"], env=c.env,
                            capture_output=True, text=True, timeout=60)
    expect(result.returncode == 0, result.stderr)
    return {w["name"]: w for w in json.loads(result.stdout)["workloads"]}


# -- scenarios ----------------------------------------------------------------

@scenario
def observer_decides_each_outcome_and_tells_the_workload(c):
    lead = observers(c)
    port = _state["observers"][lead]
    ns = c.namespace("drains")
    owner = workload(c, ns, "web")
    # pod: (exit code, seconds after the deletion, FailedPreStopHook after, outcome)
    cases = {
        "web-clean": (0, 4, None, "clean"),
        "web-nginx": (0, 4, 4, "clean"),        # hook cut short by PID 1's own clean exit
        "web-killed": (137, 10, None, "killed"),
        "web-hook": (0, 4, 1, "hook-failed"),   # the hook failed while the container served
        "web-early": (1, 0, None, "exited-early"),
    }
    for name in [*cases, "web-forced"]:
        running_pod(c, ns, name, owner)
    running_pod(c, ns, "bad-status", owner, status="{oops")
    skipped_before = sum(v for (m, _), v in scrape(port).items() if m == "gracehook_observer_skipped_total")
    for name, (code, after, hook, _) in cases.items():
        terminate(c, ns, name, code, after, hook)
    c.kubectl("delete", "pod", "-n", ns, "web-forced", "--grace-period=0", "--force", "--wait=false")
    terminate(c, ns, "bad-status", 0, 4)
    wanted = {}
    for _, _, _, outcome in cases.values():
        wanted[outcome] = wanted.get(outcome, 0) + 1
    wanted["force-deleted"] = 1

    def counted():
        got = {o: terminations(port, namespace=ns, owner_kind="Deployment", owner="web", outcome=o)
               for o in wanted}
        return got if got == wanted else None
    try:
        wait_for("the leader's counts of every outcome", counted, timeout=30, interval=0.5)
    except AssertionError:
        raise AssertionError(f"counted {[(o, terminations(port, namespace=ns, outcome=o)) for o in wanted]}, "
                             f"wanted {wanted}:\n{c.tail(lead, 15)}")
    skipped = sum(v for (m, _), v in scrape(port).items() if m == "gracehook_observer_skipped_total")
    expect(skipped == skipped_before + 1, f"the malformed status was not counted as skipped ({skipped})")
    c.check_running()
    log(f"{lead} counted {wanted} for deployment/web, skipped 1 malformed pod")

    # Events on the Deployment, one series per outcome.
    def recorded():
        events = {e["reason"]: e for e in observer_events(c, ns)}
        return events if {"DrainClean", "DrainKilled", "DrainHookFailed", "DrainExitedEarly"} <= set(events) \
            else None
    events = wait_for("the Events on the Deployment", recorded, timeout=20, interval=0.5)
    killed = events["DrainKilled"]
    expect(killed["type"] == "Warning" and killed["involvedObject"]["kind"] == "Deployment"
           and killed["involvedObject"]["name"] == "web", killed)
    expect("pod web-killed was killed 10s after deletion: container web still draining; "
           "its request timeout is 6s" in killed["message"], killed["message"])
    clean = events["DrainClean"]
    expect(clean["type"] == "Normal" and (clean.get("series", {}).get("count") or clean.get("count")) == 2, clean)
    described = c.kubectl("describe", "deployment", "-n", ns, "web").stdout
    expect("DrainKilled" in described and "pod web-killed was killed 10s after deletion" in described, described)

    # gracehook drains reads it back with read access to Events only.
    report = drains_report(c, ns)
    web = report["web"]
    expect(web["terminations"] == sum(wanted.values()) and web["outcomes"]["killed"] == 1, web)
    expect(web["suggestion"].startswith("raise gracehook.io/request-timeout to at least 14s"), web)
    expect((web["longestDrainSeconds"], web["graceSeconds"]) == (10, 10), web)
    log(f"gracehook drains: {web['terminations']} terminations of deployment/web; {web['suggestion']}")
    # Every series the observer's alerts select exists on the observer.
    used = ops.selectors("gracehook_", jobs=("gracehook-observe",))
    expect(len({m for m, _ in used}) >= 2, used)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    missing = [f"{m}{ {k: v for k, _, v in ls} }" for m, ls in used
               if not any(name == m and ops.matches(labels, ls) for name, labels in ops.samples(text))]
    expect(not missing, f"not on the observer's /metrics: {missing}")
    c.kubectl("delete", "namespace", ns, "--wait=false")


@scenario
def observer_hands_over_when_the_leader_dies_and_counts_each_pod_once(c):
    lead = observers(c)
    ns = c.namespace("handover")
    owner = workload(c, ns, "web")
    names = [f"web-{i}" for i in range(6)]
    for name in names:
        running_pod(c, ns, name, owner)
    # Two end under the first leader; four are still terminating when it dies.
    deleting = {name: begin_deletion(c, ns, name) for name in names}
    for name in names[:2]:
        finish(c, ns, name, *deleting[name], 0, 4)
    wait_for(f"{lead} to count the first two", lambda: terminations(
        _state["observers"][lead], namespace=ns, outcome="clean") == 2, timeout=20, interval=0.3)
    died = time.time()
    c.stop(lead, sig=9)  # no release: the Lease must expire
    del _state["observers"][lead]
    # One drains to its end while no one leads: the successor's list shows
    # it exited, and Succeeded (the kubelet's terminal phase), but it is a
    # drain like the others, not a finished Job's pod.
    late = names[2]
    exited(c, ns, late, deleting[late][1], 0, 4, phase="Succeeded")
    other = wait_for("the other observer to take the Lease", lambda: leader(c), timeout=LEASE_SECONDS * 4,
                     interval=0.2)
    handover = time.time() - died
    port = _state["observers"][other]
    wait_for(f"{other} to list the pods", lambda: "pods listed" in open(os.path.join(c.dir, f"{other}.log")).read(),
             timeout=20)
    final_delete(c, ns, late)
    for name in names[3:]:
        finish(c, ns, name, *deleting[name], 0, 4)
    wait_for(f"{other} to count the four", lambda: terminations(port, namespace=ns, outcome="clean") == 4,
             timeout=20, interval=0.3)
    time.sleep(3)
    expect(terminations(port, namespace=ns) == 4, f"{other} counted {terminations(port, namespace=ns)}, not 4")
    # Across both, in the Events: each pod once.
    report = wait_for("drains to show all six", lambda: (drains_report(c, ns).get("web") or {}).get(
        "terminations") == 6 and drains_report(c, ns)["web"], timeout=20, interval=0.5)
    expect(report["outcomes"]["clean"] == 6, report)
    expect(handover <= LEASE_SECONDS + 3, f"the hand-over took {handover:.1f}s, lease {LEASE_SECONDS}s")
    log(f"leader {lead} killed; {other} took over in {handover:.1f}s (lease {LEASE_SECONDS}s); "
        f"2 + 4 terminations, each counted once (one of them exited and Succeeded before {other} listed it)")
    # A graceful stop releases the Lease at once.
    start_observer(c, lead)
    stopped = time.time()
    c.stop(other)
    del _state["observers"][other]
    wait_for("the restarted observer to take the released Lease", lambda: leader(c) == lead, timeout=10,
             interval=0.1)
    released = time.time() - stopped
    expect(released < LEASE_SECONDS, f"after a graceful stop the hand-over took {released:.1f}s")
    log(f"graceful stop of {other}: {lead} held the Lease {released:.1f}s later")
    c.kubectl("delete", "namespace", ns, "--wait=false")


def counted(ns, **wanted):
    """gracehook_terminations_total over every observer still running."""
    return sum(terminations(port, namespace=ns, **wanted) for port in _state["observers"].values())


@scenario
def observer_watch_survives_an_api_server_restart_without_double_counting(c):
    lead = observers(c)
    # One observer: the Lease stays where it is across the outage, so what
    # is proven is the watch's restart, not a hand-over.
    for name in [n for n in _state["observers"] if n != lead]:
        c.stop(name)
        del _state["observers"][name]
    ns = c.namespace("restart")
    owner = workload(c, ns, "web")
    for name in ("before", "gap", "after"):
        running_pod(c, ns, name, owner)
    terminate(c, ns, "before", 137, 10)
    wait_for("the first kill counted", lambda: counted(ns, outcome="killed") == 1, timeout=20, interval=0.3)
    gap, after = begin_deletion(c, ns, "gap"), begin_deletion(c, ns, "after")
    log_path = os.path.join(c.dir, f"{lead}.log")
    listed_before = open(log_path).read().count("pods listed")
    c.restart_apiserver()
    # Ends while the observer's watch is still down (it backs off): gone
    # before any relist shows it.
    finish(c, ns, "gap", *gap, 0, 4)
    wait_for(f"{lead} to list the pods again", lambda: open(log_path).read().count("pods listed") > listed_before,
             timeout=60, interval=0.3)
    finish(c, ns, "after", *after, 0, 4)
    wait_for("the three terminations counted", lambda: counted(ns) == 3, timeout=30, interval=0.5)
    time.sleep(3)
    outcomes = {o: counted(ns, outcome=o) for o in ("killed", "clean", "unknown")}
    expect(counted(ns) == 3 and outcomes["killed"] == 1, f"counted {outcomes}, not each pod once")
    expect(leader(c) == lead, "the Lease moved")
    gap_outcome = "unknown" if outcomes["unknown"] else "clean"
    log(f"kube-apiserver restarted: {lead} listed again; the kill before it counted once, the pod that ended "
        f"while the watch was down once ({gap_outcome}), the drain after it once (clean)")
    c.kubectl("delete", "namespace", ns, "--wait=false")


def bulk_terminations(c, ns, owner, count, after=3):
    """`count` patched pods created, deleted, reported exited 0 `after` s
    after their deletion and removed, as `terminate` does, over one
    keep-alive connection (a rollout's worth of kubectl calls would take
    minutes)."""
    conn, headers = c.api()
    merge = dict(headers, **{"Content-Type": "application/merge-patch+json"})

    def call(method, path, body, hdrs=headers):
        conn.request(method, path, body=json.dumps(body), headers=hdrs)
        response = conn.getresponse()
        data = response.read()
        expect(response.status < 300, f"{method} {path}: {response.status} {data[:200]!r}")
        return json.loads(data)
    base = f"/api/v1/namespaces/{ns}/pods"
    for i in range(count):
        name = f"web-bulk-{i:04d}"
        call("POST", base, {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "ownerReferences": [owner], "annotations": {"gracehook.io/status": STATUS}},
            "spec": {"nodeName": "ghost", "terminationGracePeriodSeconds": 10, "containers": [
                {"name": "web", "image": "nginx", "lifecycle": {"preStop": HOOK}}]}})
        deleted = call("DELETE", f"{base}/{name}", {})
        expiry = calendar.timegm(time.strptime(deleted["metadata"]["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))
        call("PATCH", f"{base}/{name}/status", {"status": {"containerStatuses": [{
            "name": "web", "image": "nginx", "imageID": "", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": rfc3339(expiry - 70),
                                     "finishedAt": rfc3339(expiry - 10 + after)}}}]}}, merge)
        call("DELETE", f"{base}/{name}", {"gracePeriodSeconds": 0})
    conn.close()


@scenario
def observer_writes_one_event_series_for_a_500_pod_rollout(c):
    lead = observers(c)
    ns = c.namespace("storm")
    owner = workload(c, ns, "web")
    started = time.time()
    bulk_terminations(c, ns, owner, 500)
    played = time.time() - started
    report = wait_for("drains to show the 500", lambda: (drains_report(c, ns).get("web") or {}).get(
        "terminations") == 500 and drains_report(c, ns)["web"], timeout=60, interval=1)
    expect(report["outcomes"]["clean"] == 500, report)
    events = observer_events(c, ns)
    expect(len(events) == 1 and events[0]["reason"] == "DrainClean", [(e["reason"], e.get("count")) for e in events])
    count = (events[0].get("series") or {}).get("count") or events[0].get("count")
    expect(count == 500, events[0])
    log(f"500 terminations in {played:.0f}s: one DrainClean Event on deployment/web, count {count}; "
        f"{lead} counted {terminations(_state['observers'][lead], namespace=ns)}")
    c.kubectl("delete", "namespace", ns, "--wait=false")


@scenario
def observer_logs_and_skips_what_it_cannot_use_and_keeps_running(c):
    lead = observers(c)
    port = _state["observers"][lead]
    ns = c.namespace("bad-input")
    # An owner that no longer exists: the ReplicaSet stands for itself.
    ghost_rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-gone",
                "uid": "00000000-0000-0000-0000-000000000001", "controller": True}
    running_pod(c, ns, "orphan", ghost_rs)
    terminate(c, ns, "orphan", 0, 4)
    wait_for("the orphan counted under its ReplicaSet", lambda: terminations(
        port, namespace=ns, owner_kind="ReplicaSet", owner="web-gone", outcome="clean") == 1, timeout=20,
        interval=0.3)
    # An Event the API refuses: its namespace is being deleted (no namespace
    # controller runs here, so it stays Terminating with the pod in it).
    owner = workload(c, ns, "web")
    running_pod(c, ns, "last", owner)
    last = begin_deletion(c, ns, "last")
    errors = lambda: scrape(port).get(("gracehook_observer_event_errors_total", frozenset()), 0)  # noqa: E731
    before = errors()
    c.kubectl("delete", "namespace", ns, "--wait=false")
    finish(c, ns, "last", *last, 0, 4)
    wait_for("the refused Event counted", lambda: errors() > before, timeout=20, interval=0.3)
    expect(terminations(port, namespace=ns, owner="web", outcome="clean") == 1, "the termination was not counted")
    # Log lines are written out within 200 ms.
    wait_for("the refusal in the log", lambda: "the API refused the drain Event" in open(
        os.path.join(c.dir, f"{lead}.log")).read(), timeout=5)
    c.check_running()
    log(f"{lead}: an orphan counted under its ReplicaSet, an Event refused in a terminating namespace "
        f"({errors() - before:.0f} error), still leading")
