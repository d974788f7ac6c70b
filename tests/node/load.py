"""A bounded HTTP load generator (stdlib only) for the node suite.

Sends `rate` requests per second for `duration` seconds to one address (a
Service VIP inside the suite's network namespace), every `long_every`-th a
request that takes `long_seconds` (Apache's /cgi-bin/slow?N, or `long_path`:
nginx's /slow, a static file sent slowly), the others a static file. Both
slow responses end with the line `end`. Each request opens a new
connection, as a client without keep-alive does, and is classified:

  ok        status 200 and the complete body
  refused   connection refused (no server, or kube-proxy rejects: no endpoint)
  reset     connection reset by the server
  timeout   no answer within `timeout` seconds
  cut       the connection closed before the end of the response
  http-NNN  any status other than 200

The count is bounded (rate * duration requests), every request has a
timeout, and nothing is retried.
"""

import http.client
import socket
import threading
import time


class Load:
    def __init__(self, host, port=80, rate=20, duration=60.0, long_every=5, long_seconds=4, timeout=20.0,
                 long_path=None):
        self.host, self.port = host, port
        # The slow request: its duration is the server's (nginx's limit_rate), not in the path.
        self.long_path = long_path or f"/cgi-bin/slow?{long_seconds}"
        self.rate, self.duration = rate, duration
        self.long_every, self.long_seconds, self.timeout = long_every, long_seconds, timeout
        self.results = []  # (index, started, seconds, path, outcome, detail)
        self.lock = threading.Lock()
        self.threads = []
        self.started = None
        self.done = threading.Event()

    def request(self, index, path, expect):
        started = time.time()
        outcome, detail = "ok", ""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close", "User-Agent": "gracehook-node-load"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                outcome, detail = f"http-{response.status}", body[:80].decode(errors="replace")
            elif not expect(body):
                outcome, detail = "cut", repr(body[-40:])
        except ConnectionRefusedError as e:
            outcome, detail = "refused", str(e)
        except ConnectionResetError as e:
            outcome, detail = "reset", str(e)
        except (socket.timeout, TimeoutError) as e:
            outcome, detail = "timeout", str(e)
        except (http.client.IncompleteRead, http.client.RemoteDisconnected, BrokenPipeError) as e:
            outcome, detail = "cut", f"{type(e).__name__}: {e}"
        except OSError as e:
            outcome, detail = "error", f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        with self.lock:
            self.results.append((index, started, time.time() - started, path, outcome, detail))

    def run(self):
        """Sends the load (blocking); returns when every request has finished."""
        total = int(self.rate * self.duration)
        self.started = time.time()
        for i in range(total):
            due = self.started + i / self.rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            if self.long_every and i % self.long_every == self.long_every - 1:
                path, expect = self.long_path, lambda b: b.endswith(b"end\n")
            else:
                path, expect = "/index.html", lambda b: b == b"ok\n"
            t = threading.Thread(target=self.request, args=(i, path, expect), daemon=True)
            t.start()
            self.threads.append(t)
        for t in self.threads:
            t.join(self.timeout + 5)
        self.done.set()
        return self.summary()

    def start(self):
        """Runs the load in a background thread; `wait()` for the summary."""
        self.runner = threading.Thread(target=self.run, daemon=True)
        self.runner.start()
        while self.started is None:
            time.sleep(0.01)
        return self

    def wait(self):
        self.runner.join(self.duration + self.timeout + 30)
        return self.summary()

    def summary(self):
        with self.lock:
            results = list(self.results)
        failed = [r for r in results if r[4] != "ok"]
        by_outcome = {}
        for r in failed:
            by_outcome[r[4]] = by_outcome.get(r[4], 0) + 1
        return {"requests": len(results), "failed": len(failed), "by_outcome": by_outcome,
                "long": sum(1 for r in results if "slow" in r[3]),
                "failures": [{"at": round(r[1] - self.started, 2), "path": r[3], "outcome": r[4], "detail": r[5]}
                             for r in sorted(failed)][:50]}
