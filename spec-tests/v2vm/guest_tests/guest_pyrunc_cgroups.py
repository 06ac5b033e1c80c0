"""Runs inside the v2 VM only: pyrunc's cgroup code and real containers on a pure cgroup-v2 host.

Expected values are runc 1.1.5's conversions of the OCI resources to v2 files, and when runc is in
the image (build.py copies the host's) each container test also runs runc on the same bundle and
compares file by file, so a divergence from the reference shows up even where the constants here
are wrong. Parts of pyrunc that do not exist yet are skipped with the reason, never faked.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
import uuid

import pytest
from guesthelp import detached

ROOT = "/sys/fs/cgroup"
ROOTFS = "/v2vm/rootfs"
RUNC = "/usr/sbin/runc"
MiB = 1 << 20
RESOURCES = {
    "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 128 * MiB},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    "pids": {"limit": 32},
    "blockIO": {"weight": 300},
}
# runc 1.1.5 on cgroup v2: swap.max = swap - limit; cpu.weight = 1 + (shares-2)*9999/262142;
# io.weight = 1 + (weight-10)*9999/990 when io.bfq.weight is absent (no BFQ in this guest).
EXPECTED = {
    "memory.max": str(64 * MiB),
    "memory.low": str(32 * MiB),
    "memory.swap.max": str(64 * MiB),
    "cpu.max": "50000 100000",
    "cpu.weight": "20",
    "pids.max": "32",
    "io.weight": "default 2930",
}


def mark(name: str) -> None:
    print(f"V2VM-CHECK {name} ok", flush=True)


def rd(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip().splitlines()[0] if name == "io.weight" else f.read().strip()


def limits(d: str) -> dict[str, str]:
    return {name: rd(d, name) for name in EXPECTED}


def need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist yet")


def pyrunc_cgroups():
    try:
        from pyrunc.cgroups import Manager
        need("pyrunc.cgroups.v2")
    except ImportError as e:
        pytest.skip(f"pyrunc.cgroups is not importable: {e}")
    return Manager


# ---------------------------------------------------------------- the Manager on its own

def test_manager_creates_limits_adds_updates_destroys():
    Manager = pyrunc_cgroups()
    cid = f"mgr-{uuid.uuid4().hex[:8]}"
    parent = f"{ROOT}/pyrunc-v2vm-mgr"
    m = Manager.for_container(cid, f"/pyrunc-v2vm-mgr/{cid}", RESOURCES)
    assert m.kind == "v2"
    m.create()
    leaf = m.unified()
    sleeper = None
    try:
        assert leaf == f"{parent}/{cid}"
        assert limits(leaf) == EXPECTED
        sleeper = subprocess.Popen(["sleep", "30"])
        m.add(sleeper.pid)
        assert m.pids() == [sleeper.pid]
        with open(f"/proc/{sleeper.pid}/cgroup") as f:
            assert f.read().strip() == f"0::/pyrunc-v2vm-mgr/{cid}"
        m.update({"pids": {"limit": 10}, "memory": {"limit": 96 * MiB}})
        assert rd(leaf, "pids.max") == "10"
        assert rd(leaf, "memory.max") == str(96 * MiB)
        assert rd(leaf, "cpu.max") == "50000 100000", "update must leave unrelated limits alone"
    finally:
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()
        m.destroy()
    assert not os.path.exists(leaf)
    assert not os.path.exists(parent), "destroy must remove the parents that create made"
    mark("pyrunc-manager")


# ---------------------------------------------------------------- real containers

def make_bundle(tmp_path, args: list[str]) -> str:
    from pyrunc.spec.default import default_config
    b = tmp_path / f"bundle-{uuid.uuid4().hex[:6]}"
    b.mkdir()
    shutil.copytree(ROOTFS, b / "rootfs", symlinks=True)
    cfg = default_config()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg["root"]["readonly"] = False
    cfg["linux"]["resources"] = {**cfg["linux"].get("resources", {}), **RESOURCES}
    cfg["linux"]["cgroupsPath"] = "/pyrunc-v2vm-ct/placeholder"
    (b / "config.json").write_text(json.dumps(cfg, indent=1))
    return str(b)


def set_cgroups_path(bundle: str, path: str) -> None:
    p = os.path.join(bundle, "config.json")
    cfg = json.load(open(p))
    cfg["linux"]["cgroupsPath"] = path
    with open(p, "w") as f:
        json.dump(cfg, f)


def sh(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)


def created_limits(runtime: list[str], bundle: str, cid: str) -> tuple[dict[str, str], str]:
    """create the container, read its cgroup files from outside, then delete it; returns the files
    and the container's cgroup directory (which must be gone afterwards)."""
    set_cgroups_path(bundle, f"/pyrunc-v2vm-ct/{cid}")
    parent_existed = os.path.isdir(f"{ROOT}/pyrunc-v2vm-ct")
    r = detached(*runtime, "create", "--bundle", bundle, cid)
    assert r.returncode == 0, f"{runtime[0]} create failed: {r.stderr.strip()}"
    try:
        state = json.loads(sh(*runtime, "state", cid).stdout)
        assert state["status"] == "created"
        with open(f"/proc/{state['pid']}/cgroup") as f:
            rel = f.read().strip().split("::", 1)[1]
        d = ROOT + rel
        return limits(d), d
    finally:
        r = sh(*runtime, "delete", "--force", cid)
        assert r.returncode == 0, f"{runtime[0]} delete --force failed: {r.stderr.strip()}"
        if runtime[0] == RUNC and not parent_existed:
            runc_made_parent(f"{ROOT}/pyrunc-v2vm-ct")


def runc_made_parent(d: str) -> None:
    """runc 1.1 removes only the leaf it made, not the parents: tidy up after the reference so
    that the guest's leak check (conftest.py) judges pyrunc alone."""
    try:
        os.rmdir(d)
    except OSError:
        pass


def gone(d: str) -> bool:
    deadline = time.monotonic() + 3
    while os.path.exists(d) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not os.path.exists(d)


def test_pyrunc_create_sets_v2_limits_like_runc(tmp_path):
    need("pyrunc.lifecycle.create")
    need("pyrunc.lifecycle.delete")
    need("pyrunc.lifecycle.state_cmd")
    bundle = make_bundle(tmp_path, ["sleep", "30"])
    got, d = created_limits(["pyrunc", "--root", "/run/pyrunc-v2vm"], bundle, f"p{uuid.uuid4().hex[:8]}")
    assert gone(d), f"pyrunc delete left {d}"
    if os.access(RUNC, os.X_OK):
        ref, rd_ = created_limits([RUNC, "--root", "/run/runc-v2vm"], bundle, f"r{uuid.uuid4().hex[:8]}")
        assert gone(rd_)
        assert got == ref, f"pyrunc {got} != runc {ref}"
        print("V2VM-INFO runc agrees on", ", ".join(sorted(ref)), flush=True)
    assert got == EXPECTED
    mark("pyrunc-create-limits")


def test_pyrunc_run_container_sees_its_limits(tmp_path):
    """The key goal: `pyrunc run` of a real container whose own /sys/fs/cgroup shows its limits."""
    need("pyrunc.lifecycle.run")
    script = ("cat /proc/self/cgroup; for f in memory.max cpu.max pids.max cpu.weight; do "
              "echo $f=$(cat /sys/fs/cgroup/$f); done")
    bundle = make_bundle(tmp_path, ["sh", "-c", script])
    cid = f"run{uuid.uuid4().hex[:8]}"
    set_cgroups_path(bundle, f"/pyrunc-v2vm-ct/{cid}")
    r = sh("pyrunc", "--root", "/run/pyrunc-v2vm", "run", "--bundle", bundle, cid)
    print(r.stdout, r.stderr, flush=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert "0::/" in out, "the container has no cgroup namespace rooted at its own cgroup"
    for want in (f"memory.max={64 * MiB}", "pids.max=32", "cpu.weight=20"):
        assert want in out, f"{want} not in {out}"
    assert "cpu.max=50000 100000" in r.stdout
    assert gone(f"{ROOT}/pyrunc-v2vm-ct/{cid}"), "run left the container's cgroup behind"
    assert sh("pyrunc", "--root", "/run/pyrunc-v2vm", "state", cid).returncode != 0
    if os.access(RUNC, os.X_OK):
        parent_existed = os.path.isdir(f"{ROOT}/pyrunc-v2vm-ct")
        ref = sh(RUNC, "--root", "/run/runc-v2vm", "run", "--bundle", bundle, cid + "r")
        if not parent_existed:
            runc_made_parent(f"{ROOT}/pyrunc-v2vm-ct")
        assert ref.returncode == 0, ref.stderr
        assert sorted(ref.stdout.split()) == sorted(out), f"runc saw {ref.stdout!r}"
    mark("pyrunc-run-limits")
