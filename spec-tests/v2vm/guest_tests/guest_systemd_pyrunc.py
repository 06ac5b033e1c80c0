"""Runs inside the v2 VM only: `pyrunc --systemd-cgroup` with a real systemd (Debian's 252).

pyrunc runs in systemd's namespaces (guest_systemd_helper: like runc under containerd on a systemd
host), so the pids and cgroup paths it sees are systemd's. The container must be a transient scope
`<prefix>-<name>.scope` in the slice of its cgroupsPath, that systemd knows with the container's
limits as unit properties and that pyrunc gives back on delete; a create that fails after the
scope exists must give it back too.

Prints `V2VM-CHECK pyrunc-systemd-scope ok` and `V2VM-CHECK pyrunc-systemd-failed-create ok`
for the host (spec-tests/test_cgroup_v2_vm.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time

import pytest

from guest_systemd_helper import (MANAGER_IFACE, MANAGER_PATH, DBusError, in_v2vm, systemd,  # noqa: F401
                                  systemd_in_image)
from guesthelp import MiB, STATE_ROOT, Bundle, mark, new_id, rd

pytestmark = pytest.mark.skipif(not (in_v2vm() and systemd_in_image()),
                                reason="not the v2 VM, or its image has no systemd")

PYRUNC = ("pyrunc", "--root", STATE_ROOT, "--systemd-cgroup")


def _write(b: Bundle, cgroups_path: str) -> None:
    b.config["linux"]["cgroupsPath"] = cgroups_path
    with open(os.path.join(b.path, "config.json"), "w") as f:
        json.dump(b.config, f)


def _pyrunc(sd, *argv: str, ok: bool = True) -> subprocess.CompletedProcess:
    """pyrunc in systemd's namespaces. Output goes through files, not pipes: a created container
    keeps the stdio `create` gave it, and a pipe would not see its end while the container runs.
    A pyrunc stuck on systemd dumps where it is stuck (faulthandler) before the test gives up."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        rc = sd.run("timeout", "-s", "ABRT", "40", "env", "PYTHONFAULTHANDLER=1", *PYRUNC, *argv,
                    timeout=60, capture_output=False, stdout=out, stderr=err,
                    stdin=subprocess.DEVNULL).returncode
        out.seek(0)
        err.seek(0)
        p = subprocess.CompletedProcess(argv, rc, out.read().decode(), err.read().decode())
    if ok:
        assert p.returncode == 0, f"pyrunc {' '.join(argv)}: {p.stderr}"
    return p


def _unit(sd, name: str) -> dict:
    """What systemd says of unit `name`, or {} when it has no such unit."""
    with sd.bus() as bus:
        try:
            (path,) = bus.call(MANAGER_PATH, MANAGER_IFACE, "GetUnit", "s", (name,))
        except DBusError as e:
            assert e.name.endswith(".NoSuchUnit"), e
            return {}
        unit = "org.freedesktop.systemd1.Unit"
        scope = "org.freedesktop.systemd1.Scope"
        return {k: bus.get_property(iface, k, path) for iface, k in (
            (unit, "ActiveState"), (scope, "ControlGroup"), (scope, "MemoryMax"),
            (scope, "TasksMax"), (scope, "Delegate"), (scope, "CPUQuotaPerSecUSec"))}


def _wait_stopped(sd, cid: str) -> None:
    deadline = time.monotonic() + 10
    while json.loads(_pyrunc(sd, "state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, "the container did not stop"
        time.sleep(0.05)


def test_container_is_a_scope_with_its_limits(tmp_path, systemd):  # noqa: F811
    sd = systemd
    cid = new_id("sd")
    unit = f"pyrunc-{cid}.scope"
    b = Bundle(tmp_path, ["sleep", "1000"])
    b.config["linux"]["resources"] = {"memory": {"limit": 64 * MiB}, "pids": {"limit": 20},
                                      "cpu": {"quota": 50000, "period": 100000}}
    _write(b, f"system.slice:pyrunc:{cid}")
    _pyrunc(sd, "create", "--bundle", b.path, cid)
    try:
        _pyrunc(sd, "start", cid)
        pid = json.loads(_pyrunc(sd, "state", cid).stdout)["pid"]
        # where systemd put it, as systemd's side sees it ...
        assert sd.run("cat", f"/proc/{pid}/cgroup").stdout.strip() == f"0::/system.slice/{unit}"
        # ... and the files pyrunc wrote there
        d = os.path.join(sd.cgroup, "system.slice", unit)
        assert rd(d, "memory.max") == str(64 * MiB) and rd(d, "pids.max") == "20"
        assert rd(d, "cpu.max") == "50000 100000"
        props = _unit(sd, unit)
        assert props == {"ActiveState": "active", "ControlGroup": f"/system.slice/{unit}",
                         "MemoryMax": 64 * MiB, "TasksMax": 20, "Delegate": True,
                         "CPUQuotaPerSecUSec": 500000}, props
        # the container's cgroup namespace is rooted at its scope; exec joins both
        assert _pyrunc(sd, "exec", cid, "cat", "/proc/self/cgroup").stdout.strip() == "0::/"
        _pyrunc(sd, "exec", "-d", cid, "sleep", "77")
        assert len(json.loads(_pyrunc(sd, "ps", "--format", "json", cid).stdout)) == 2
        # update: the file and systemd's property
        _pyrunc(sd, "update", "--memory", "32M", cid)
        assert rd(d, "memory.max") == str(32 * MiB)
        assert _unit(sd, unit)["MemoryMax"] == 32 * MiB
        _pyrunc(sd, "pause", cid)
        assert json.loads(_pyrunc(sd, "state", cid).stdout)["status"] == "paused"
        assert rd(d, "cgroup.freeze") == "1"
        _pyrunc(sd, "resume", cid)
        _pyrunc(sd, "kill", "--all", cid, "KILL")
        _wait_stopped(sd, cid)
        _pyrunc(sd, "delete", cid)
        assert _unit(sd, unit) == {} and not os.path.exists(d)
    finally:
        _pyrunc(sd, "delete", "--force", cid, ok=False)
    # without a cgroup namespace the scope is started just before the program runs
    cid2 = new_id("sd")
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                       if n["type"] != "cgroup"]
    b.config["process"]["args"] = ["cat", "/proc/self/cgroup"]
    _write(b, f"machine.slice:libpod:{cid2}")  # podman's shape
    try:
        p = _pyrunc(sd, "run", "--bundle", b.path, cid2)
        assert p.stdout.strip() == f"0::/machine.slice/libpod-{cid2}.scope"
        assert _unit(sd, f"libpod-{cid2}.scope") == {}
    finally:
        _pyrunc(sd, "delete", "--force", cid2, ok=False)
    mark("pyrunc-systemd-scope")


def test_a_create_that_fails_gives_its_scope_back(tmp_path, systemd):  # noqa: F811
    """A createRuntime hook fails after the init joined its scope (with a cgroup namespace the
    join comes first): nothing of the container may stay, in systemd either."""
    sd = systemd
    cid = new_id("sd")
    b = Bundle(tmp_path, ["true"])
    b.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}
    _write(b, f"system.slice:pyrunc:{cid}")
    p = _pyrunc(sd, "create", "--bundle", b.path, cid, ok=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert _unit(sd, f"pyrunc-{cid}.scope") == {}
    assert not os.path.exists(os.path.join(sd.cgroup, "system.slice", f"pyrunc-{cid}.scope"))
    assert not os.path.exists(os.path.join(STATE_ROOT, cid))
    mark("pyrunc-systemd-failed-create")
