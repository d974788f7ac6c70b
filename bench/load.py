#!/usr/bin/env python3
"""Macro benchmark: `gracehook serve` under load over TLS, against a static
responder (nginx answering a fixed AdmissionReview) on the same machine.

Server pinned to core 0, load generator (oha) to core 1; keep-alive; HTTP/1.1
and HTTP/2 at fixed concurrency. Reports requests/s, p50/p99/p99.9 latency,
server CPU and peak RSS, start-up to ready, and gracehook/nginx throughput.

    bench/load.py [--requests 100000] [--concurrency 16] [--out FILE]

Needs: oha (cargo install oha --locked), nginx, taskset (util-linux).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def tree_cpu(pid):
    """CPU of a process and its children (nginx's worker)."""
    total = cpu_seconds(pid)
    for child in children(pid):
        total += cpu_seconds(child)
    return total


def children(pid):
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def peak_rss_kib(pid):
    peak = 0
    for p in [pid, *children(pid)]:
        for line in open(f"/proc/{p}/status"):
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak


def http_ok(port, path):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def oha(url, body_file, requests, concurrency, http2):
    args = ["taskset", "-c", "1", "oha", "--no-tui", "--output-format", "json", "--insecure",
            "-n", str(requests), "-c", str(concurrency), "-m", "POST",
            "-H", "content-type: application/json", "-D", body_file, url]
    if http2:
        args.insert(-1, "--http2")
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def measure(name, pid, url, body, args, http2):
    # A warm-up so that connection set-up and lazy initialisation are not measured.
    oha(url, body, min(2000, args.requests), args.concurrency, http2)
    cpu_before = tree_cpu(pid)
    result = oha(url, body, args.requests, args.concurrency, http2)
    cpu = tree_cpu(pid) - cpu_before
    summary, pct = result["summary"], result["latencyPercentiles"]
    errors = sum(result.get("errorDistribution", {}).values())
    statuses = result.get("statusCodeDistribution", {})
    return {
        "target": name, "protocol": "HTTP/2" if http2 else "HTTP/1.1",
        "rps": summary["requestsPerSec"], "p50_ms": pct["p50"] * 1000, "p99_ms": pct["p99"] * 1000,
        "p999_ms": pct["p99.9"] * 1000, "cpu_s": cpu,
        "cpu_us_per_req": cpu / args.requests * 1e6, "peak_rss_mib": peak_rss_kib(pid) / 1024,
        "errors": errors, "statuses": statuses,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", help="append the markdown table to this file")
    parser.add_argument("--log-level", default="info", help="RUST_LOG of gracehook (info: one line per review)")
    parser.add_argument("--gracehook", help="binary to measure (default: a fresh release build)")
    args = parser.parse_args()
    for tool in ("oha", "nginx", "taskset"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is required (oha: cargo install oha --locked; nginx: apt-get install nginx)")

    gracehook = args.gracehook
    if not gracehook:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO, check=True)
        gracehook = os.path.join(REPO, "target/release/gracehook")
    work = tempfile.mkdtemp(prefix="gracehook-bench-")
    procs = []
    try:
        subprocess.run([gracehook, "certs", "--out", f"{work}/certs", "--extra-names", "127.0.0.1"],
                       check=True, capture_output=True)
        body = os.path.join(REPO, "examples/review-apache.json")
        response = subprocess.run([gracehook, "review", "-f", body], check=True, capture_output=True,
                                  text=True).stdout
        compact = json.dumps(json.loads(response), separators=(",", ":"))

        # gracehook, with its production logging (one JSON line per review).
        port, metrics = free_port(), free_port()
        env = dict(os.environ, RUST_LOG=args.log_level)
        log = open(f"{work}/gracehook.log", "wb")
        started = time.perf_counter()
        gh = subprocess.Popen(["taskset", "-c", "0", gracehook, "serve", "--listen", f"127.0.0.1:{port}",
                               "--metrics-listen", f"127.0.0.1:{metrics}", "--log-format", "json",
                               "--tls-cert", f"{work}/certs/tls.crt", "--tls-key", f"{work}/certs/tls.key"],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
        procs.append(gh)
        while not http_ok(metrics, "/readyz"):
            if time.perf_counter() - started > 10:
                sys.exit("gracehook did not become ready")
            time.sleep(0.0005)
        startup_ms = (time.perf_counter() - started) * 1000

        nginx_port = free_port()
        os.makedirs(f"{work}/nginx", exist_ok=True)
        escaped = compact.replace("\\", "\\\\").replace("'", "\\'")
        with open(f"{work}/nginx/nginx.conf", "w") as f:
            f.write(f"""daemon off;
worker_processes 1;
pid {work}/nginx/nginx.pid;
error_log {work}/nginx/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx;
  client_max_body_size 8m;
  server {{
    listen 127.0.0.1:{nginx_port} ssl http2;
    ssl_certificate {work}/certs/tls.crt;
    ssl_certificate_key {work}/certs/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    location / {{
      default_type application/json;
      return 200 '{escaped}';
    }}
  }}
}}
""")
        nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        ng = subprocess.Popen(["taskset", "-c", "0", nginx_bin, "-c", f"{work}/nginx/nginx.conf", "-p", f"{work}/nginx"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        procs.append(ng)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", nginx_port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("nginx did not start: " + open(f"{work}/nginx/error.log").read())
                time.sleep(0.01)

        rows = []
        for http2 in (False, True):
            rows.append(measure("gracehook", gh.pid, f"https://127.0.0.1:{port}/mutate", body, args, http2))
            rows.append(measure("nginx (static)", ng.pid, f"https://127.0.0.1:{nginx_port}/mutate", body, args, http2))
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"{args.requests} requests, {args.concurrency} keep-alive connections, server on core 0, oha on core 1, "
        f"body {os.path.getsize(body)} bytes (examples/review-apache.json).",
        "",
        "| target | protocol | req/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/req | peak RSS MiB | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['target']} | {r['protocol']} | {r['rps']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} "
                     f"| {r['p999_ms']:.3f} | {r['cpu_us_per_req']:.1f} | {r['peak_rss_mib']:.1f} | {r['errors']} |")
    lines.append("")
    for proto in ("HTTP/1.1", "HTTP/2"):
        g = next(r for r in rows if r["target"] == "gracehook" and r["protocol"] == proto)
        n = next(r for r in rows if r["target"] != "gracehook" and r["protocol"] == proto)
        lines.append(f"- {proto}: gracehook / nginx throughput = {g['rps'] / n['rps']:.2f}")
    lines.append(f"- gracehook start-up to ready (/readyz 200): {startup_ms:.1f} ms")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    bad = [r for r in rows if r["errors"] or set(r["statuses"]) - {"200"}]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
