"""The node suite's two processes (see `run` and README.md).

`outer`, in the machine's namespaces: installs missing packages (CI),
restores the machine if a previous run did not, provisions the binaries,
gracehook and the images, records the machine's state in the state file
(node.Host), starts `run --inner` in a new network and mount namespace,
forwards Ctrl-C and SIGTERM to it, then restores the machine, checks it is
as it was and prints the lines and `N passed, M failed`.

`inner`, in the new namespaces: brings the node up (node.Node), runs the
scenarios (scenarios.py) with the harness's loop, optionally holds the node
(GRACEHOOK_NODE_HOLD), tears it down and writes the results for `outer`.
"""

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import harness
import images as imagelib
import node as nodelib
import scenarios
from node import log

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RUN = os.path.join(HERE, "run")
PACKAGES = {  # command or file -> Debian package
    "containerd": "containerd", "ctr": "containerd", "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins", "iptables": "iptables", "conntrack": "conntrack",
    "/usr/sbin/apache2": "apache2", "/usr/sbin/apache2ctl": "apache2", "gcc": "gcc",
    "/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev", "strip": "binutils", "unshare": "util-linux",
    "nsenter": "util-linux", "ip": "iproute2", "/usr/sbin/nginx": "nginx", "/etc/nginx/mime.types": "nginx-common",
}


# -- the outside: provisioning, the namespaces, the machine's state ----------

def ensure_packages():
    missing = sorted({pkg for cmd, pkg in PACKAGES.items()
                      if not (os.path.exists(cmd) if cmd.startswith("/") else shutil.which(cmd))})
    if not missing:
        return
    if os.environ.get("CI") == "true":
        log("installing " + " ".join(missing))
        # The packages' maintainer scripts must not start Apache or containerd
        # on the machine: deny service starts while installing (policy-rc.d).
        policy = "/usr/sbin/policy-rc.d"
        ours = not os.path.exists(policy)
        if ours:
            with open(policy, "w") as f:
                f.write("#!/bin/sh\n# tests/node/run: no service starts while installing\nexit 101\n")
            os.chmod(policy, 0o755)
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        finally:
            if ours:
                os.remove(policy)
    else:
        raise SystemExit(f"tests/node/run needs: apt-get install {' '.join(missing)} (CI=true installs them)")


def gracehook_binary(out_dir):
    prebuilt = os.environ.get("GRACEHOOK_BIN")
    if prebuilt:
        log(f"using GRACEHOOK_BIN={prebuilt}")
        return os.path.abspath(prebuilt)
    out = os.path.join(REPO, "target", "node", "gracehook")
    log("building the static release binary (.ci/static-build)")
    subprocess.run(["bash", ".ci/static-build", out], cwd=REPO, check=True, stdout=sys.stderr)
    return out


def set_pdeathsig():
    # The inner process tears the node down if this one dies.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def outer(wanted):
    if os.geteuid() != 0:
        raise SystemExit("tests/node/run must run as root (it starts a kubelet and containerd)")
    ensure_packages()
    started = time.time()
    cache = os.environ.get("GRACEHOOK_CACHE", os.path.expanduser("~/.cache/gracehook"))
    host = nodelib.Host(os.path.join(cache, "node-state.json"))
    stale = host.load()
    if stale:
        log("a previous run did not finish: cleaning up after it")
        problems = host.restore(stale)
        if problems:
            raise SystemExit("the machine still differs from before the previous run: " + "; ".join(problems))
    existing = sorted(nodelib.node_cgroups(nodelib.cgroup_dirs()))
    if existing:
        raise SystemExit(f"{existing[0]} exists: another kubelet uses this machine's kubepods cgroups")
    bin_dir = subprocess.run([os.path.join(HERE, "provision")], check=True, stdout=subprocess.PIPE,
                             text=True).stdout.strip().splitlines()[-1]
    logs = tempfile.mkdtemp(prefix="gracehook-node-")
    gracehook = gracehook_binary(logs)
    images = imagelib.build_cached(cache)
    images["gracehook"] = imagelib.gracehook_image(gracehook, logs)
    log(f"provisioned in {time.time() - started:.0f}s; logs in {logs}")

    before = host.snapshot()
    host.save(before)
    config = os.path.join(logs, "config.json")
    results_file = os.path.join(logs, "results.json")
    with open(config, "w") as f:
        json.dump({"bin": bin_dir, "gracehook": gracehook, "images": images, "logs": logs,
                   "results": results_file, "wanted": wanted}, f)

    signals, inner, netns = [], None, None

    def forward(signum, _frame):
        signals.append(signum)
        if inner is None:
            raise KeyboardInterrupt(f"signal {signum}")
        if len(signals) == 1:
            log(f"signal {signum}: tearing the node down (again to stop at once)")
            inner.send_signal(signal.SIGTERM)
        else:
            inner.kill()
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        # A new network namespace and a private mount namespace, in a new
        # session: Ctrl-C reaches this process only, which forwards it.
        inner = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "--",
                                  sys.executable, RUN, "--inner", config],
                                 start_new_session=True, preexec_fn=set_pdeathsig)
        mine = nodelib.netns_inode()
        netns = harness.wait_for("the node's network namespace", lambda: inner.poll() is None and (
            nodelib.netns_inode(inner.pid) != mine) and nodelib.netns_inode(inner.pid), timeout=10, interval=0.01)
        host.save(before, netns, inner.pid)
        while inner.poll() is None:
            try:
                inner.wait()
            except InterruptedError:
                continue
    except BaseException as e:  # noqa: BLE001 - whatever happened, restore the machine
        log(f"the node's process failed: {e!r}")
        if inner is not None and inner.poll() is None:
            inner.kill()
            inner.wait()
        signals.append("error")

    problems = host.restore({"before": before, "netns": netns})
    try:
        with open(results_file) as f:
            results = json.load(f)
    except (OSError, ValueError):
        results = {"passed": [], "failed": ["setup"], "lines": []}
    if problems:
        log("the machine differs from before the run:\n  " + "\n  ".join(problems))
        results["failed"].append("teardown_restores_the_machine")
    else:
        log("teardown: no process, mount, cgroup, link, namespace, file or sysctl left behind")
        results["passed"].append("teardown_restores_the_machine")
    if signals and not os.environ.get("GRACEHOOK_NODE_HOLD") and "interrupted" not in results["failed"]:
        results["failed"].append("interrupted")
    if os.environ.get("GRACEHOOK_NODE_KEEP"):
        log("kept", logs)
    else:
        shutil.rmtree(logs, ignore_errors=True)
    for line in results["lines"]:
        print(line, flush=True)
    log(f"total {time.time() - started:.0f}s")
    return harness.summary(results["passed"], results["failed"])


# -- the inside: the node and the scenarios ----------------------------------

def hold(node):
    """GRACEHOOK_NODE_HOLD=1: keep the node up for a look inside, until Ctrl-C."""
    enter = (f"nsenter --net=/proc/{os.getpid()}/ns/net --mount=/proc/{os.getpid()}/ns/mnt "
             f"env KUBECONFIG={node.kubeconfig} PATH={node.bin}:$PATH bash")
    with open(os.path.join(node.dir, "enter"), "w") as f:
        f.write(enter + "\n")
    log(f"holding the node (Ctrl-C or SIGTERM to tear it down); enter it with:\n  {enter}")
    while True:
        time.sleep(1)
        node.check_running()


def inner(config_path):
    with open(config_path) as f:
        config = json.load(f)
    harness.raise_on_signals(signal.SIGTERM, signal.SIGINT)
    node = nodelib.Node(config)
    c = scenarios.Context(node, config)

    def setup_failed():
        for name in node.procs:
            log(f"{name} log tail:\n" + node.tail(name, 15))
    passed, failed = [], ["setup"]
    try:
        passed, failed = harness.run_scenarios(
            c, set(config["wanted"]), log, setup=node.setup, what="the node", on_setup_failure=setup_failed,
            always=(scenarios.gracehook_installs_from_its_manifests,))  # the others need it
    finally:
        if os.environ.get("GRACEHOOK_NODE_HOLD") and "interrupted" not in failed:
            try:
                hold(node)
            except BaseException as e:  # noqa: BLE001 - then tear down
                log(f"hold ended: {e}")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            node.teardown()
        except Exception as e:  # noqa: BLE001 - the outer process checks and cleans up
            log(f"teardown: {e}")
        with open(config["results"], "w") as f:
            json.dump({"passed": passed, "failed": failed, "lines": c.lines}, f)
    return 0
