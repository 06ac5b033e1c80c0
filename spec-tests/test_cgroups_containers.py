"""cgroups through real containers on this hybrid host: placement, resource files, the 2 MiB
container, pause/resume, update, events, ps, kill --all, and no cgroup directory after delete."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

CG = Path("/sys/fs/cgroup")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not (CG / "memory").is_dir(),
                                reason="needs root and the v1 hierarchies of these hosts")


def _own(controller: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(",") or (controller == "" and ctrls == ""):
            return path
    return "/"


def _started(runtime, bundle, *args, resources=None, path=None) -> tuple[str, int]:
    bundle.set_args(*(args or ("sleep", "100")))
    if resources is not None:
        bundle.config["linux"]["resources"] = resources
    if path is not None:
        bundle.config["linux"]["cgroupsPath"] = path
    bundle.write()
    cid = runtime.new_id("cg")
    runtime("create", "--bundle", str(bundle.path), cid, check=True)
    runtime("start", cid, check=True)
    return cid, runtime.state(cid)["pid"]


def _cgroups_of(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        out[ctrls] = path
    return out


def _wait_stopped(runtime, cid, timeout=5.0) -> str:
    deadline = time.monotonic() + timeout
    st = runtime.state(cid)["status"]
    while st != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
        st = runtime.state(cid)["status"]
    return st


def _no_dirs(rel: str) -> list[str]:
    return [str(p) for p in CG.glob(f"*/{rel.lstrip('/')}")] + \
        [str(p) for p in CG.glob(f"*/**/{Path(rel).name}")]


def test_default_cgroup_is_id_under_runtime_cgroup_and_removed(runtime, bundle):
    cid, pid = _started(runtime, bundle)
    cgs = _cgroups_of(pid)
    assert cgs["cpu"] == os.path.join(_own("cpu"), cid)
    assert cgs["memory"] == os.path.join(_own("memory"), cid)
    assert cgs[""] == os.path.join(_own(""), cid)  # hybrid: the unified mount too, as runc
    assert cgs["name=systemd"] == os.path.join(_own("name=systemd"), cid)
    runtime("kill", cid, "KILL", check=True)
    assert _wait_stopped(runtime, cid) == "stopped"
    runtime("delete", cid, check=True)
    assert not list(CG.glob(f"*/**/{cid}"))


def test_nested_absolute_path_and_v1_files(runtime, bundle):
    base = f"/spec-test-cgc-{uuid.uuid4().hex[:6]}"
    r = {"memory": {"limit": 64 << 20, "reservation": 16 << 20, "swap": 128 << 20, "swappiness": 10},
         "cpu": {"shares": 256, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
         "pids": {"limit": 33},
         "blockIO": {"weight": 200, "throttleWriteBpsDevice": [{"major": 254, "minor": 0, "rate": 4096}]},
         "hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}],
         "devices": [{"allow": False, "access": "rwm"}]}
    cid, pid = _started(runtime, bundle, path=f"{base}/inner/{uuid.uuid4().hex[:4]}", resources=r)
    leaf = _cgroups_of(pid)["cpu"]
    assert leaf.startswith(base + "/inner/")
    rd = lambda ctrl, f: (CG / ctrl / leaf.lstrip("/") / f).read_text().strip()  # noqa: E731
    assert rd("memory", "memory.limit_in_bytes") == str(64 << 20)
    assert rd("memory", "memory.soft_limit_in_bytes") == str(16 << 20)
    assert rd("memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert rd("memory", "memory.swappiness") == "10"
    assert rd("cpu", "cpu.shares") == "256" and rd("cpu", "cpu.cfs_quota_us") == "20000"
    assert rd("cpuset", "cpuset.cpus") == "0"
    assert rd("pids", "pids.max") == "33"
    assert rd("blkio", "blkio.bfq.weight").split()[-1] == "200"
    assert rd("blkio", "blkio.throttle.write_bps_device") == "254:0 4096"
    assert rd("unified", "hugetlb.2MB.max") == str(2 << 20)
    assert "c 1:3 rwm" in rd("devices", "devices.list").splitlines()
    runtime("delete", "--force", cid, check=True)
    for ctrl in ("cpu", "memory", "pids", "unified", "systemd"):
        assert not (CG / ctrl / base.lstrip("/")).exists()


def test_set_field_of_missing_controller_fails_clearly(runtime, bundle):
    bundle.config["linux"]["resources"] = {"network": {"classID": 1048577}}
    bundle.write()
    cid = runtime.new_id("cg")
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1 and "net_cls" in p.stderr and "Traceback" not in p.stderr
    assert not list(CG.glob(f"*/**/{cid}"))


def test_two_mib_memory_limit_container_runs(runtime, bundle):
    bundle.set_args("echo", "it works")
    bundle.config["linux"]["resources"] = {"memory": {"limit": 2 << 20}}
    bundle.write()
    cid = runtime.new_id("cg")
    p = runtime("run", "--bundle", str(bundle.path), cid)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "it works\n"
    runtime("delete", "--force", cid)


def test_pause_resume_and_kill_paused(runtime, bundle):
    cid, pid = _started(runtime, bundle)
    runtime("pause", cid, check=True)
    assert runtime.state(cid)["status"] == "paused"
    fz = CG / "freezer" / _cgroups_of(pid)["freezer"].lstrip("/") / "freezer.state"
    assert fz.read_text().strip() == "FROZEN"
    assert runtime("pause", cid).returncode == 1
    runtime("resume", cid, check=True)
    assert runtime.state(cid)["status"] == "running"
    assert runtime("resume", cid).returncode == 1
    runtime("pause", cid, check=True)
    runtime("kill", cid, "KILL", check=True)  # as runc: a paused container can be killed
    assert _wait_stopped(runtime, cid) == "stopped"


def test_update_flags_and_resources_json(runtime, bundle):
    cid, pid = _started(runtime, bundle, resources={"memory": {"limit": 64 << 20}, "pids": {"limit": 10}})
    cg = _cgroups_of(pid)
    rd = lambda ctrl, key, f: (CG / ctrl / cg[key].lstrip("/") / f).read_text().strip()  # noqa: E731
    runtime("update", "--memory", "32m", "--pids-limit", "20", "--cpu-share", "300",
            "--cpu-quota", "30000", "--cpu-period", "100000", "--cpuset-cpus", "0", cid, check=True)
    assert rd("memory", "memory", "memory.limit_in_bytes") == str(32 << 20)
    assert rd("pids", "pids", "pids.max") == "20"
    assert rd("cpu", "cpu", "cpu.shares") == "300"
    assert rd("cpu", "cpu", "cpu.cfs_quota_us") == "30000"
    assert rd("cpuset", "cpuset", "cpuset.cpus") == "0"
    res = {"pids": {"limit": 7}, "memory": {"limit": 48 << 20}}
    runtime("update", "--resources", "-", cid, input=json.dumps(res).encode(), check=True)
    assert rd("pids", "pids", "pids.max") == "7"
    assert rd("memory", "memory", "memory.limit_in_bytes") == str(48 << 20)
    bad = runtime("update", "--pids-limit", "many", cid)
    assert bad.returncode == 1 and "pids-limit" in bad.stderr


def test_events_stats_and_interval(runtime, bundle):
    cid, pid = _started(runtime, bundle, resources={"memory": {"limit": 64 << 20}, "pids": {"limit": 9}})
    ev = json.loads(runtime("events", "--stats", cid, check=True).stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    d = ev["data"]
    assert set(d) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert d["memory"]["usage"]["limit"] == 64 << 20
    assert d["pids"] == {"current": 1, "limit": 9}
    assert "user" in d["cpu"]["usage"] and "kernel" in d["cpu"]["usage"]
    p = subprocess.Popen(runtime.cmd("events", "--interval", "200ms", cid), stdout=subprocess.PIPE,
                         text=True)
    try:
        lines = [json.loads(p.stdout.readline()) for _ in range(2)]
        assert all(e["type"] == "stats" for e in lines)
        runtime("kill", cid, "KILL", check=True)
        assert p.wait(10) == 0  # the stream ends when the container stops
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_ps_json_and_table(runtime, bundle):
    cid, pid = _started(runtime, bundle, "sh", "-c", "sleep 100 & sleep 100 & wait")
    pids = json.loads(runtime("ps", "--format", "json", cid, check=True).stdout)
    assert pid in pids and len(pids) == 3
    table = runtime("ps", cid, check=True).stdout.splitlines()
    assert "PID" in table[0].split() and len(table) == 4
    t2 = runtime("ps", cid, "-o", "pid,comm", check=True).stdout.splitlines()
    assert t2[0].split() == ["PID", "COMMAND"] and len(t2) == 4


def test_kill_all_signals_every_process(runtime, bundle):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "pid"]  # host pidns: --all matters
    cid, pid = _started(runtime, bundle, "sh", "-c", "sleep 100 & sleep 100 & wait")
    pids = json.loads(runtime("ps", "--format", "json", cid, check=True).stdout)
    assert len(pids) == 3
    runtime("kill", "--all", cid, "KILL", check=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() and
                                              "Z" not in Path(f"/proc/{p}/stat").read_text().split(")")[1][:3]
                                              for p in pids):
        time.sleep(0.05)
    assert json.loads(runtime("ps", "--format", "json", cid, check=True).stdout) == []


def test_delete_after_killed_from_outside_removes_cgroups(runtime, bundle):
    cid, pid = _started(runtime, bundle)
    os.kill(pid, signal.SIGKILL)
    assert _wait_stopped(runtime, cid) == "stopped"
    runtime("delete", cid, check=True)
    assert not list(CG.glob(f"*/**/{cid}"))


def test_cgroup_mount_without_cgroupns_shows_the_containers_own_memory_cgroup(runtime, bundle):
    """runc binds the container's own cgroup directories when there is no cgroup namespace; the
    memory one must be the container's even though the init joins it last (Manager.add)."""
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "cgroup"]
    bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
    bundle.set_args("cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(64 << 20)


def test_systemd_cgroup_without_systemd_is_a_clear_error(runtime, bundle):
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs here")
    for path, words in (("system.slice:pyrunc:x", "systemd support for managing cgroups is not available"),
                        ("/not/slice/form", 'format "slice:prefix:name"')):
        bundle.config["linux"]["cgroupsPath"] = path
        bundle.write()
        cid = runtime.new_id()
        p = runtime("--systemd-cgroup", "create", "--bundle", str(bundle.path), cid)
        assert p.returncode == 1 and words in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
        assert not (runtime.root / cid).exists()
