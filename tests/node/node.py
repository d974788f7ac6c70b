"""A real single-node Kubernetes cluster inside namespaces the suite creates.

`Host` runs in the machine's namespaces: it snapshots what the node changes
outside its namespaces (global sysctls, cgroups, mounts, network namespaces,
links, files under /run and /var), and afterwards ends leftover processes by
PID, removes the cgroups, restores the sysctls and checks that the machine is
as it was.

`Node` runs inside a new network namespace and a new, private mount
namespace (`unshare --net --mount --propagation private`, started by
tests/node/run). There it mounts tmpfs over /run, /var/lib and /var/log, so
everything containerd, libcni and the kubelet write there — hard-coded or not
(/run/containerd, /var/lib/cni, /var/lib/kubelet/device-plugins,
/var/log/containers, the pods' network namespaces under /run/netns, their
rootfs overlays and Secret volumes) — exists only in the suite's mount
namespace and disappears with it. The node's address lives on a veth pair
with both ends inside the network namespace; pods, the bridge and Service VIPs exist only
there. Nothing is sent outside it but to loopback, and no name is resolved
(the kubelet's resolvConf is empty).

The daemons: etcd, kube-apiserver, containerd (+ runc, CNI bridge,
host-local, loopback), kube-controller-manager, kube-scheduler, kubelet,
kube-proxy (iptables mode). Process handling and `wait_for` come from
tests/harness.py.
"""

import base64
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time

from harness import Processes, create_namespace, json_objects, logger, wait_for

NODE_NAME = "gracehook-node"
NODE_IP = "10.200.0.2"
NODE_GATEWAY = "10.200.0.1"  # unused: nothing answers there
POD_SUBNET = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_VIP = "10.96.0.1"
STATE = "/run/gracehook-node"  # on the suite's own tmpfs
PRIVATE_TMPFS = ("/run", "/var/lib", "/var/log")

# Every sysctl outside net/ (per network namespace) is snapshot and compared;
# the kubelet writes vm.overcommit_memory, vm.panic_on_oom, kernel.panic,
# kernel.panic_on_oops, kernel.keys.root_maxkeys and kernel.keys.root_maxbytes
# (pkg/kubelet/cm/container_manager_linux.go, setupKernelTunables). These
# change by themselves or are not settings:
VOLATILE_SYSCTLS = ("fs/dentry-state", "fs/file-nr", "fs/inode-nr", "fs/inode-state", "fs/aio-nr",
                    "fs/quota/", "fs/binfmt_misc/", "kernel/random/", "kernel/ns_last_pid", "kernel/pty/nr",
                    "kernel/tainted", "kernel/hung_task_detect_count", "vm/drop_caches", "vm/compact_memory",
                    "vm/stat_refresh", "kernel/perf_event_max_sample_rate", "dev/")
# Paths daemons on a node write to whatever their configuration says: they
# must not exist after the run if they did not before.
WATCHED_PATHS = ["/run/containerd", "/run/netns", "/run/xtables.lock", "/run/runc", "/var/lib/cni",
                 "/var/lib/kubelet", "/var/lib/containerd", "/var/log/pods", "/var/log/containers",
                 "/etc/cni/net.d", "/opt/cni", "/run/gracehook-node", "/var/run/netns", "/run/mount"]


log = logger("node")


def sh(*args, check=True, **kwargs):
    result = subprocess.run(list(args), capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def netns_inode(pid="self"):
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def pids():
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def kill_pid(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


# -- the machine, seen from outside ------------------------------------------

def cgroup_mounts():
    """Mount points of the cgroup hierarchies (v1 and v2)."""
    found = []
    with open("/proc/1/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                found.append(fields[4])
    return sorted(found)


def cgroup_dirs():
    dirs = set()
    for root in cgroup_mounts():
        for path, _subdirs, _files in os.walk(root):
            dirs.add(path)
    return dirs


def node_cgroups(dirs):
    """The kubelet's cgroups (cgroupfs driver, cgroupRoot /): `kubepods` and
    below in every hierarchy. Others may come and go with the machine's own
    work; those are never touched."""
    roots = cgroup_mounts()
    return {d for d in dirs for r in roots
            if d == f"{r}/kubepods" or d.startswith(f"{r}/kubepods/") or d.startswith(f"{r}/kubepods.slice")}


def mount_points():
    with open("/proc/1/mountinfo") as f:
        return sorted({line.split()[4] for line in f})


def sysctls():
    values = {}
    for path, _dirs, files in os.walk("/proc/sys"):
        rel = os.path.relpath(path, "/proc/sys")
        if rel == "net" or rel.startswith("net/"):
            continue  # per network namespace
        for name in files:
            key = os.path.join(rel, name) if rel != "." else name
            if key.startswith(VOLATILE_SYSCTLS):
                continue
            try:
                with open(os.path.join(path, name)) as f:
                    values[key] = f.read().strip()
            except OSError:
                pass
    return values


def links():
    return sorted(line.split(":")[1].strip().split("@")[0]
                  for line in sh("ip", "-o", "link", "show").stdout.splitlines())


class Host:
    """What the node may change outside its own namespaces, before and after."""

    def __init__(self, state_file):
        self.state_file = state_file

    def snapshot(self):
        return {
            "sysctls": sysctls(),
            "cgroups": sorted(cgroup_dirs()),
            "mounts": mount_points(),
            "paths": {p: os.path.lexists(p) for p in WATCHED_PATHS},
            "links": links(),
            "netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
        }

    def save(self, before, netns=None, pid=None):
        os.makedirs(os.path.dirname(self.state_file), exist_ok=True)
        with open(self.state_file + ".tmp", "w") as f:
            json.dump({"before": before, "netns": netns, "pid": pid}, f)
        os.replace(self.state_file + ".tmp", self.state_file)

    def load(self):
        try:
            with open(self.state_file) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def processes_in(self, netns):
        me = os.getpid()
        found = []
        for pid in pids():
            if pid == me:
                continue
            try:
                if netns_inode(pid) == netns:
                    found.append(pid)
            except OSError:
                pass
        return found

    def processes_in_cgroups(self, new_dirs):
        found = set()
        for d in new_dirs:
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    found.update(int(p) for p in f.read().split())
            except OSError:
                pass
        found.discard(os.getpid())
        return sorted(found)

    def end_processes(self, netns, before):
        """SIGKILL, by PID, whatever still runs in the node's network namespace
        or in a cgroup the node created (containers live in their pods'
        network namespaces but in the kubelet's cgroups)."""
        new_cgroups = sorted(node_cgroups(set(cgroup_dirs()) - set(before["cgroups"])))
        ended = []
        for _ in range(50):
            victims = set(self.processes_in_cgroups(new_cgroups))
            if netns:
                victims.update(self.processes_in(netns))
            victims = [p for p in victims if alive(p)]
            if not victims:
                break
            for pid in victims:
                ended.append(f"{pid} {cmdline(pid)[:80]}")
                kill_pid(pid, signal.SIGKILL)
            time.sleep(0.2)
        return ended

    def remove_cgroups(self, before):
        new = sorted(node_cgroups(set(cgroup_dirs()) - set(before["cgroups"])), key=lambda d: -d.count("/"))
        failed = []
        for d in new:
            for attempt in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if attempt == 49:
                        failed.append(f"{d}: {e}")
                    time.sleep(0.1)
        return new, failed

    def restore_sysctls(self, before):
        restored = []
        now = sysctls()
        for key, value in before["sysctls"].items():
            if now.get(key, value) != value:
                try:
                    with open(os.path.join("/proc/sys", key), "w") as f:
                        f.write(value)
                    restored.append(f"{key.replace('/', '.')} {now[key]} -> {value}")
                except OSError as e:
                    restored.append(f"{key.replace('/', '.')}: could not restore {value}: {e}")
        return restored

    def differences(self, before):
        after = self.snapshot()
        problems = []
        for key, value in before["sysctls"].items():
            if after["sysctls"].get(key, value) != value:
                problems.append(f"sysctl {key.replace('/', '.')} is {after['sysctls'][key]}, was {value}")
        for name in ("cgroups", "mounts", "links", "netns"):
            added = sorted(set(after[name]) - set(before[name]))
            removed = sorted(set(before[name]) - set(after[name]))
            if name == "cgroups":
                others = sorted(set(added + removed) - node_cgroups(added + removed))
                if others:
                    log("cgroups that changed meanwhile, not the node's: " + ", ".join(others[:5]))
                added, removed = sorted(node_cgroups(added)), sorted(node_cgroups(removed))
            if added:
                problems.append(f"new {name}: {', '.join(added[:10])}")
            if removed:
                problems.append(f"{name} gone: {', '.join(removed[:10])}")
        for path, existed in before["paths"].items():
            if os.path.lexists(path) != existed:
                problems.append(f"{path} {'exists' if not existed else 'is gone'}")
        return problems

    def restore(self, record):
        """Ends leftovers and restores what `record` (from save) says was there."""
        before, netns = record["before"], record.get("netns")
        ended = self.end_processes(netns, before)
        if ended:
            log(f"ended {len(ended)} leftover processes: " + "; ".join(ended[:8]))
        removed, failed = self.remove_cgroups(before)
        if removed:
            log(f"removed {len(removed)} cgroups the node created (e.g. {removed[-1]})")
        for line in failed:
            log("could not remove cgroup " + line)
        for line in self.restore_sysctls(before):
            log("restored sysctl " + line)
        problems = self.differences(before)
        if not problems:
            try:
                os.remove(self.state_file)
            except FileNotFoundError:
                pass
        return problems


# -- the node, from inside its namespaces ------------------------------------

class Node(Processes):
    """The daemons run in their own sessions (process groups), with `env`
    (no GRACEHOOK_*, the node's kubeconfig, a fixed PATH) unless given
    another; `stop` waits 20 s before SIGKILL."""

    def __init__(self, config):
        logs = config["logs"]  # on the host's disk: logs, certificates, configuration
        self.kubeconfig = os.path.join(logs, "admin.kubeconfig")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GRACEHOOK_")}
        self.env.update(KUBECONFIG=self.kubeconfig, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        super().__init__(logs, env=self.env, new_session=True, stop_timeout=20)
        self.bin = config["bin"]
        self.gracehook = config["gracehook"]
        self.images = config["images"]
        self.audit_log = os.path.join(self.dir, "audit.log")
        self.containerd_sock = f"{STATE}/containerd/containerd.sock"

    # -- start-up ----------------------------------------------------------
    def setup(self):
        started = time.time()
        self.private_mounts()
        self.network()
        self.write_certs_and_configs()
        self.start_etcd()
        self.start_apiserver()
        self.start_containerd()
        self.import_images()
        self.start_controllers()
        self.start_kubelet()
        self.start_kube_proxy()
        log(f"node {NODE_NAME} Ready at {NODE_IP} ({time.time() - started:.1f}s)")

    def private_mounts(self):
        # The mount namespace is private (unshare --propagation private):
        # nothing mounted here is seen outside, and it all goes with it.
        # mount(2) itself: mount(8) would create /run/mount (libmount's utab)
        # on the machine's disk before the tmpfs covers /run.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        for path in PRIVATE_TMPFS:
            if libc.mount(b"gracehook-node", path.encode(), b"tmpfs", 0, b"mode=0755,size=8g") != 0:
                raise OSError(ctypes.get_errno(), f"mount tmpfs on {path}: {os.strerror(ctypes.get_errno())}")
        os.makedirs("/run/lock", exist_ok=True)
        os.makedirs(STATE, exist_ok=True)
        # No name is looked up through the machine's resolver: inside the
        # node, /etc/resolv.conf is empty (and the kubelet's resolvConf is "").
        empty = f"{STATE}/resolv.conf"
        open(empty, "w").close()
        if os.path.exists("/etc/resolv.conf"):
            if libc.mount(empty.encode(), b"/etc/resolv.conf", None, 4096, None) != 0:  # MS_BIND
                errno = ctypes.get_errno()
                raise OSError(errno, f"bind mount over /etc/resolv.conf: {os.strerror(errno)}")

    def network(self):
        sh("ip", "link", "set", "lo", "up")
        # The node's address on one end of a veth pair whose other end, also
        # in this namespace, has no address: what is routed there is dropped.
        sh("ip", "link", "add", "node0", "type", "veth", "peer", "name", "node1")
        sh("ip", "addr", "add", f"{NODE_IP}/24", "dev", "node0")
        sh("ip", "link", "set", "node1", "up")
        sh("ip", "link", "set", "node0", "up")
        # A ClusterIP needs a route before kube-proxy's DNAT picks the pod.
        sh("ip", "route", "add", "default", "via", NODE_GATEWAY, "dev", "node0")

    def certs(self, out, service, namespace, *extra):
        args = [self.gracehook, "certs", "--out", out, "--service", service, "--namespace", namespace, "--days", "2"]
        if extra:
            args += ["--extra-names", ",".join(extra)]
        sh(*args)
        return out

    def write_certs_and_configs(self):
        d = self.dir
        self.certs(f"{d}/apiserver", "kubernetes", "default", KUBERNETES_VIP, NODE_IP, "127.0.0.1", "localhost")
        self.certs(f"{d}/sa", "service-accounts", "kube-system")
        self.ca_file = f"{d}/apiserver/ca.crt"
        users = {
            "admin": ("admin", "system:masters"),
            "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
            "kube-proxy": ("system:kube-proxy", ""),
            "kube-controller-manager": ("system:kube-controller-manager", ""),
            "kube-scheduler": ("system:kube-scheduler", ""),
        }
        lines = []
        ca = base64.b64encode(open(self.ca_file, "rb").read()).decode()
        for name, (user, group) in users.items():
            token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
            lines.append(f'{token},{user},{user},"{group}"' if group else f"{token},{user},{user}")
            with open(f"{d}/{name}.kubeconfig", "w") as f:
                json.dump({
                    "apiVersion": "v1", "kind": "Config", "current-context": "node",
                    "clusters": [{"name": "node", "cluster": {
                        "server": f"https://{NODE_IP}:6443", "certificate-authority-data": ca}}],
                    "users": [{"name": name, "user": {"token": token}}],
                    "contexts": [{"name": "node", "context": {"cluster": "node", "user": name}}],
                }, f)
        with open(f"{d}/tokens.csv", "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(f"{d}/audit-policy.yaml", "w") as f:
            f.write("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n"
                    "- level: Metadata\n  resources:\n  - group: \"\"\n    resources: [\"pods\"]\n"
                    "- level: None\n")

    def start_etcd(self):
        self.spawn("etcd", [
            f"{self.bin}/etcd", "--data-dir", f"{STATE}/etcd", "--name", "node",
            "--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
            "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "node=http://127.0.0.1:2380", "--listen-metrics-urls", "http://127.0.0.1:2381",
            "--unsafe-no-fsync", "--log-level", "warn",
        ])

    def start_apiserver(self):
        d = self.dir
        self.spawn("kube-apiserver", [
            f"{self.bin}/kube-apiserver",
            "--etcd-servers=http://127.0.0.1:2379",
            "--bind-address=0.0.0.0", f"--advertise-address={NODE_IP}", "--secure-port=6443",
            f"--tls-cert-file={d}/apiserver/tls.crt", f"--tls-private-key-file={d}/apiserver/tls.key",
            f"--cert-dir={d}/apiserver-certs",
            f"--token-auth-file={d}/tokens.csv",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={d}/sa/tls.crt",
            f"--service-account-signing-key-file={d}/sa/tls.key",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--audit-policy-file={d}/audit-policy.yaml", f"--audit-log-path={self.audit_log}",
            "--audit-log-mode=blocking",
            "--v=1",
        ])

        def ready():
            self.check_running()
            return self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0
        wait_for("kube-apiserver /readyz", ready, timeout=120, interval=0.5)
        wait_for("the default namespaces", lambda: self.kubectl(
            "get", "namespace", "kube-system", check=False).returncode == 0)

    def start_containerd(self):
        c = f"{STATE}/containerd"
        os.makedirs(f"{STATE}/cni/net.d", exist_ok=True)
        with open(f"{STATE}/cni/net.d/10-gracehook-node.conflist", "w") as f:
            json.dump({
                "cniVersion": "1.0.0", "name": "gracehook-node",
                "plugins": [{
                    "type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                             "routes": [{"dst": "0.0.0.0/0"}], "dataDir": f"{STATE}/cni/ipam"},
                }],
            }, f)
        config = f"""version = 2
root = "{c}/root"
state = "{c}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.containerd_sock}"
[ttrpc]
  address = "{c}/containerd.sock.ttrpc"
[debug]
  address = "{c}/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.images['pause'][0]}"
  # Root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{STATE}/cni/net.d"
"""
        os.makedirs(c, exist_ok=True)
        with open(f"{c}/config.toml", "w") as f:
            f.write(config)
        self.spawn("containerd", ["containerd", "--config", f"{c}/config.toml", "--log-level", "info"])
        wait_for("containerd", lambda: self.check_running() or (
            os.path.exists(self.containerd_sock) and self.ctr("version", check=False).returncode == 0), timeout=30)

    def ctr(self, *args, check=True, timeout=120):
        return sh("ctr", "--address", self.containerd_sock, "-n", "k8s.io", *args, check=check, timeout=timeout)

    def import_images(self):
        for name, (ref, path) in self.images.items():
            self.ctr("images", "import", path)
            out = self.ctr("images", "ls", "-q").stdout.split()
            if ref not in out:
                raise AssertionError(f"{ref} not in containerd after import: {out}")
        log("images imported: " + ", ".join(ref for ref, _ in self.images.values()))

    def start_controllers(self):
        d = self.dir
        self.spawn("kube-controller-manager", [
            f"{self.bin}/kube-controller-manager",
            f"--kubeconfig={d}/kube-controller-manager.kubeconfig",
            "--controllers=*", "--secure-port=0", "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={d}/sa/tls.key", f"--root-ca-file={self.ca_file}",
            f"--cluster-cidr={CLUSTER_CIDR}", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allocate-node-cidrs=false", "--cluster-name=gracehook-node",
            "--v=1",
        ])
        self.spawn("kube-scheduler", [
            f"{self.bin}/kube-scheduler", f"--kubeconfig={d}/kube-scheduler.kubeconfig",
            "--secure-port=0", "--leader-elect=false", "--v=1",
        ])

    def start_kubelet(self):
        d = self.dir
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "failCgroupV1": False, "cgroupDriver": "cgroupfs", "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_sock}",
            "address": NODE_IP, "port": 10250, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            # No DNS for pods: no name is ever looked up through the machine's resolver.
            "resolvConf": "",
            "oomScoreAdj": 0,
            "registerNode": True,
            # Local images only: never garbage-collected, never evicted for disk.
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                             "nodefs.inodesFree": "1%"},
            "shutdownGracePeriod": "0s",
            "serializeImagePulls": False,
            "maxPods": 110,
        }
        with open(f"{d}/kubelet-config.json", "w") as f:
            json.dump(config, f)
        self.spawn("kubelet", [
            f"{self.bin}/kubelet", f"--config={d}/kubelet-config.json",
            f"--kubeconfig={d}/kubelet.kubeconfig", f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}", "--root-dir=/var/lib/kubelet", "--v=1",
        ])

        def ready():
            self.check_running()
            node = json.loads(self.kubectl("get", "node", NODE_NAME, "-o", "json").stdout)
            return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
        wait_for(f"node {NODE_NAME} Ready", ready, timeout=120, interval=0.5)

    def start_kube_proxy(self):
        d = self.dir
        with open(f"{d}/kube-proxy-config.json", "w") as f:
            json.dump({
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                "clientConnection": {"kubeconfig": f"{d}/kube-proxy.kubeconfig"},
                "mode": "iptables", "clusterCIDR": CLUSTER_CIDR, "hostnameOverride": NODE_NAME,
                "bindAddress": "0.0.0.0", "healthzBindAddress": "127.0.0.1:10256",
                "metricsBindAddress": "127.0.0.1:10249",
                # Global conntrack sysctls are the machine's: leave them alone.
                "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                              "tcpCloseWaitTimeout": "0s"},
                "oomScoreAdj": 0,
            }, f)
        self.spawn("kube-proxy", [f"{self.bin}/kube-proxy", f"--config={d}/kube-proxy-config.json", "--v=1"])

        def kubernetes_service():
            self.check_running()
            return "KUBE-SVC" in sh("iptables-save", "-t", "nat").stdout
        wait_for("kube-proxy's rules", kubernetes_service, timeout=60, interval=0.5)

    # -- teardown ----------------------------------------------------------
    def teardown(self):
        """Stops everything by PID, containers first (through the kubelet's
        cgroups), so that the namespaces die with this process."""
        if os.path.isdir("/var/log/pods"):  # on the private tmpfs: keep a copy with the other logs
            shutil.copytree("/var/log/pods", os.path.join(self.dir, "pods"), symlinks=True, dirs_exist_ok=True)
        for name in ("kube-proxy", "kube-scheduler", "kube-controller-manager", "kubelet"):
            self.stop(name)
        netns = netns_inode()
        host = Host("")
        kubepods = sorted(node_cgroups(cgroup_dirs()))
        for _ in range(50):
            victims = [p for p in host.processes_in_cgroups(kubepods) if alive(p)]
            if not victims:
                break
            for pid in victims:
                kill_pid(pid, signal.SIGKILL)
            time.sleep(0.1)
        for name in ("containerd", "kube-apiserver", "etcd"):
            self.stop(name)
        # containerd's shims outlive containerd; they are in this network namespace.
        for _ in range(50):
            victims = [p for p in host.processes_in(netns) if alive(p) and p != os.getpid()]
            if not victims:
                break
            for pid in victims:
                kill_pid(pid, signal.SIGKILL)
            time.sleep(0.1)
        removed, failed = host.remove_cgroups({"cgroups": []})
        for line in failed:
            log("could not remove cgroup " + line)

    # -- helpers -----------------------------------------------------------
    def kubectl(self, *args, input=None, check=True, timeout=120):
        result = subprocess.run([f"{self.bin}/kubectl", *args], input=input, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def get(self, *args):
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def apply(self, obj, *flags):
        return self.kubectl("apply", *flags, "-f", "-", input=json.dumps(obj))

    def namespace(self, name, mode=None, **annotations):
        create_namespace(self.kubectl, name, mode, **annotations)
        wait_for(f"the default ServiceAccount in {name}", lambda: self.kubectl(
            "get", "serviceaccount", "default", "-n", name, check=False).returncode == 0, timeout=30)
        return name

    def to_objects(self, yaml_text):
        """YAML documents as JSON objects, converted by kubectl (no YAML library needed)."""
        return json_objects(self.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                         input=yaml_text).stdout)

    def events(self, namespace, reason=None):
        items = self.get("events", "-n", namespace)["items"]
        return [e for e in items if reason is None or e.get("reason") == reason]

    def audit_events(self):
        events = []
        with open(self.audit_log) as f:
            for line in f:
                try:
                    events.append(json.loads(line))
                except ValueError:
                    pass
        return events
