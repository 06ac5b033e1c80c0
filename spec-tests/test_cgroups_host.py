"""The cgroup Manager on this real hybrid host (v1 controllers + a cgroup2 mount with hugetlb),
driven directly with plain child processes: placement, every v1 resource file, the unified
hierarchy (cgroup.freeze, cgroup.kill, hugetlb, the eBPF device filter), and clean removal.
The same checks through real containers are in test_cgroups_containers.py.
"""
from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from pyrunc.cgroups import Manager, fs, is_frozen
from pyrunc.cgroups.hierarchy import mounted
from pyrunc.errors import PyruncError

HS = {h.key: h.mountpoint for h in mounted()}
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or "cpu" not in HS or "" not in HS,
                                reason="needs root on a hybrid cgroup host")


def _read(d: str, f: str) -> str:
    return Path(d, f).read_text().strip()


@pytest.fixture
def made():
    """Managers a test made; destroyed (and checked gone) afterwards, processes killed."""
    mgrs: list[Manager] = []
    procs: list[subprocess.Popen] = []

    def make(path=None, resources=None, cid=None, kind=None, paths=None) -> Manager:
        cid = cid or f"spec-test-cg-{uuid.uuid4().hex[:8]}"
        m = Manager(paths, kind) if paths else Manager.for_container(cid, path, resources)
        if paths:
            m.resources = resources or {}
        mgrs.append(m)
        m.create()
        return m

    def spawn(m: Manager) -> subprocess.Popen:
        p = subprocess.Popen(["sleep", "60"])
        procs.append(p)
        m.add(p.pid)
        return p

    make.spawn = spawn
    yield make
    for p in procs:
        p.kill()
        p.wait()
    for m in mgrs:
        m.destroy()
        left = [d for d in list(m.paths.values()) + m.created if os.path.exists(d)]
        assert not left, f"cgroup dirs left: {left}"


def test_default_path_is_the_id_under_own_cgroup(made):
    cid = f"spec-test-cg-{uuid.uuid4().hex[:8]}"
    m = made(cid=cid)
    own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
    assert m.paths["cpu"] == os.path.normpath(f"{HS['cpu']}{own['cpu']}/{cid}")
    assert m.paths[""] == os.path.normpath(f"{HS['']}{own['']}/{cid}")
    assert "name=systemd" in m.paths or "name=systemd" not in HS
    for d in m.paths.values():
        assert os.path.isdir(d)


def test_nested_absolute_path_joined_everywhere_and_removed(made):
    base = f"/spec-test-nest-{uuid.uuid4().hex[:6]}"
    m = made(path=f"{base}/a/leaf")
    p = made.spawn(m)
    lines = Path(f"/proc/{p.pid}/cgroup").read_text().splitlines()
    assert all(line.endswith(f"{base}/a/leaf") for line in lines if "memory" not in line), lines
    assert m.pids() == [p.pid]
    p.kill()
    p.wait()
    m.destroy()
    for mp in HS.values():
        assert not os.path.exists(mp + base)


def test_destroy_is_idempotent_and_survives_outside_kill(made):
    m = made()
    p = made.spawn(m)
    os.kill(p.pid, signal.SIGKILL)  # "killed from outside"
    p.wait()
    m.destroy()
    m.destroy()
    assert not any(os.path.exists(d) for d in m.paths.values())


def test_every_v1_field(made):
    r = {
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20,
                   "swappiness": 30, "disableOOMKiller": True, "kernel": 8 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "idle": 0,
                "realtimePeriod": 1000000, "realtimeRuntime": 10000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
        "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1048576}],
                    "throttleWriteBpsDevice": [{"major": 254, "minor": 0, "rate": 2097152}],
                    "throttleReadIOPSDevice": [{"major": 254, "minor": 0, "rate": 100}],
                    "throttleWriteIOPSDevice": [{"major": 254, "minor": 0, "rate": 200}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"}],
    }
    m = made(resources=r)
    mem, cpu, cs, pids, blk, dev = (m.path_of(c) for c in
                                    ("memory", "cpu", "cpuset", "pids", "blkio", "devices"))
    assert _read(mem, "memory.limit_in_bytes") == str(64 << 20)
    assert _read(mem, "memory.soft_limit_in_bytes") == str(32 << 20)
    assert _read(mem, "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert _read(mem, "memory.swappiness") == "30"
    assert "oom_kill_disable 1" in _read(mem, "memory.oom_control")
    assert _read(cpu, "cpu.shares") == "512"
    assert _read(cpu, "cpu.cfs_quota_us") == "50000"
    assert _read(cpu, "cpu.cfs_period_us") == "100000"
    assert _read(cpu, "cpu.cfs_burst_us") == "1000"
    assert _read(cpu, "cpu.rt_period_us") == "1000000"
    assert _read(cpu, "cpu.rt_runtime_us") == "10000"
    assert _read(cs, "cpuset.cpus") == "0" and _read(cs, "cpuset.mems") == "0"
    assert _read(pids, "pids.max") == "42"
    assert _read(blk, "blkio.bfq.weight").split()[-1] == "300"
    assert _read(blk, "blkio.throttle.read_bps_device") == "254:0 1048576"
    assert _read(blk, "blkio.throttle.write_bps_device") == "254:0 2097152"
    assert _read(blk, "blkio.throttle.read_iops_device") == "254:0 100"
    assert _read(blk, "blkio.throttle.write_iops_device") == "254:0 200"
    # hugetlb is a cgroup2 controller on this hybrid host
    assert _read(m.unified(), "hugetlb.2MB.max") == str(4 << 20)
    lst = _read(dev, "devices.list").splitlines()
    assert "c 1:11 rw" in lst and "c 1:5 rwm" in lst and "c *:* m" in lst and "a *:* rwm" not in lst
    # a process in it really cannot use a device outside the list
    out = subprocess.run(["sh", "-c", f"echo $$ > {dev}/cgroup.procs; : > /dev/full; echo ok > /dev/null && cat /dev/urandom | head -c0; echo done"],
                         capture_output=True, text=True)
    assert "done" in out.stdout  # /dev/full (1:7) is in runc's default list
    out = subprocess.run(["sh", "-c", f"echo $$ > {dev}/cgroup.procs; head -c1 /dev/vda"],
                         capture_output=True, text=True)
    assert "Operation not permitted" in out.stderr


def test_update_changes_files(made):
    m = made(resources={"memory": {"limit": 64 << 20}, "pids": {"limit": 10}})
    m.update({"memory": {"limit": 32 << 20}, "pids": {"limit": 20}, "cpu": {"shares": 256}})
    assert _read(m.path_of("memory"), "memory.limit_in_bytes") == str(32 << 20)
    assert _read(m.path_of("pids"), "pids.max") == "20"
    assert _read(m.path_of("cpu"), "cpu.shares") == "256"
    assert m.resources["memory"]["limit"] == 32 << 20 and m.resources["pids"]["limit"] == 20


@pytest.mark.parametrize("field,msg", [
    ({"network": {"classID": 1048577}}, "net_cls"),
    ({"network": {"priorities": [{"name": "lo", "priority": 1}]}}, "net_prio"),
    ({"rdma": {"mlx5_1": {"hcaHandles": 1}}}, "rdma"),
    ({"memory": {"swappiness": 101}}, "swappiness"),
    ({"blockIO": {"leafWeight": 300}}, "leaf_weight"),
    ({"unified": {"memory.max": "1"}}, "unified.memory.max"),
])
def test_set_field_of_missing_controller_is_clear_error_and_cleans_up(field, msg):
    cid = f"spec-test-cg-{uuid.uuid4().hex[:8]}"
    m = Manager.for_container(cid, None, field)
    with pytest.raises(PyruncError, match=msg):
        m.create()
    assert not any(os.path.exists(d) for d in m.paths.values())


def test_unset_fields_of_missing_controllers_are_skipped(made):
    made(resources={"network": {}, "rdma": {}, "hugepageLimits": [], "memory": {"kernel": 1 << 20}})


def test_v1_freezer_pause_and_kill_all(made):
    m = made()
    p = made.spawn(m)
    m.freeze()
    assert is_frozen(m.to_state())
    assert _read(m.path_of("freezer"), "freezer.state") == "FROZEN"
    m.signal_all(signal.SIGKILL)  # kill of a frozen cgroup works: signal_all thaws
    assert p.wait(5) == -signal.SIGKILL


def test_unified_freeze_kill_hugetlb_and_ebpf(made):
    """The v2 code paths on this host's real cgroup2 mount (pure v2: see spec-tests/v2vm/)."""
    name = f"spec-test-u-{uuid.uuid4().hex[:8]}"
    m = made(paths={"": os.path.join(HS[""], name)}, kind="v2",
             resources={"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}],
                        "devices": [{"allow": False, "access": "rwm"}]})
    u = m.unified()
    assert _read(u, "hugetlb.2MB.max") == str(2 << 20)
    from pyrunc.cgroups import ebpf
    assert len(ebpf.attached(u)) == 1
    p = made.spawn(m)
    m.freeze()
    assert is_frozen(m.to_state()) and "frozen 1" in _read(u, "cgroup.events")
    st = Path(f"/proc/{p.pid}/stat").read_text().split(")")[1].split()[0]
    m.thaw()
    assert not is_frozen(m.to_state())
    m.signal_all(signal.SIGKILL)  # cgroup.kill
    assert p.wait(5) == -signal.SIGKILL
    assert st in ("S", "D", "T", "t")
    # the eBPF filter: default-deny with runc's default allow list
    ok = subprocess.run(["sh", "-c", f"echo $$ > {u}/cgroup.procs; echo x > /dev/null && echo fine;"
                         " head -c1 /dev/vda"], capture_output=True, text=True)
    assert "fine" in ok.stdout and "Operation not permitted" in ok.stderr
    m.update({"devices": [{"allow": True, "type": "a", "access": "rwm"}]})
    assert len(ebpf.attached(u)) == 1  # replaced, not stacked


def test_stats_shape(made):
    m = made(resources={"memory": {"limit": 64 << 20}, "pids": {"limit": 9}})
    made.spawn(m)
    s = m.stats()
    assert set(s) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert s["memory"]["usage"]["limit"] == 64 << 20
    assert s["pids"] == {"current": 1, "limit": 9}
    assert "kernel" in s["cpu"]["usage"] and "user" in s["cpu"]["usage"]
    assert "2MB" in s["hugetlb"]


def test_joining_existing_cgroup_shared_is_left_for_its_owner(made):
    owner = made()
    p = made.spawn(owner)
    guest = Manager(dict(owner.paths), owner.kind)
    guest.create()  # a path shared with an existing, non-empty cgroup: allowed, warned
    assert guest.preexisting and guest.created == []
    guest.destroy()  # busy and not ours: left alone
    assert os.path.isdir(owner.paths["cpu"])
    assert p.poll() is None
