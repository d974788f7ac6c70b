"""The e2e suite's control plane and helpers: etcd, kube-apiserver and
gracehook on loopback (see `run`), and the pod builders and measurements the
scenario modules (scenarios.py, ops.py, policy.py) share. Process handling,
`scenario`, `expect` and `wait_for` come from tests/harness.py.
"""

import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

from harness import Processes, create_namespace, expect, json_objects, logger, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
log = logger("e2e")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster(Processes):
    """etcd + kube-apiserver + gracehook, all on loopback. Processes are
    spawned with this process's environment unless given one."""

    def __init__(self, bin_dir, gracehook):
        super().__init__(tempfile.mkdtemp(prefix="gracehook-e2e-"), stop_timeout=30)
        self.bin = bin_dir
        self.gracehook = gracehook
        self.env = dict(os.environ, KUBECONFIG=os.path.join(self.dir, "kubeconfig"))
        for key in list(self.env):
            if key.startswith("GRACEHOOK_"):
                del self.env[key]

    def teardown(self):
        for name in list(self.procs):
            self.stop(name, timeout=10)
        if os.environ.get("GRACEHOOK_E2E_KEEP"):
            log("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- start-up ----------------------------------------------------------
    def certs(self, out, *extra):
        args = [self.gracehook, "certs", "--out", out, "--days", "2"]
        if extra:
            args += ["--extra-names", ",".join(extra)]
        subprocess.run(args, check=True, capture_output=True)
        return out

    def start(self):
        d = self.dir
        self.certs(f"{d}/apiserver", "127.0.0.1", "localhost")
        self.certs(f"{d}/sa")
        self.token = base64.b64encode(os.urandom(24)).decode().rstrip("=").replace("/", "_").replace("+", "-")
        with open(f"{d}/tokens.csv", "w") as f:
            f.write(f"{self.token},e2e-admin,e2e-admin,system:masters\n")
        with open(f"{d}/audit-policy.yaml", "w") as f:
            f.write("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n"
                    "- level: Metadata\n  resources:\n  - group: \"\"\n    resources: [\"pods\"]\n"
                    "- level: None\n")

        etcd_port, peer_port = free_port(), free_port()
        self.spawn("etcd", [
            f"{self.bin}/etcd", "--data-dir", f"{d}/etcd", "--name", "e2e",
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"e2e=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ])
        wait_for("etcd", lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{etcd_port}/health", timeout=2).status == 200, timeout=30)

        self.api_port = free_port()
        self.audit_log = f"{d}/audit.log"
        self.apiserver_args = [
            f"{self.bin}/kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--tls-cert-file={d}/apiserver/tls.crt", f"--tls-private-key-file={d}/apiserver/tls.key",
            f"--cert-dir={d}/apiserver-certs",
            f"--token-auth-file={d}/tokens.csv",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={d}/sa/tls.crt",
            f"--service-account-signing-key-file={d}/sa/tls.key",
            "--service-cluster-ip-range=10.96.0.0/16",
            # Loopback cannot be a Service endpoint; envtest does the same.
            "--endpoint-reconciler-type=none",
            # No controller-manager creates default ServiceAccounts here.
            "--disable-admission-plugins=ServiceAccount",
            "--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
            f"--audit-policy-file={d}/audit-policy.yaml", f"--audit-log-path={self.audit_log}",
            "--audit-log-mode=blocking",
            "--v=1",
        ]
        self.spawn("kube-apiserver", self.apiserver_args)
        with open(self.env["KUBECONFIG"], "w") as f:
            ca = base64.b64encode(open(f"{d}/apiserver/ca.crt", "rb").read()).decode()
            f.write(json.dumps({
                "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
                "clusters": [{"name": "e2e", "cluster": {
                    "server": f"https://127.0.0.1:{self.api_port}", "certificate-authority-data": ca}}],
                "users": [{"name": "e2e", "user": {"token": self.token}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e"}}],
            }))

        self.wait_apiserver_ready()
        wait_for("the default namespaces", lambda: self.kubectl(
            "get", "namespace", "kube-system", check=False).returncode == 0)
        version = json.loads(self.kubectl("get", "--raw", "/version").stdout)["gitVersion"]
        log(f"kube-apiserver {version} ready on 127.0.0.1:{self.api_port}")

        # Two CAs in the bundle, as operators rotate: serve from the first,
        # rotate to a certificate of the second without touching the webhook.
        self.certs(f"{d}/webhook-1", "127.0.0.1")
        self.certs(f"{d}/webhook-2", "127.0.0.1")
        bundle = b"".join(open(f"{d}/webhook-{i}/ca.crt", "rb").read() for i in (1, 2))
        self.ca_bundle = base64.b64encode(bundle).decode()
        self.webhook_dir = f"{d}/webhook"
        self.publish_cert("first", f"{d}/webhook-1")
        self.start_gracehook()
        self.namespace("e2e-probe", "enforce")
        self.kubectl("create", "namespace", "gracehook-system")
        self.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "gracehook", "namespace": "gracehook-system"},
            "spec": {"type": "ExternalName", "externalName": "localhost"}}))
        self.register(self.webhook_port, self.metrics_port)

    # Webhook certificates laid out as the kubelet mounts a Secret.
    def wait_apiserver_ready(self):
        def ready():
            if self.procs["kube-apiserver"].poll() is not None:
                raise SystemExit("kube-apiserver exited:\n" + self.tail("kube-apiserver"))
            return self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0
        wait_for("kube-apiserver /readyz", ready, timeout=120, interval=0.5)

    def restart_apiserver(self):
        """Stops kube-apiserver and starts it again with the same flags: every
        watch breaks, and resumes against a fresh watch cache."""
        self.stop("kube-apiserver", timeout=30)
        self.spawn("kube-apiserver", self.apiserver_args)
        self.wait_apiserver_ready()

    def publish_cert(self, version, source):
        target = os.path.join(self.webhook_dir, f"..{version}")
        os.makedirs(target, exist_ok=True)
        for name in ("tls.crt", "tls.key"):
            shutil.copy(os.path.join(source, name), os.path.join(target, name))
        tmp = os.path.join(self.webhook_dir, "..data_tmp")
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.symlink(f"..{version}", tmp)
        os.rename(tmp, os.path.join(self.webhook_dir, "..data"))
        for name in ("tls.crt", "tls.key"):
            link = os.path.join(self.webhook_dir, name)
            if not os.path.lexists(link):
                os.symlink(f"..data/{name}", link)

    def start_gracehook(self, name="gracehook", *extra, env=None):
        port, metrics = free_port(), free_port()
        self.spawn(name, [
            self.gracehook, "serve", "--listen", f"127.0.0.1:{port}",
            "--metrics-listen", f"127.0.0.1:{metrics}",
            "--tls-cert", f"{self.webhook_dir}/tls.crt", "--tls-key", f"{self.webhook_dir}/tls.key",
            "--tls-reload-interval", "200ms", "--shutdown-delay", "0s", "--log-format", "json", *extra,
        ], env=env)
        wait_for(f"{name} /readyz", lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{metrics}/readyz", timeout=2).status == 200, timeout=30)
        if name == "gracehook":
            self.webhook_port, self.metrics_port = port, metrics
        return port, metrics

    def register(self, port, metrics, name="gracehook", by_url=False):
        """The project's own MutatingWebhookConfiguration, its Service's port set to
        `port` (or, by_url, pointed at https://127.0.0.1:port), returning once the
        API server calls the server behind `metrics`."""
        config = next(o for o in self.kustomize("base") if o.get("kind") == "MutatingWebhookConfiguration")
        config["metadata"]["name"] = name
        for webhook in config["webhooks"]:
            service = webhook["clientConfig"]["service"]
            if by_url:
                webhook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{service['path']}"}
            else:
                service["port"] = port
            webhook["clientConfig"]["caBundle"] = self.ca_bundle
        self.kubectl("apply", "-f", "-", input=json.dumps(config))
        if name != "gracehook":
            # An extra configuration: nothing to tell it apart by; give the
            # API server time to load it.
            time.sleep(2)
            return
        # The API server loads webhook configurations asynchronously: probe
        # with server-side dry runs until the new server is the one called.
        def called():
            before = self.calls(metrics)
            self.kubectl("create", "-n", "e2e-probe", "--dry-run=server", "-f", "-",
                         input=json.dumps(pod("probe")))
            return self.calls(metrics) > before
        wait_for(f"the API server to call 127.0.0.1:{port}", called, timeout=30, interval=0.2)

    # -- helpers -----------------------------------------------------------
    def kustomize(self, overlay):
        """The objects of manifests/<overlay>, as JSON (kubectl converts the YAML)."""
        rendered = self.kubectl("kustomize", os.path.join(REPO, "manifests", overlay)).stdout
        return self.to_objects(rendered)

    def to_objects(self, yaml_text):
        """YAML documents as JSON objects, converted by kubectl (no YAML library needed)."""
        return json_objects(self.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                         input=yaml_text).stdout)

    def reloads(self):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith('gracehook_tls_reloads_total{result="success"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def kubectl(self, *args, input=None, check=True):
        result = subprocess.run([f"{self.bin}/kubectl", *args], input=input, env=self.env,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def namespace(self, name, mode=None, **annotations):
        return create_namespace(self.kubectl, name, mode, **annotations)

    def create_pod(self, pod, *flags):
        return self.kubectl("create", "-f", "-", *flags, input=json.dumps(pod), check=False)

    def get_pod(self, namespace, name):
        return json.loads(self.kubectl("get", "pod", "-n", namespace, name, "-o", "json").stdout)

    def metrics(self, port=None):
        text = urllib.request.urlopen(f"http://127.0.0.1:{port or self.metrics_port}/metrics",
                                      timeout=5).read().decode()
        samples = {}
        for line in text.splitlines():
            if line.startswith("gracehook_admission_requests_total{"):
                key, value = line.rsplit(" ", 1)
                samples[key[len("gracehook_admission_requests_total"):]] = float(value)
        return samples

    def calls(self, port=None):
        return sum(self.metrics(port).values())

    def admissions(self, name="gracehook"):
        """gracehook's admission log lines (JSON), as written so far."""
        found = []
        path = os.path.join(self.dir, f"{name}.log")
        for line in open(path, errors="replace") if os.path.exists(path) else []:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") == "admission":
                found.append(entry)
        return found

    def api(self):
        """A keep-alive HTTPS connection to the API server, and its headers."""
        context = ssl.create_default_context(cafile=f"{self.dir}/apiserver/ca.crt")
        conn = http.client.HTTPSConnection("127.0.0.1", self.api_port, context=context, timeout=30)
        return conn, {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}


def pod(name, annotations=None, labels=None, containers=None, grace=None):
    spec = {"containers": containers or [{"name": "web", "image": "httpd:2.4.43"}]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations or {}, "labels": labels or {}},
            "spec": spec}


SEED = {
    "gracehook.io/drain-delay": "3s",
    "gracehook.io/request-timeout": "30s",
    "gracehook.io/margin": "7s",
    "gracehook.io/drain-command": "apachectl -k graceful-stop",
}


def drain_hook(delay, command, timeout):
    """The exec command gracehook writes for a drain command (docs/plan.md)."""
    script = f"trap 'exit 0' TERM; sleep {delay}; sh -c \"$1\" & sleep {timeout} & wait $!"
    return ["sh", "-c", script, "gracehook-drain", command]


SEED_HOOK = drain_hook(3, "apachectl -k graceful-stop", 30)


def prestop(p, i=0):
    return p["spec"]["containers"][i].get("lifecycle", {}).get("preStop")


def deployment(name, annotations=None, prestop=None, grace=None):
    template = pod(name, annotations, labels={"app": name}, grace=grace)
    if prestop:
        template["spec"]["containers"][0]["lifecycle"] = {"preStop": prestop}
    del template["metadata"]["name"], template["apiVersion"], template["kind"]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": template}}


def logged(c, name, namespace, pod_name):
    """Waits for gracehook's admission line(s) for `pod_name` and returns them."""
    found = []

    def check():
        found[:] = [e for e in c.admissions(name) if e.get("namespace") == namespace
                    and e.get("name") == pod_name]
        return found
    # Log lines are written out within 200 ms.
    wait_for(f"{name}'s log line for {namespace}/{pod_name}", check, timeout=10)
    return found


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def big_deployment(name, size):
    """A Deployment of about `size` bytes: a pod template of two containers and
    a large annotation, as kubectl's last-applied-configuration makes them."""
    d = deployment(name, {"gracehook.io/drain-delay": "3s"})
    d["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox:1.36"})
    d["metadata"]["annotations"] = {"example.com/config": "x" * max(0, size - 1200)}
    return d


def audit_run(c, binary, ns, size):
    """Runs `binary audit -n ns -o json`: its time and peak RSS (MiB)."""
    started = time.perf_counter()
    proc = subprocess.Popen([binary, "audit", "-n", ns, "-o", "json"], env=c.env, stdout=subprocess.PIPE,
                            stderr=open(os.path.join(c.dir, f"audit-{size}.log"), "ab"))
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    expect(os.waitstatus_to_exitcode(status) == 0, f"{binary} audit exited {status}")
    report = json.loads(out)
    expect(report["summary"]["total"] == size, report["summary"])
    return elapsed, usage.ru_maxrss / 1024
