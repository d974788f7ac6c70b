#!/usr/bin/env python3
"""Benchmark: the memory of `gracehook observe` against the size of the
cluster, on the e2e suite's real kube-apiserver and etcd (tests/e2e/cluster.py).

Pods need no node to exist: each is created bound to a node that does not
exist, with gracehook's status annotation and hook, as patched pods are. For
each size the observer starts, wins the Lease, lists every pod (its log says
"pods listed") and keeps following them for a while; then its peak and
current RSS are read from /proc. At the largest size, `--terminating` of the
pods are then being deleted at once (the observer keeps facts for each), and
the RSS is read again.

    benches/observe_memory.py [--sizes 1000,10000,30000] [--terminating 1000] [--binary PATH]

Needs what tests/e2e/run needs (Go for tests/e2e/provision, cargo).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "tests", "e2e"), os.path.join(REPO, "tests")]

from cluster import Cluster, drain_hook, free_port  # noqa: E402
from harness import wait_for  # noqa: E402

NS = "bench-observe"
STATUS = json.dumps({"grace": 10, "containers": {"web": "exec"}}, separators=(",", ":"))


def pod_body(i):
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"p{i:05d}", "labels": {"app": "web"}, "annotations": {"gracehook.io/status": STATUS}},
        "spec": {"nodeName": "ghost", "terminationGracePeriodSeconds": 10, "containers": [{
            "name": "web", "image": "nginx",
            "lifecycle": {"preStop": {"exec": {"command": drain_hook(2, "nginx -s quit", 6)}}}}]},
    })


def create_pods(c, first, last, threads=4):
    """Creates pods first..last-1 over keep-alive connections."""
    errors = []

    def worker(k):
        conn, headers = c.api()
        for i in range(first + k, last, threads):
            conn.request("POST", f"/api/v1/namespaces/{NS}/pods", body=pod_body(i), headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 201:
                errors.append(response.status)
        conn.close()
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise SystemExit(f"{len(errors)} pod creations failed: {errors[:5]}")


def rss(pid):
    status = open(f"/proc/{pid}/status").read()
    field = lambda name: int(next(l for l in status.splitlines() if l.startswith(name)).split()[1]) / 1024  # noqa: E731
    return field("VmRSS:"), field("VmHWM:")


def observe(c, binary, name):
    """Starts an observer and waits until it has listed every pod."""
    port = free_port()
    proc = c.spawn(name, [binary, "observe", "--metrics-listen", f"127.0.0.1:{port}", "--identity", name,
                          "--lease-namespace", "gracehook-system", "--lease-duration", "4s", "--log-format", "json"],
                   env=c.env)
    log_path = os.path.join(c.dir, f"{name}.log")
    started = time.time()
    wait_for(f"{name} to list the pods", lambda: "pods listed" in open(log_path).read(), timeout=300, interval=0.2)
    listed = time.time() - started
    time.sleep(5)  # following the watch for a while
    return proc, port, listed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,30000")
    parser.add_argument("--terminating", type=int, default=1000)
    parser.add_argument("--binary", default=os.path.join(REPO, "target", "release", "gracehook"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    bin_dir = subprocess.run([os.path.join(REPO, "tests", "e2e", "provision")], check=True,
                             stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    if args.binary.startswith(os.path.join(REPO, "target")):
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO, check=True)
    c = Cluster(bin_dir, args.binary)
    rows = []
    try:
        c.start()
        c.kubectl("create", "namespace", NS)
        c.kubectl("create", "namespace", "gracehook-system", check=False)
        have = 0
        for size in sizes:
            started = time.time()
            create_pods(c, have, size)
            print(f"created {size - have} pods in {time.time() - started:.0f}s ({size} in all)", file=sys.stderr)
            have = size
            proc, port, listed = observe(c, args.binary, f"observe-{size}")
            now, peak = rss(proc.pid)
            rows.append((f"{size:,} pods", listed, now, peak))
            if size == sizes[-1] and args.terminating:
                for i in range(args.terminating):
                    conn, headers = c.api() if i == 0 else (conn, headers)
                    conn.request("DELETE", f"/api/v1/namespaces/{NS}/pods/p{i:05d}", headers=headers)
                    conn.getresponse().read()
                time.sleep(10)
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                assert "gracehook_observer_leader 1" in metrics, "the observer does not lead"
                now, peak = rss(proc.pid)
                rows.append((f"{size:,} pods, {args.terminating:,} terminating", None, now, peak))
            c.stop(f"observe-{size}")
    finally:
        c.teardown()
    print("| cluster | list to \"pods listed\" | RSS after | peak RSS |")
    print("| --- | ---: | ---: | ---: |")
    for what, listed, now, peak in rows:
        print(f"| {what} | {'-' if listed is None else f'{listed:.1f} s'} | {now:.1f} MiB | {peak:.1f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
