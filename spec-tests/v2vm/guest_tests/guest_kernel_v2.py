"""Runs inside the v2 VM only: proves the guest really is a pure cgroup-v2 host before pyrunc is
judged on it. No pyrunc here, so a failure points at the harness, not at pyrunc.

Each check prints a `V2VM-CHECK <name> ok` line that the host-side test looks for.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

ROOT = "/sys/fs/cgroup"


def mark(name: str) -> None:
    print(f"V2VM-CHECK {name} ok", flush=True)


def rd(*parts: str) -> str:
    with open(os.path.join(*parts)) as f:
        return f.read().strip()


def wr(d: str, name: str, value: str) -> None:
    with open(os.path.join(d, name), "w") as f:
        f.write(value)


@pytest.fixture
def cg():
    d = os.path.join(ROOT, f"v2vm-kernel-{os.getpid()}-{time.monotonic_ns()}")
    os.mkdir(d)
    yield d
    for pid in rd(d, "cgroup.procs").split():
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while True:
        try:
            os.rmdir(d)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_pure_v2_with_controllers():
    with open("/proc/self/mountinfo") as f:
        types = [line.split(" - ")[1].split()[0] for line in f]
    assert "cgroup" not in types, "a cgroup v1 hierarchy is mounted in the v2 VM"
    assert "cgroup2" in types
    have = rd(ROOT, "cgroup.controllers").split()
    for c in ("cpu", "memory", "pids", "io", "cpuset"):
        assert c in have, f"{c} missing from {have}"
    assert set(("cpu", "memory", "pids", "io")) <= set(rd(ROOT, "cgroup.subtree_control").split())
    with open("/proc/filesystems") as f:
        assert "cgroup2" in f.read()
    assert rd("/proc/self/cgroup") == "0::/"
    mark("pure-v2")


def test_limits_written_and_read_back(cg):
    wr(cg, "memory.max", "33554432")
    wr(cg, "cpu.max", "50000 100000")
    wr(cg, "cpu.weight", "20")
    wr(cg, "pids.max", "16")
    wr(cg, "io.weight", "default 300")
    assert rd(cg, "memory.max") == "33554432"
    assert rd(cg, "cpu.max") == "50000 100000"
    assert rd(cg, "cpu.weight") == "20"
    assert rd(cg, "pids.max") == "16"
    assert rd(cg, "io.weight").splitlines()[0] == "default 300"
    mark("limits")


def test_process_joins_and_pids_max_enforced(cg):
    wr(cg, "pids.max", "3")
    # The child moves itself in before forking, so the limit counts only what it starts.
    script = (f"echo $$ > {cg}/cgroup.procs; cat /proc/self/cgroup; "
              "for i in 1 2 3 4 5; do sleep 5 >/dev/null 2>&1 & done 2>&1; echo spawned")
    # (the sleeps' stdout is not our pipe: run() returns without waiting for them)
    r = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert f"0::/{os.path.basename(cg)}" in r.stdout
    assert int(rd(cg, "pids.events").split()[1]) > 0, "pids.max=3 never refused a fork"
    mark("pids-max")


def test_memory_max_enforced_by_oom_kill(cg):
    wr(cg, "memory.max", str(16 << 20))
    wr(cg, "memory.swap.max", "0")
    code = (f"open('{cg}/cgroup.procs','w').write('0')\n"
            "b = [bytearray(1 << 20) for _ in range(64)]\nprint('survived')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == -9, (r.returncode, r.stdout, r.stderr)
    events = dict(line.split() for line in rd(cg, "memory.events").splitlines())
    assert int(events["oom_kill"]) >= 1
    mark("memory-oom")
