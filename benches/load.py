#!/usr/bin/env python3
"""Macro benchmark: `gracehook serve` under load over TLS, against a static
responder (nginx answering a fixed AdmissionReview) on the same core, in the
same run.

The server under test is pinned to core 0, the load generator to core 1;
keep-alive connections at fixed concurrency; the seed review as the body.
HTTP/1.1 (what kube-apiserver speaks to a webhook behind a Service) is driven
by wrk, HTTP/2 by h2load. Reports requests/s, p50/p99/p99.9 latency, server
CPU per request, peak RSS, start-up to ready, and gracehook/nginx throughput.

    benches/load.py [--seconds 10] [--concurrency 16,64] [--baseline OLD_BINARY] [--out FILE]

`--baseline [NAME=]BINARY` (repeatable) measures other gracehook binaries in
the same run, for before/after comparisons.
Needs: wrk, h2load (nghttp2-client), nginx, taskset: apt-get install wrk
nghttp2-client nginx-light util-linux.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")
BODY = os.path.join(REPO, "examples/review-apache.json")

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("%s", "rb")
wrk.body = f:read("*all")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%.1f %%.1f %%.1f %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def tree_cpu(pid):
    """User + system CPU seconds of a process and its children (nginx's worker)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def peak_rss_mib(pid):
    peak = 0
    for p in [pid, *children(pid)]:
        for line in open(f"/proc/{p}/status"):
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak / 1024


def wait_port(port, what, proc, timeout=10):
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                sys.exit(f"{what} did not start")
            time.sleep(0.002)


def wrk(url, script, seconds, concurrency):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s",
                          "--timeout", "5s", "-s", script, url],
                         check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    requests, duration_us, p50, p99, p999, errors, bad_status = line.split()[1:]
    return {"requests": int(requests), "rps": int(requests) / (int(duration_us) / 1e6),
            "p50_ms": float(p50) / 1000, "p99_ms": float(p99) / 1000, "p999_ms": float(p999) / 1000,
            "errors": int(errors) + int(bad_status)}


def h2load(url, work, seconds, concurrency, rate_hint):
    """A fixed number of requests, sized from the HTTP/1.1 rate to last about `seconds`."""
    requests = max(2000, int(rate_hint * seconds))
    log = os.path.join(work, "h2load.log")
    out = subprocess.run(["taskset", "-c", "1", "h2load", "-n", str(requests), "-c", str(concurrency),
                          "-m", "1", "-t", "1", "-d", BODY, "-H", "content-type: application/json",
                          "--log-file", log, url],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out).group(1))
    failed = int(re.search(r"(\d+) failed", out).group(1))
    latencies, bad = [], 0
    for line in open(log):
        _, status, micros = line.split("\t")[:3]
        bad += status != "200"
        latencies.append(int(micros))
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000  # noqa: E731
    return {"requests": requests, "rps": rps, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "p999_ms": pct(0.999), "errors": failed + bad}


def measure(target, pid, url, protocol, concurrency, args, work, script, rate_hint):
    run = (lambda s: wrk(url, script, s, concurrency)) if protocol == "HTTP/1.1" else \
        (lambda s: h2load(url, work, s, concurrency, rate_hint))
    run(1)  # warm-up: connections, lazy initialisation, allocator
    before = tree_cpu(pid)
    result = run(args.seconds)
    cpu = tree_cpu(pid) - before
    result.update(target=target, protocol=protocol, concurrency=concurrency,
                  cpu_us=cpu / result["requests"] * 1e6, rss_mib=peak_rss_mib(pid))
    return result


def start_gracehook(binary, work, log_level):
    port, metrics = free_port(), free_port()
    env = dict(os.environ, RUST_LOG=log_level)
    log = open(os.path.join(work, f"gracehook-{port}.log"), "wb")
    started = time.perf_counter()
    proc = subprocess.Popen(["taskset", "-c", "0", binary, "serve", "--listen", f"127.0.0.1:{port}",
                             "--metrics-listen", f"127.0.0.1:{metrics}", "--log-format", "json",
                             "--tls-cert", f"{work}/certs/tls.crt", "--tls-key", f"{work}/certs/tls.key"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_port(port, binary, proc)
    return proc, port, (time.perf_counter() - started) * 1000


def start_nginx(work, response):
    port = free_port()
    os.makedirs(f"{work}/nginx", exist_ok=True)
    escaped = response.replace("\\", "\\\\").replace("'", "\\'")
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
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {work}/certs/tls.crt;
    ssl_certificate_key {work}/certs/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 10000000;
    location / {{
      default_type application/json;
      return 200 '{escaped}';
    }}
  }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen(["taskset", "-c", "0", nginx, "-c", f"{work}/nginx/nginx.conf", "-p", f"{work}/nginx"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_port(port, "nginx", proc)
    return proc, port


def table(rows, startups):
    lines = ["| target | protocol | conns | req/s | / nginx | p50 ms | p99 ms | p99.9 ms | CPU µs/req | peak RSS MiB | errors |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        nginx = next(n for n in rows if n["target"] == "nginx (static)" and n["protocol"] == r["protocol"]
                     and n["concurrency"] == r["concurrency"])
        lines.append(f"| {r['target']} | {r['protocol']} | {r['concurrency']} | {r['rps']:.0f} | "
                     f"{r['rps'] / nginx['rps']:.2f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['p999_ms']:.3f} | "
                     f"{r['cpu_us']:.1f} | {r['rss_mib']:.1f} | {r['errors']} |")
    lines.append("")
    for name, ms in startups.items():
        lines.append(f"- {name}: start-up to first connection accepted {ms:.1f} ms")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", default="16,64")
    parser.add_argument("--protocols", default="HTTP/1.1,HTTP/2")
    parser.add_argument("--out", help="append the markdown table to this file")
    parser.add_argument("--log-level", default="info", help="RUST_LOG of gracehook (info: one line per review)")
    parser.add_argument("--gracehook", help="binary to measure (default: a fresh release build)")
    parser.add_argument("--baseline", action="append", default=[], metavar="[NAME=]BINARY",
                        help="another gracehook binary measured in the same run (repeatable)")
    args = parser.parse_args()
    for tool in ("wrk", "h2load", "nginx", "taskset"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is required: apt-get install wrk nghttp2-client nginx-light util-linux")

    gracehook = args.gracehook
    if not gracehook:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO, check=True)
        gracehook = os.path.join(REPO, "target/release/gracehook")
    work = tempfile.mkdtemp(prefix="gracehook-bench-")
    procs, rows, startups = [], [], {}
    try:
        subprocess.run([gracehook, "certs", "--out", f"{work}/certs", "--extra-names", "127.0.0.1"],
                       check=True, capture_output=True)
        response = subprocess.run([gracehook, "review", "-f", BODY], check=True, capture_output=True,
                                  text=True).stdout
        script = os.path.join(work, "post.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT % BODY)

        targets = [("gracehook", gracehook)]
        for i, baseline in enumerate(args.baseline):
            name, _, binary = baseline.rpartition("=")
            targets.append((name or f"baseline {i + 1}", binary))
        servers = []
        for name, binary in targets:
            proc, port, startup = start_gracehook(binary, work, args.log_level)
            procs.append(proc)
            servers.append((name, proc.pid, port))
            startups[name] = startup
        nginx, nginx_port = start_nginx(work, json.dumps(json.loads(response), separators=(",", ":")))
        procs.append(nginx)
        servers.append(("nginx (static)", nginx.pid, nginx_port))

        rate = {}
        for protocol in args.protocols.split(","):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                for name, pid, port in servers:
                    url = f"https://127.0.0.1:{port}/mutate"
                    hint = rate.get(name, 30000)
                    row = measure(name, pid, url, protocol, concurrency, args, work, script, hint)
                    rate[name] = row["rps"]
                    rows.append(row)
                    print(f"{name} {protocol} c{concurrency}: {row['rps']:.0f} req/s, p99 {row['p99_ms']:.3f} ms",
                          file=sys.stderr, flush=True)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)

    text = (f"{args.seconds} s per row, keep-alive, server on core 0, load on core 1, RUST_LOG={args.log_level}, "
            f"body {os.path.getsize(BODY)} bytes (examples/review-apache.json).\n\n" + table(rows, startups))
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
