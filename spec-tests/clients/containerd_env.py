"""A private containerd for the client spec-test: installed from Debian, configured under a tmp dir,
fed an OCI image built here from the busybox rootfs, and stopped by its pid.

Everything lives under one directory (root, state, sockets, runc root, fifos) so the test can prove
nothing was left behind, and so the host's /var/lib/containerd and /run/containerd stay untouched,
except the shim sockets containerd 1.6 always puts in /run/containerd/s: they go as the shims exit,
and the directory with them if this daemon made it.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

PACKAGES = ["containerd"]  # brings runc (a Depends) and ctr
IMAGE = "docker.io/library/pyrunc-busybox:test"
PR_SET_CHILD_SUBREAPER = 36
NAMESPACE = "ctr-spec-test"  # no "pyrunc" in mount paths: conftest's leak check greps for it

# Everything CRI, network or exotic-snapshotter related: the test needs content, images, snapshots
# (native), containers and tasks (runc v2 shim), and nothing that looks at the network.
DISABLED_PLUGINS = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.internal.v1.opt",
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
]


def ensure_installed() -> str | None:
    """Installs containerd with apt-get unless present; returns why it cannot be had, or None."""
    if shutil.which("containerd") and shutil.which("ctr") and shutil.which("containerd-shim-runc-v2"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:  # a stale package list is the usual cause: refresh once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0 or not shutil.which("ctr"):
        return f"apt-get install {' '.join(PACKAGES)} failed: {p.stderr.strip()[-300:]}"
    return None


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def _layer(rootfs: Path) -> bytes:
    """An uncompressed tar of the rootfs, owned by root, entries relative ("bin/sh"), as images are."""
    buf = io.BytesIO()

    def root_owned(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(rootfs)):
            tar.add(rootfs / entry, arcname=entry, filter=root_owned)
    return buf.getvalue()


def build_oci_archive(rootfs: Path, dest: Path) -> Path:
    """An OCI image layout tarball (oci-layout, index.json, blobs/sha256/...) with one gzipped layer."""
    layout = dest.with_suffix(".d")
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    raw = _layer(rootfs)
    layer_digest, layer_size = _blob(blobs, gzip.compress(raw, mtime=0))
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
        "history": [{"created_by": "pyrunc spec-tests"}],
    }
    cfg_digest, cfg_size = _blob(blobs, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cfg_digest, "size": cfg_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer_size}],
    }
    man_digest, man_size = _blob(blobs, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": man_digest, "size": man_size,
                       "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"io.containerd.image.name": IMAGE,
                                       "org.opencontainers.image.ref.name": "test"}}],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    with tarfile.open(dest, "w") as tar:
        for entry in ("oci-layout", "index.json", "blobs"):
            tar.add(layout / entry, arcname=entry)
    shutil.rmtree(layout)
    return dest


class Containerd:
    """One daemon with its own config; `ctr(...)` talks to it in the test namespace."""

    def __init__(self, base: Path):
        self.base = base
        self.root = base / "root"
        self.state = base / "state"
        self.sock = base / "c.sock"
        self.runc_root = base / "runc-root"
        self.log = base / "containerd.log"
        self.fifo_dir = base / "fifo"
        self.proc: subprocess.Popen | None = None
        # containerd 1.6 always puts shim sockets in /run/containerd/s: remove it after us if we made it
        self.made_run_dirs = [d for d in ("/run/containerd/s", "/run/containerd") if not os.path.exists(d)]

    def config(self) -> str:
        q = json.dumps  # TOML basic strings accept JSON string syntax
        return "\n".join([
            "version = 2",
            f"root = {q(str(self.root))}",
            f"state = {q(str(self.state))}",
            f"disabled_plugins = {json.dumps(DISABLED_PLUGINS)}",
            "[grpc]", f"  address = {q(str(self.sock))}",
            "[ttrpc]", f"  address = {q(str(self.sock) + '.ttrpc')}",
            "[debug]", '  address = ""', '  level = "debug"',
            "[metrics]", '  address = ""', "",
        ])

    def write_runc_on_path(self, runtime: str) -> Path:
        """A `runc` first on the daemon's PATH that is `runtime`, for what ctr runs without runtime
        options (with --uidmap or --no-pivot, ctr 1.6 replaces the options that carry --runc-binary):
        the shim then calls "runc" from PATH with --root /run/containerd/runc/NS, which the wrapper
        moves into our own runc root, and logs each call to prove who ran."""
        bindir = self.base / "bin"
        bindir.mkdir(parents=True, exist_ok=True)
        wrapper = bindir / "runc"
        wrapper.write_text(f"""#!/bin/sh
echo "$*" >> {self.base}/runc-on-path.log
prev=
first=1
for a in "$@"; do
    [ $first = 1 ] && set -- && first=0
    if [ "$prev" = --root ]; then set -- "$@" "{self.runc_root}/${{a##*/}}"; else set -- "$@" "$a"; fi
    prev=$a
done
exec {runtime} "$@"
""")
        wrapper.chmod(0o755)
        return bindir

    def start(self, runc_on_path: str | None = None) -> None:
        # The shims daemonize; as a subreaper we inherit them instead of a pid 1 that may not reap
        # (this VM's does not), and reap them in stop(). Cleared there: other tests keep pid 1.
        from pyrunc.linux.syscalls import prctl
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.base.mkdir(parents=True, exist_ok=True)
        self.runc_root.mkdir(exist_ok=True)
        cfg = self.base / "config.toml"
        cfg.write_text(self.config())
        env = dict(os.environ)
        if runc_on_path:
            env["PATH"] = f"{self.write_runc_on_path(runc_on_path)}:{env.get('PATH', '/usr/bin:/bin')}"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["containerd", "--config", str(cfg)], stdin=subprocess.DEVNULL, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited {self.proc.returncode}: "
                                   f"{self.log.read_text()[-2000:]}")
            if self.sock.exists() and self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"containerd did not come up: {self.log.read_text()[-2000:]}")

    def ctr(self, *args: str, check: bool = True, timeout: float = 60, **kw
            ) -> subprocess.CompletedProcess:
        kw.setdefault("stdin", subprocess.DEVNULL)
        if "stdout" not in kw:
            kw["capture_output"] = True
        p = subprocess.run(["ctr", "-a", str(self.sock), "-n", NAMESPACE, *args], text=True,
                           timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def shim_pids(self) -> list[int]:
        """Shims we caused: their command line names our daemon's socket."""
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and str(self.sock).encode() in cmd:
                pids.append(int(d))
        return pids

    def stop(self) -> None:
        """SIGTERM then SIGKILL by pid: the daemon, then any shim that outlived its tasks."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.shim_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap_shims()
        for d in self.made_run_dirs:
            try:
                os.rmdir(d)
            except OSError:
                pass  # not empty: someone else's containerd uses it now
        from pyrunc.linux.syscalls import prctl
        prctl(PR_SET_CHILD_SUBREAPER, 0)

    @staticmethod
    def _reap_shims(timeout: float = 5) -> None:
        """waitpid on our shim children only: a blanket waitpid(-1) could steal a Popen's status."""
        deadline = time.monotonic() + timeout
        me = str(os.getpid())
        while True:
            shims = []
            for d in os.listdir("/proc"):
                try:
                    stat = Path(f"/proc/{d}/stat").read_text() if d.isdigit() else ""
                except OSError:
                    continue
                if stat and "(containerd-shim" in stat and stat[stat.rindex(")") + 2:].split()[1] == me:
                    shims.append(int(d))
            for pid in shims:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            if not shims or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def mounts_under_base(self) -> list[str]:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        return [m for m in points if m.startswith(str(self.base))]

    def unmount_all(self) -> None:
        for m in sorted(self.mounts_under_base(), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)


def run_in_pty(argv: list[str], timeout: float = 30) -> tuple[str, int]:
    """ctr -t insists its own stdio is a console: give it a pty and collect what it writes there."""
    import select
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None and not select.select([master], [], [], 0.2)[0]:
                    break
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every slave fd is closed
                break
            if not data:
                break
            out += data
        else:
            proc.kill()
        rc = proc.wait(timeout=10)
    finally:
        os.close(master)
    return out.decode(errors="replace"), rc
