"""A private podman for the client tests: installed from Debian, configured under one directory.

Everything podman keeps (image store, run root, tmpdir with its locks and exit files, events log,
network and volume dirs, its configuration) lives under `base`, and every container goes into one
cgroup parent of our own, so the host's podman defaults are never read or written and teardown can
check that nothing is left.

Two settings are forced by this machine, not by pyrunc (runc fails the same way without them):
- podman asks for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576 when running as root, and the bounding
  set lacks CAP_SYS_RESOURCE, so the runtime cannot raise the hard limits that far. podman itself
  runs with nproc capped at 32768 (it lowers its own limit), so the defaults below stay inside
  what podman's children, conmon and the runtime, actually have.
- The runtime state root stays pyrunc's default (/run/pyrunc): podman 4.3 leaves `--runtime-flag`
  out of the exit command conmon runs when a container stops, so with a private `--root` the
  cleanup's `delete` looks in the wrong place and state dirs leak (runc leaks them too). The tests
  check instead that no state dir of any container they made is left there.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

PACKAGES = ["podman"]  # pulls conmon, golang-github-containers-common, containernetworking-plugins
IMAGE = "localhost/pyrunc-busybox:latest"
STATE_ROOT = Path("/run/pyrunc")


def ensure_installed() -> str | None:
    """Install podman from Debian when missing; the reason it could not be, or None."""
    if shutil.which("podman") and (shutil.which("conmon") or os.path.exists("/usr/bin/conmon")):
        return None
    if not shutil.which("apt-get"):
        return "podman is not installed and there is no apt-get"
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
           "-o", "DPkg::Lock::Timeout=300", *PACKAGES]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        # Package lists may be missing on a fresh image: refresh once and retry.
        subprocess.run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"],
                       capture_output=True, env=env, timeout=600)
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0 or not shutil.which("podman"):
        return f"cannot install podman: {(p.stderr or p.stdout).strip()[-300:]}"
    return None


def _limit_pair(res: int, cap: int) -> str:
    soft, hard = resource.getrlimit(res)
    hard = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    soft = hard if soft == resource.RLIM_INFINITY else min(soft, hard)
    return f"{soft}:{hard}"


def _conmon_env() -> str:
    """podman starts conmon, and so the runtime, with PATH only: pass on a PYTHONPATH the tests
    run under, so that podman's pyrunc is the same code as the tests' own."""
    if not os.environ.get("PYTHONPATH"):
        return ""
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return f'conmon_env_vars = ["PATH={path}", "PYTHONPATH={os.environ["PYTHONPATH"]}"]\n'


class Podman:
    """Runs podman with a private configuration and remembers what the tests made."""

    def __init__(self, base: Path, runtime: str):
        self.base = base
        self.runtime = runtime
        self.cgroup_parent = f"/pyrunc-podman-{uuid.uuid4().hex[:10]}"
        for d in ("root", "runroot", "tmp", "net", "vol"):
            (base / d).mkdir(parents=True, exist_ok=True)
        nofile = _limit_pair(resource.RLIMIT_NOFILE, 1048576)
        nproc = _limit_pair(resource.RLIMIT_NPROC, 32768)
        (base / "containers.conf").write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}", "nproc={nproc}"]\n'
            'netns = "none"\n'
            "[engine]\n"
            f"{_conmon_env()}"
            'lock_type = "file"\n'  # not the host-wide shm segment other podmans share
            'events_logger = "file"\n'
            f'events_logfile_path = "{base}/tmp/events.log"\n')
        (base / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\nrunroot = "{base}/runroot"\ngraphroot = "{base}/root"\n')
        (base / "registries.conf").write_text("")
        self.env = {**os.environ, "CONTAINERS_CONF": str(base / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
                    "CONTAINERS_REGISTRIES_CONF": str(base / "registries.conf")}
        self.env.pop("CONTAINER_HOST", None)

    def argv(self, *args: str, runtime: str | None = None) -> list[str]:
        b = self.base
        return ["podman", "--root", f"{b}/root", "--runroot", f"{b}/runroot",
                "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", "--tmpdir", f"{b}/tmp",
                "--network-config-dir", f"{b}/net", "--volumepath", f"{b}/vol",
                "--runtime", runtime or self.runtime, *args]

    def __call__(self, *args: str, runtime: str | None = None, timeout: float = 60,
                 input: str | None = None) -> subprocess.CompletedProcess:
        """Bytes decoded by hand: text mode would turn a terminal's \r\n into \n."""
        p = subprocess.run(self.argv(*args, runtime=runtime), env=self.env, capture_output=True,
                           timeout=timeout, input=None if input is None else input.encode(),
                           stdin=None if input is not None else subprocess.DEVNULL)
        return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(errors="replace"),
                                           p.stderr.decode(errors="replace"))

    def ok(self, *args: str, **kw) -> str:
        p = self(*args, **kw)
        assert p.returncode == 0, f"podman {' '.join(args)} -> {p.returncode}: {p.stderr}"
        return p.stdout

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """`podman run` in our cgroup parent with no network."""
        return self("run", "--cgroup-parent", self.cgroup_parent, "--network", "none", *args, **kw)

    def import_rootfs(self, rootfs: Path) -> None:
        tar = self.base / "rootfs.tar"
        with tarfile.open(tar, "w") as t:
            for entry in sorted(os.listdir(rootfs)):
                t.add(rootfs / entry, arcname=entry)
        self.ok("import", str(tar), IMAGE, timeout=120)
        tar.unlink()

    # --- what a test made and whether it is gone ---------------------------------------------

    def container_ids(self) -> set[str]:
        """Every container this podman ever made, from its events log (catches --rm ones too)."""
        ids: set[str] = set()
        log = self.base / "tmp" / "events.log"
        if log.exists():
            for line in log.read_text().splitlines():
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("Type") == "container" and ev.get("ID"):
                    ids.add(ev["ID"])
        return ids

    def remove_containers(self) -> None:
        self("rm", "--all", "--force", "--time", "0", timeout=120)

    def leftovers(self) -> list[str]:
        """State dirs, conmons, runtime processes and mounts of ours that outlived their container."""
        found = []
        for cid in self.container_ids():
            if (STATE_ROOT / cid).exists():
                found.append(f"pyrunc state dir {STATE_ROOT / cid}")
        found += [f"process {pid}: {cmd}" for pid, cmd in self._our_processes()]
        found += [f"mount {m}" for m in self._our_mounts() if "/overlay-containers/" in m
                  or "/merged" in m]
        return found

    def _our_processes(self) -> list[tuple[int, str]]:
        procs = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(self.base) in cmd:
                procs.append((int(pid), cmd.strip()))
        return procs

    def _our_mounts(self) -> list[str]:
        with open("/proc/self/mountinfo") as f:
            return [line.split()[4] for line in f if str(self.base) in line.split()[4]]

    def cgroup_dirs(self) -> list[str]:
        name = self.cgroup_parent.lstrip("/")
        return [os.path.join(top, name) for top in _hierarchies()
                if os.path.isdir(os.path.join(top, name))]

    def destroy(self) -> list[str]:
        """Undo everything, even after a failed test; what could not be undone, for the caller."""
        problems = []
        self.remove_containers()
        self("rmi", "--all", "--force", timeout=120)
        deadline = time.monotonic() + 10
        while self._our_processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid, cmd in self._our_processes():  # conmons of ours only, by pid
            problems.append(f"process {pid} still running: {cmd}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for cid in self.container_ids():
            if (STATE_ROOT / cid).exists():
                problems.append(f"pyrunc state dir {STATE_ROOT / cid}")
                subprocess.run([self.runtime, "delete", "--force", cid], capture_output=True)
        for m in sorted(self._our_mounts(), key=len, reverse=True):
            problems.append(f"mount {m}")
            subprocess.run(["umount", "-l", m], capture_output=True)
        for d in self.cgroup_dirs():
            for top, _, _ in os.walk(d, topdown=False):
                try:
                    os.rmdir(top)
                except OSError as e:
                    problems.append(f"cgroup {top}: {e.strerror}")
        shutil.rmtree(self.base, ignore_errors=True)
        return problems


def _hierarchies() -> list[str]:
    """Every cgroup mount point of the host, v1 hierarchies and the v2 one."""
    tops = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                tops.append(fields[4])
    return tops
