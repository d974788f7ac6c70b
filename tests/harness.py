"""What the three Python suites share: tests/ops/run, tests/e2e/run and
tests/node/run import this module (their `run` puts tests/ on sys.path).

- `scenario` registers a test (in SCENARIOS, in definition order), `expect`
  fails one with a message, `wait_for` polls until a check holds;
- `logger(prefix)` makes a suite's `log` (stderr, one prefix per suite);
- `Processes`: named child processes, each logging to DIR/NAME.log, stopped
  by SIGTERM then SIGKILL; the e2e Cluster and the node's Node build on it;
- `json_objects` reads the JSON documents kubectl prints one after another,
  `create_namespace` makes a namespace with gracehook's mode label;
- `check_names`, `run_scenarios` and `summary`: the runner loop and its last
  line, `N passed, M failed`, which CI reads.

Standard library only.
"""

import json
import os
import signal
import subprocess
import sys
import time
import traceback

SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def logger(prefix):
    """A `log(*args)` that prints `prefix: ...` to stderr."""
    def log(*args):
        print(f"{prefix}:", *args, file=sys.stderr, flush=True)
    return log


def wait_for(what, check, timeout=60.0, interval=0.2):
    """Calls `check` until it returns something true, and returns that; an
    exception from `check` counts as not yet (the last one is reported)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # noqa: BLE001 - report the last reason
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: {last}")


def json_objects(text):
    """The JSON values printed one after another (kubectl -o json of several
    documents), a List's items in its place."""
    decoder, objects, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(text, at)
        objects.extend(value["items"] if value.get("kind") == "List" else [value])
    return objects


def create_namespace(kubectl, name, mode=None, **annotations):
    """`kubectl create namespace NAME`, labelled gracehook.io/mode=MODE (if
    given) and annotated; `kubectl` is a suite's kubectl(*args) function."""
    kubectl("create", "namespace", name)
    if mode:
        kubectl("label", "namespace", name, f"gracehook.io/mode={mode}")
    for key, value in annotations.items():
        kubectl("annotate", "namespace", name, f"{key}={value}")
    return name


class Processes:
    """Named child processes, each writing stdout and stderr to DIR/NAME.log.

    env: the environment of a process spawned without one (None: this
    process's own); new_session: start each in its own session (and process
    group), out of reach of the terminal's Ctrl-C; stop_timeout: how long
    `stop` waits after the signal before SIGKILL."""

    def __init__(self, directory, env=None, new_session=False, stop_timeout=30):
        self.dir = directory
        self.procs = {}
        self.spawn_env = env
        self.new_session = new_session
        self.stop_timeout = stop_timeout

    def spawn(self, name, args, env=None):
        logf = open(os.path.join(self.dir, f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=self.dir, env=env or self.spawn_env,
                                            start_new_session=self.new_session)
        return self.procs[name]

    def stop(self, name, sig=signal.SIGTERM, timeout=None):
        """Signals `name` and waits (SIGKILL after the timeout); its exit code."""
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(sig)
        try:
            return proc.wait(self.stop_timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def tail(self, name, lines=30):
        path = os.path.join(self.dir, f"{name}.log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def check_running(self):
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")


def raise_on_signals(*signums):
    """Turns these signals into KeyboardInterrupt, which run_scenarios reports."""
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for signum in signums:
        signal.signal(signum, interrupted)


def check_names(names, scenarios=SCENARIOS):
    """True if every name is a scenario's; otherwise says which are not."""
    unknown = [n for n in names if n not in {fn.__name__ for fn in scenarios}]
    if unknown:
        print(f"unknown scenario(s): {' '.join(unknown)}\nscenarios: "
              + " ".join(fn.__name__ for fn in scenarios), file=sys.stderr)
    return not unknown


def run_scenarios(context, wanted, log, scenarios=SCENARIOS, setup=None, always=(), on_failure=None,
                  what="the suite", on_setup_failure=None):
    """Runs `setup` (if any), then each scenario named in `wanted` (all if
    empty; those in `always` in any case) with `context`, logging PASS or
    FAIL with the traceback. Returns (passed, failed), the names; an
    interruption (KeyboardInterrupt) is recorded as `interrupted`, any other
    failure outside a scenario as `setup`. The caller tears down."""
    passed, failed = [], []
    try:
        if setup:
            setup()
        for fn in scenarios:
            if wanted and fn.__name__ not in wanted and fn not in always:
                continue
            started = time.time()
            try:
                fn(context)
                passed.append(fn.__name__)
                log(f"PASS {fn.__name__} ({time.time() - started:.1f}s)")
            except Exception as e:  # noqa: BLE001 - every failure is reported
                failed.append(fn.__name__)
                log(f"FAIL {fn.__name__}: {e}")
                traceback.print_exc(file=sys.stderr)
                if on_failure:
                    on_failure()
    except KeyboardInterrupt as e:
        log(f"interrupted: {e}")
        failed.append("interrupted")
    except BaseException as e:  # noqa: BLE001 - start-up failures fail the run
        log(f"{what} did not start: {e}")
        traceback.print_exc(file=sys.stderr)
        if on_setup_failure:
            on_setup_failure()
        failed.append("setup")
    return passed, failed


def summary(passed, failed):
    """Prints the last line, `N passed, M failed`; the exit code (0: at
    least one passed and none failed)."""
    print(f"{len(passed)} passed, {len(failed)} failed", flush=True)
    return 0 if passed and not failed else 1
