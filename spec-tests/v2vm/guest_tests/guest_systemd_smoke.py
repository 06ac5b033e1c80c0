"""Runs inside the v2 VM only: proves guest_systemd_helper gives the guest tests a real systemd, the
one pyrunc's systemd cgroup driver talks to, and takes it away again without a trace. No pyrunc
here: a failure points at the harness.

Prints `V2VM-CHECK systemd-harness ok` for the host-side test. One systemd start for all checks:
under TCG each start costs about a second.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from guest_systemd_helper import (MANAGER_IFACE, MANAGER_PATH, TARGET, TESTS_UNIT, in_v2vm,
                                  pids_in_ns, running_systemd, systemd_in_image)

pytestmark = pytest.mark.skipif(not (in_v2vm() and systemd_in_image()),
                                reason="not the v2 VM, or its image has no systemd (the host "
                                "that built it has none)")

# Units that may be active: systemd's builtin ones, our target and its one service, and mount
# units (systemd lists the mounts of its mount namespace). Anything else was pulled in by mistake.
ALLOWED_ACTIVE = {"-.slice", "system.slice", "init.scope", TARGET, TESTS_UNIT}
FORBIDDEN = ("tmpfiles", "journald", "udev", "logind", "dbus")
SCOPE = "pyrunc-v2vm-smoke.scope"


def _nspid(guest_pid: int) -> list[int]:
    """The NSpid line: the pid in each pid namespace, outermost first."""
    with open(f"/proc/{guest_pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no NSpid for {guest_pid}")


def _procs(cgroup_dir: str) -> list[int]:
    try:
        with open(os.path.join(cgroup_dir, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _wait(pred, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (v := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return v


def test_systemd_runs_and_goes_away(tmp_path):
    sentinel = tmp_path / "survives-systemd"
    sentinel.write_text("tmpfiles must not clean /tmp")
    t0 = time.monotonic()
    with running_systemd(keep_log=True) as sd:
        started = time.monotonic() - t0
        # pid 1 of its own pid namespace, and really systemd
        assert _nspid(sd.pid)[-1] == 1, _nspid(sd.pid)
        with open(f"/proc/{sd.pid}/comm") as f:
            assert f.read().strip() == "systemd"

        # the private socket answers the SASL handshake the driver starts with
        with sd.connect() as s:
            s.settimeout(10)
            s.sendall(b"\0AUTH EXTERNAL 30\r\n")  # uid "0" in hex
            reply = s.recv(4096)
        assert reply.startswith(b"OK "), reply

        # its cgroup tree, seen from the guest: it sits in init.scope, system.slice is there
        assert os.path.isdir(os.path.join(sd.cgroup, "system.slice"))
        assert sd.pid in _procs(os.path.join(sd.cgroup, "init.scope"))

        with sd.bus() as bus:
            assert bus.peer_pid == 1  # who answers is pid 1 of systemd's namespace
            assert bus.get_property(MANAGER_IFACE, "SystemState") == "running"
            version = bus.get_property(MANAGER_IFACE, "Version")
            units = bus.list_units()
        active = {u[0] for u in units if u[3] != "inactive"}
        unexpected = sorted(n for n in active - ALLOWED_ACTIVE if not n.endswith(".mount"))
        assert not unexpected, f"systemd started units it should not have: {unexpected}"
        pulled = sorted(u[:4] for u in units if any(w in u[0] for w in FORBIDDEN)
                        and (u[2] != "not-found" or u[3] != "inactive"))
        assert not pulled, f"default units were loaded: {pulled}"

        # a command run the way pyrunc will be: systemd's view of pids and cgroups
        r = sd.run("cat", "/proc/self/cgroup")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"0::/system.slice/{TESTS_UNIT}", r.stdout
        r = sd.run("sh", "-c", "test -d /sys/fs/cgroup/system.slice/" + TESTS_UNIT)
        assert r.returncode == 0, "/sys/fs/cgroup there is not systemd's cgroup root"

        # the driver's case: a process of systemd's namespace put into a transient scope
        sleeper = sd.popen("sh", "-c", "echo $$; exec sleep 300", stdout=subprocess.PIPE,
                           text=True)
        try:
            ns_pid = int(sleeper.stdout.readline())
            with sd.bus() as bus:
                bus.call(MANAGER_PATH, MANAGER_IFACE, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                         (SCOPE, "fail", [("PIDs", ("au", [ns_pid])),
                                          ("Description", ("s", "v2vm smoke"))], []))
                scope_dir = os.path.join(sd.cgroup, "system.slice", SCOPE)
                members = _wait(lambda: _procs(scope_dir), f"{SCOPE} to get its process")
                assert [_nspid(p)[-1] for p in members] == [ns_pid]
                r = sd.run("cat", f"/proc/{ns_pid}/cgroup")
                assert r.stdout.strip() == f"0::/system.slice/{SCOPE}", r
                bus.call(MANAGER_PATH, MANAGER_IFACE, "StopUnit", "ss", (SCOPE, "fail"))
            sleeper.wait(10)  # stopping the scope killed the sleep, so its nsenter ended
            _wait(lambda: not os.path.exists(scope_dir), f"{SCOPE}'s cgroup to go")
        finally:
            if sleeper.poll() is None:
                sleeper.kill()
                sleeper.wait()
        log = sd.log()
        pidns, cgroup, log_path = sd.pidns, sd.cgroup, sd.log_path
    stopped = time.monotonic() - t0 - started
    print(f"systemd {version}: ready in {started:.1f}s, stopped in {stopped:.1f}s")

    assert f"Reached target {TARGET}" in log, log
    for word in FORBIDDEN:
        assert word not in log.lower(), f"{word} in systemd's log:\n{log}"
    # gone: no process of its namespace, no cgroup, no /run/systemd; /tmp untouched
    assert not pids_in_ns(pidns)
    assert not os.path.exists(cgroup)
    assert not os.path.exists("/run/systemd")
    assert sentinel.read_text() == "tmpfiles must not clean /tmp"
    os.unlink(log_path)
    print("V2VM-CHECK systemd-harness ok", flush=True)
