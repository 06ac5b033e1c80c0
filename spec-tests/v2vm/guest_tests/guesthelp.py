"""What the guest tests that drive real containers share: bundles, the pyrunc CLI, waiting.

Imported by name: pytest puts this directory on sys.path for the guest_*.py files beside it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

ROOT = "/sys/fs/cgroup"
ROOTFS = "/v2vm/rootfs"
STATE_ROOT = "/run/pyrunc-v2vm"
PYRUNC = ["pyrunc", "--root", STATE_ROOT]
MiB = 1 << 20


def mark(name: str) -> None:
    """The line the host-side test looks for."""
    print(f"V2VM-CHECK {name} ok", flush=True)


def rd(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class Bundle:
    """A bundle under `tmp`, with a private copy of the guest's busybox rootfs."""

    def __init__(self, tmp, args: list[str], group: str = "pyrunc-v2vm-ops"):
        from pyrunc.spec.default import default_config
        self.path = str(tmp / f"bundle-{uuid.uuid4().hex[:6]}")
        os.mkdir(self.path)
        self.rootfs = os.path.join(self.path, "rootfs")
        shutil.copytree(ROOTFS, self.rootfs, symlinks=True)
        self.group = group
        cfg = default_config()
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = args
        cfg["root"]["readonly"] = False
        self.config = cfg

    def cgroup_dir(self, cid: str) -> str:
        return f"{ROOT}/{self.group}/{cid}"

    def write(self, cid: str) -> None:
        """config.json with the cgroupsPath of container `cid` (absolute, under self.group)."""
        self.config["linux"]["cgroupsPath"] = f"/{self.group}/{cid}"
        with open(os.path.join(self.path, "config.json"), "w") as f:
            json.dump(self.config, f, indent=1)

    def add_caps(self, *caps: str) -> None:
        for k in ("bounding", "effective", "permitted"):
            self.config["process"]["capabilities"][k] += list(caps)

    def file(self, rel: str) -> str | None:
        """A file the container wrote under its rootfs, or None while there is none."""
        try:
            with open(os.path.join(self.rootfs, rel.lstrip("/"))) as f:
                return f.read().strip()
        except OSError:
            return None


def sh(*argv: str, timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          input=stdin)


def pyrunc(*argv: str, timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess:
    return sh(*PYRUNC, *argv, timeout=timeout, stdin=stdin)


def detached(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """For create: the container's init inherits our stdio, so pipes would never reach EOF."""
    with tempfile.TemporaryFile("w+") as err:
        r = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=err, timeout=timeout)
        err.seek(0)
        r.stderr = err.read()
    return r


def create(bundle: Bundle, cid: str) -> dict:
    bundle.write(cid)
    r = detached(*PYRUNC, "create", "--bundle", bundle.path, cid)
    assert r.returncode == 0, f"pyrunc create failed: {r.stderr.strip()}"
    return state(cid)


def state(cid: str) -> dict:
    r = pyrunc("state", cid)
    assert r.returncode == 0, f"pyrunc state failed: {r.stderr.strip()}"
    return json.loads(r.stdout)


def start(cid: str) -> None:
    r = pyrunc("start", cid)
    assert r.returncode == 0, f"pyrunc start failed: {r.stderr.strip()}"


def wait_for(pred, what: str, timeout: float = 20.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def wait_status(cid: str, want: str, timeout: float = 20.0) -> None:
    wait_for(lambda: state(cid)["status"] == want, f"{cid} to be {want}", timeout)


def delete_and_check_gone(cid: str, cgroup_dir: str) -> None:
    """delete --force, then the container's cgroup (and the parent create made) must be gone."""
    r = pyrunc("delete", "--force", cid)
    assert r.returncode == 0, f"pyrunc delete --force failed: {r.stderr.strip()}"
    deadline = time.monotonic() + 3
    while os.path.exists(cgroup_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(cgroup_dir), f"delete left {cgroup_dir}"
    parent = os.path.dirname(cgroup_dir)
    left = [e for e in os.listdir(parent)] if os.path.isdir(parent) else []
    assert not left or all(not e.startswith(cid) for e in left)


def force_cleanup(cid: str) -> None:
    """Teardown after a failed assertion: never leave a container to the next test."""
    sh(*PYRUNC, "delete", "--force", cid)
