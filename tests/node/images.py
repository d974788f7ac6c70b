"""Local container images for the node suite, without Docker or a registry.

Each image is an OCI image-layout tarball (oci-layout, index.json with the
`io.containerd.image.name` annotation, one uncompressed layer, config,
manifest) that `ctr -n k8s.io images import` loads into containerd; pods use
them with `imagePullPolicy: Never` (or `IfNotPresent`, as gracehook's own
manifests say). The layers are reproducible: sorted entries, owner root,
fixed mtime.

- pause:     the sandbox image (containerd's `sandbox_image`): programs/pause.c,
             built with `gcc -static`.
- web:       Apache httpd from the host's Debian `apache2` package (prefork,
             mod_cgi), dash, coreutils and the shared libraries they need (found
             with ldd), plus /usr/lib/cgi-bin/slow (a request that takes
             ?N seconds), /usr/lib/cgi-bin/host (the pod's name) and
             /usr/local/bin/tracer (programs/tracer.c).
- nginx:     nginx from the host's Debian `nginx` package (a master and two
             workers, `daemon off;`: the master is the container's PID 1),
             dash and coreutils (the preStop hook's `sh` and `sleep`), the
             libraries ldd finds; /index.html, /slow (a static file sent with
             `limit_rate`: about 4 seconds, its last line `end`) and /host.
- nginx-quit: the nginx image with the Docker official image's `STOPSIGNAL
             SIGQUIT` (containerd stops it with SIGQUIT, nginx's graceful
             shutdown, which drains until the grace period's SIGKILL) and
             /slow16 (the same file at 2.7 kB a second: 16 seconds).
- proxy:     a stand-in mesh proxy, programs/proxy.c built with `gcc -static`
             (alone in the image, /usr/local/bin/proxy, USER 1337:1337 as
             Istio's): `proxy LISTEN UPSTREAM DRAIN_SECONDS` forwards TCP
             from 0.0.0.0:LISTEN to 127.0.0.1:UPSTREAM and, on SIGTERM, keeps
             accepting for DRAIN_SECONDS, then exits 0 cutting what is open
             (Envoy under pilot-agent; its header says what it does not do).
             The pods name its container `istio-proxy`.
- gracehook: exactly what the Dockerfile builds: an empty image with the static
             binary at /gracehook, USER 65532:65532, ENTRYPOINT ["/gracehook"],
             CMD ["serve"], ports 8443 and 9090.

pause, web, nginx, nginx-quit and proxy are cached under the cache directory, keyed by this
file, the C sources and the versions of the Debian packages they copy from.

Standalone: python3 tests/node/images.py OUTDIR [GRACEHOOK_BINARY]
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
if __name__ == "__main__":  # standalone: tests/, for harness
    sys.path.insert(0, os.path.dirname(HERE))
from harness import logger  # noqa: E402

PROGRAMS = os.path.join(HERE, "programs")
MTIME = 946684800  # 2000-01-01: fixed, so layers are byte-for-byte reproducible
PREFIX = "gracehook.local"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Apache modules loaded in the web image (Debian's mods-available names).
APACHE_MODULES = ["mpm_prefork", "authz_core", "authz_host", "access_compat", "alias", "cgi",
                  "dir", "env", "mime", "setenvif", "reqtimeout", "status", "filter"]
APACHE_CONFS = ["charset", "security", "serve-cgi-bin"]
PACKAGES = ["apache2", "apache2-bin", "apache2-data", "dash", "coreutils", "libc6",
            "libapr1", "libaprutil1", "media-types", "nginx", "nginx-common"]


log = logger("images")


# -- layers ----------------------------------------------------------------

class Tree:
    """A root filesystem: path -> (kind, mode, uid, gid, data)."""

    def __init__(self):
        self.entries = {}

    def _parents(self, path):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self.entries:
                self.entries[parent] = ("dir", 0o755, 0, 0, None)

    def dir(self, path, mode=0o755, uid=0, gid=0):
        self._parents(path)
        self.entries[path.strip("/")] = ("dir", mode, uid, gid, None)

    def file(self, path, data, mode=0o644, uid=0, gid=0):
        if isinstance(data, str):
            data = data.encode()
        self._parents(path)
        self.entries[path.strip("/")] = ("file", mode, uid, gid, data)

    def copy(self, host_path, path=None, mode=None):
        with open(host_path, "rb") as f:
            data = f.read()
        self.file(path or host_path, data, mode if mode is not None else os.stat(host_path).st_mode & 0o7777)

    def link(self, path, target):
        self._parents(path)
        self.entries[path.strip("/")] = ("link", 0o777, 0, 0, target)

    def tar(self):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted(self.entries):
                kind, mode, uid, gid, data = self.entries[path]
                info = tarfile.TarInfo(path)
                info.mtime, info.mode, info.uid, info.gid = MTIME, mode, uid, gid
                info.uname = info.gname = ""
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif kind == "link":
                    info.type, info.linkname = tarfile.SYMTYPE, data
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return out.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_archive(out, ref, tree, config, created_by):
    """Writes an OCI image-layout tarball of one layer to `out`."""
    layer = tree.tar()
    image_config = {
        "created": "2000-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
        "history": [{"created": "2000-01-01T00:00:00Z", "created_by": created_by}],
    }
    config_blob = json.dumps(image_config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config_blob), "size": len(config_blob)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer), "size": len(layer)}],
    }
    manifest_blob = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    index = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(manifest_blob), "size": len(manifest_blob),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": ref,
                            "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]},
        }],
    }
    archive = Tree()
    archive.file("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}))
    archive.file("index.json", json.dumps(index, sort_keys=True))
    for blob in (layer, config_blob, manifest_blob):
        archive.file("blobs/sha256/" + sha256(blob)[7:], blob)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(archive.tar())
    os.replace(tmp, out)
    return out


# -- programs and host files -------------------------------------------------

def static_program(name, out_dir):
    out = os.path.join(out_dir, name)
    subprocess.run(["gcc", "-static", "-Os", "-Wall", "-Wextra", "-Werror", "-o", out,
                    os.path.join(PROGRAMS, name + ".c")], check=True)
    subprocess.run(["strip", out], check=True)
    return out


def ldd(paths):
    """The shared libraries (host paths) the ELF files in `paths` load."""
    libs = set()
    for path in paths:
        result = subprocess.run(["ldd", path], capture_output=True, text=True)
        if result.returncode != 0:
            continue  # a script, or static
        for line in result.stdout.splitlines():
            line = line.strip()
            target = line.split("=>", 1)[1].strip() if "=>" in line else line
            target = target.split(" (", 1)[0].strip()
            if target.startswith("/"):
                libs.add(target)
    return sorted(libs)


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def package_files(package):
    out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    return [p for p in out.splitlines() if os.path.isfile(p) and not os.path.islink(p)]


def package_versions():
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", *PACKAGES],
                         capture_output=True, text=True).stdout
    return out


def in_image(host_path):
    """The path of a host file in a usr-merged image (/lib/x -> /usr/lib/x)."""
    directory = os.path.realpath(os.path.dirname(host_path))
    return os.path.join(directory, os.path.basename(host_path))


SLOW_CGI = """#!/bin/sh
# /cgi-bin/slow?N: a request that takes N seconds. The body's last line
# (`end`) tells a complete response from one cut short.
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "begin ${QUERY_STRING:-0}"
/usr/bin/sleep "${QUERY_STRING:-0}"
echo "end"
"""

HOST_CGI = """#!/bin/sh
# /cgi-bin/host: which pod answered.
printf 'Content-Type: text/plain\\r\\n\\r\\n'
/usr/bin/cat /etc/hostname
"""

FOREGROUND = """#!/bin/sh
# Apache in the foreground as the container's PID 1, Debian style: the
# environment from /etc/apache2/envvars, as apache2ctl loads it.
. /etc/apache2/envvars
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" "$APACHE_LOG_DIR"
exec /usr/sbin/apache2 -DFOREGROUND "$@"
"""

APACHE_CONF = """# The node suite's settings on top of Debian's configuration.
ServerName web
ErrorLog /proc/self/fd/2
"""


def base_tree():
    """What both server images share: a usr-merged root with dash as `sh`
    and coreutils (the preStop hook's shell and `sleep`), users root,
    www-data and nobody. Returns the tree and the ELF files copied so far
    (their libraries are added by `add_libraries`)."""
    t = Tree()
    for top in ("bin", "sbin", "lib", "lib64"):
        t.link(top, "usr/" + top)
    for d in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "usr/local/bin", "etc", "root", "run/lock",
              "var/www/html", "proc", "sys", "dev"):
        t.dir(d)
    t.dir("tmp", 0o1777)
    t.link("var/run", "../run")
    t.link("var/lock", "../run/lock")
    elves = []
    for path in ["/usr/bin/dash"] + package_files("coreutils"):
        if path.startswith(("/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/")):
            t.copy(path, in_image(path))
            elves.append(path)
    t.link("usr/bin/sh", "dash")
    t.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
                         "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    t.file("etc/group", "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n")
    t.file("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n")
    t.file("var/www/html/index.html", "ok\n")
    return t, elves


def add_libraries(t, elves):
    libs = ldd(elves)
    gcc_s = "/lib/x86_64-linux-gnu/libgcc_s.so.1"  # glibc dlopens it for thread cancellation
    if os.path.exists(gcc_s):
        libs.append(gcc_s)
    for lib in libs:
        with open(os.path.realpath(lib), "rb") as f:
            t.file(in_image(lib), f.read(), 0o755)
    return t


def web_tree(tracer):
    t, elves = base_tree()
    # Apache: the binary, apache2ctl, the enabled modules and Debian's configuration.
    t.copy("/usr/sbin/apache2", "/usr/sbin/apache2")
    t.copy("/usr/sbin/apache2ctl", "/usr/sbin/apache2ctl")
    t.link("usr/sbin/apachectl", "apache2ctl")
    elves.append("/usr/sbin/apache2")
    for name in ("apache2.conf", "envvars", "ports.conf", "magic", "sites-available/000-default.conf"):
        t.copy(f"/etc/apache2/{name}", f"/etc/apache2/{name}")
    t.link("etc/apache2/sites-enabled/000-default.conf", "../sites-available/000-default.conf")
    for mod in APACHE_MODULES:
        for ext in ("load", "conf"):
            src = f"/etc/apache2/mods-available/{mod}.{ext}"
            if os.path.exists(src):
                t.copy(src)
                t.link(f"etc/apache2/mods-enabled/{mod}.{ext}", f"../mods-available/{mod}.{ext}")
        so = f"/usr/lib/apache2/modules/mod_{mod}.so"
        if os.path.exists(so):
            t.copy(so)
            elves.append(so)
    for conf in APACHE_CONFS:
        t.copy(f"/etc/apache2/conf-available/{conf}.conf")
        t.link(f"etc/apache2/conf-enabled/{conf}.conf", f"../conf-available/{conf}.conf")
    t.file("etc/apache2/conf-available/zz-node-suite.conf", APACHE_CONF)
    t.link("etc/apache2/conf-enabled/zz-node-suite.conf", "../conf-available/zz-node-suite.conf")
    t.dir("var/log/apache2", 0o750)
    t.link("var/log/apache2/error.log", "/proc/self/fd/2")
    t.link("var/log/apache2/access.log", "/proc/self/fd/1")
    t.link("var/log/apache2/other_vhosts_access.log", "/proc/self/fd/1")
    t.dir("run/apache2")
    t.dir("run/lock/apache2", 0o755, 33, 33)
    if os.path.exists("/etc/mime.types"):
        t.copy("/etc/mime.types")
    else:
        t.file("etc/mime.types", "text/plain txt\n")
    t.file("usr/lib/cgi-bin/slow", SLOW_CGI, 0o755)
    t.file("usr/lib/cgi-bin/host", HOST_CGI, 0o755)
    t.file("usr/local/bin/apache2-foreground", FOREGROUND, 0o755)
    t.copy(tracer, "/usr/local/bin/tracer", 0o755)
    return add_libraries(t, elves)


# nginx as people run it in a container: in the foreground, so the master is
# PID 1; `nginx -s quit` (SIGQUIT) drains, SIGTERM (the kubelet's default stop
# signal; this image, like Debian's package, sets no STOPSIGNAL) stops at once.
NGINX_CONF = """# The node suite's nginx (tests/node/images.py).
user www-data;
worker_processes 2;
daemon off;
pid /run/nginx.pid;
# notice: the signals the master receives and its workers' exits, in the pod's log.
error_log stderr notice;
events {
    worker_connections 512;
}
http {
    include /etc/nginx/mime.types;
    default_type text/plain;
    access_log off;
    server_tokens off;
    server {
        listen 80;
        root /var/www/html;
        location = /host {
            return 200 "$hostname\\n";
        }
        # A response that takes about 4 s whatever serves it: nginx sends
        # its first second's worth at once, then 10 kB a second.
        location = /slow {
            limit_rate 10k;
        }
    }
}
"""


def slow_body():
    """/slow: 43,754 bytes whose last line is `end`, so that the load
    generator tells a complete response from one cut short (as Apache's
    /cgi-bin/slow)."""
    lines = "".join(f"{i:07d} slow response line, padding to sixty-four bytes..............\n" for i in range(625))
    return lines + "end\n"


# nginx-quit's one addition: a request that outlasts a scaled request timeout
# (6 s) and margin (2 s) with room to spare.
SLOW16 = """        # About 16 s: the same file at 2.7 kB a second.
        location = /slow16 {
            alias /var/www/html/slow;
            limit_rate 2700;
        }
"""


def nginx_tree(conf=NGINX_CONF):
    t, elves = base_tree()
    t.copy("/usr/sbin/nginx", "/usr/sbin/nginx")
    elves.append("/usr/sbin/nginx")
    t.file("etc/nginx/nginx.conf", conf)
    t.copy("/etc/nginx/mime.types", "/etc/nginx/mime.types")
    # The temporary paths compiled in (--http-*-temp-path=/var/lib/nginx/*):
    # nginx creates them at start, under a parent that must exist.
    t.dir("var/lib/nginx")
    t.dir("var/log/nginx")
    t.file("var/www/html/slow", slow_body())
    return add_libraries(t, elves)


# -- the images --------------------------------------------------------------

def cache_key():
    h = hashlib.sha256()
    for path in [os.path.abspath(__file__)] + sorted(
            os.path.join(PROGRAMS, p) for p in os.listdir(PROGRAMS)):
        with open(path, "rb") as f:
            h.update(path.encode() + b"\0" + f.read())
    h.update(package_versions().encode())
    return h.hexdigest()[:16]


def build_cached(cache_dir):
    """pause, web, nginx, nginx-quit and proxy images, from the cache when their inputs have not changed."""
    key = cache_key()
    out_dir = os.path.join(cache_dir, f"node-images-{key}")
    images = {name: (f"{PREFIX}/{name}:{key}", os.path.join(out_dir, f"{name}.tar"))
              for name in ("pause", "web", "nginx", "nginx-quit", "proxy")}
    if all(os.path.exists(path) for _, path in images.values()):
        log(f"using cached images in {out_dir}")
        return images
    log(f"building the pause, web, nginx, nginx-quit and proxy images into {out_dir}")
    os.makedirs(out_dir, exist_ok=True)
    pause = static_program("pause", out_dir)
    tracer = static_program("tracer", out_dir)
    proxy = static_program("proxy", out_dir)
    t = Tree()
    t.copy(pause, "/pause", 0o755)
    oci_archive(images["pause"][1], images["pause"][0], t,
                {"Entrypoint": ["/pause"], "User": "65535:65535"}, "programs/pause.c")
    oci_archive(images["web"][1], images["web"][0], web_tree(tracer),
                {"Env": [f"PATH={PATH}"], "Cmd": ["/usr/local/bin/apache2-foreground"],
                 "ExposedPorts": {"80/tcp": {}}, "WorkingDir": "/"},
                "Debian apache2 " + package_versions().replace("\n", "; "))
    oci_archive(images["nginx"][1], images["nginx"][0], nginx_tree(),
                {"Env": [f"PATH={PATH}"], "Cmd": ["/usr/sbin/nginx"],
                 "ExposedPorts": {"80/tcp": {}}, "WorkingDir": "/"},
                "Debian nginx " + package_versions().replace("\n", "; "))
    quit_conf = NGINX_CONF.replace("        location = /slow {", SLOW16 + "        location = /slow {")
    assert quit_conf != NGINX_CONF
    oci_archive(images["nginx-quit"][1], images["nginx-quit"][0], nginx_tree(quit_conf),
                {"Env": [f"PATH={PATH}"], "Cmd": ["/usr/sbin/nginx"], "StopSignal": "SIGQUIT",
                 "ExposedPorts": {"80/tcp": {}}, "WorkingDir": "/"},
                "Debian nginx, STOPSIGNAL SIGQUIT " + package_versions().replace("\n", "; "))
    t = Tree()
    t.copy(proxy, "/usr/local/bin/proxy", 0o755)
    t.dir("tmp", 0o1777)
    oci_archive(images["proxy"][1], images["proxy"][0], t,
                {"Entrypoint": ["/usr/local/bin/proxy"], "Cmd": ["8080", "80", "5"], "User": "1337:1337",
                 "ExposedPorts": {"8080/tcp": {}}, "WorkingDir": "/"}, "programs/proxy.c")
    return images


def gracehook_image(binary, out_dir):
    """The Dockerfile's image: FROM scratch, COPY the static binary to /gracehook,
    USER 65532:65532, EXPOSE 8443 9090, ENTRYPOINT ["/gracehook"], CMD ["serve"]."""
    with open(binary, "rb") as f:
        data = f.read()
    tag = hashlib.sha256(data).hexdigest()[:16]
    ref = f"{PREFIX}/gracehook:{tag}"
    t = Tree()
    t.file("gracehook", data, 0o755)
    config = {"User": "65532:65532", "ExposedPorts": {"8443/tcp": {}, "9090/tcp": {}},
              "Entrypoint": ["/gracehook"], "Cmd": ["serve"], "Env": [f"PATH={PATH}"]}
    return ref, oci_archive(os.path.join(out_dir, "gracehook.tar"), ref, t, config,
                            "COPY --from=build /out/gracehook /gracehook")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    images = build_cached(sys.argv[1])
    if len(sys.argv) > 2:
        images["gracehook"] = gracehook_image(sys.argv[2], sys.argv[1])
    for name, (ref, path) in images.items():
        print(name, ref, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
