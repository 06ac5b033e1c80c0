"""Runs inside the v2 VM only: real containers on a pure cgroup-v2 host, for everything that needs
a live kernel: the eBPF device filter, pause/resume through cgroup.freeze, kill of a paused
container, kill --all through cgroup.kill, update, events --stats, ps, the 2 MiB container, and
io.max / io.bfq.weight on a real (virtio) disk. Each test ends by deleting its containers and
checking that no cgroup directory is left.

A container reports what it saw by writing files into its own rootfs (/tmp is not a mount in the
default config), which the test reads from outside: create's stdio must not be a pipe.
"""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from guesthelp import (MiB, Bundle, create, delete_and_check_gone, force_cleanup, mark,
                       new_id, pyrunc, rd, start, state, wait_for, wait_status)

KMSG = (1, 11)  # a char device outside the default allow list whose open needs no capability
RUNC = "/usr/sbin/runc"


def block_dev() -> tuple[int, int] | None:
    try:
        with open("/sys/block/vda/dev") as f:
            major, minor = f.read().strip().split(":")
        return int(major), int(minor)
    except OSError:
        return None


def prog_ids(d: str) -> list[int]:
    """The device programs attached to cgroup `d`, through BPF_PROG_QUERY (no bpftool here)."""
    from pyrunc.cgroups import ebpf
    return ebpf.attached(d)


# ---------------------------------------------------------------- devices (eBPF)

DEVICE_SCRIPT = (
    "exec 2>>/tmp/out; "
    "head -c 4 /dev/zero | wc -c > /tmp/out; "
    "echo x > /dev/null && echo null-ok >> /tmp/out; "
    "head -c 1 /dev/urandom >/dev/null && echo urandom-ok >> /tmp/out; "
    "mknod /tmp/kmsg c {kmaj} {kmin} && echo mknod-ok >> /tmp/out; "
    "(echo pyrunc-v2vm > /tmp/kmsg) && echo kmsg-ok >> /tmp/out; "
    "{block}"
    "echo done >> /tmp/out")
BLOCK_PART = ("mknod /tmp/vda b {bmaj} {bmin} && echo bmknod-ok >> /tmp/out; "
              "(head -c 512 /tmp/vda | wc -c | sed s/^/block-read-/ >> /tmp/out); ")


def _device_run(tmp_path, extra_rules: list[dict]) -> tuple[list[str], int]:
    """One container that probes devices; returns (its report lines, programs attached)."""
    blk = block_dev()
    block = BLOCK_PART.format(bmaj=blk[0], bmin=blk[1]) if blk else ""
    b = Bundle(tmp_path, ["sh", "-c", DEVICE_SCRIPT.format(kmaj=KMSG[0], kmin=KMSG[1],
                                                           block=block)])
    b.add_caps("CAP_MKNOD")
    b.config["linux"]["resources"]["devices"] += extra_rules
    cid = new_id("dev")
    try:
        st = create(b, cid)
        d = b.cgroup_dir(cid)
        with open(f"/proc/{st['pid']}/cgroup") as f:
            assert f.read().strip() == f"0::/{b.group}/{cid}"
        n_progs = len(prog_ids(d))
        start(cid)
        wait_status(cid, "stopped")
        out = (b.file("/tmp/out") or "").splitlines()
        delete_and_check_gone(cid, d)
        return out, n_progs
    finally:
        force_cleanup(cid)


def test_device_filter_default_rules_and_allow_rule(tmp_path):
    blk = block_dev()
    out, n = _device_run(tmp_path, [])
    print("V2VM-INFO default rules:", out, flush=True)
    assert n == 1, f"{n} device programs attached to the container's cgroup"
    assert out[0] == "4", out
    for want in ("null-ok", "urandom-ok", "mknod-ok", "done"):
        assert want in out, f"{want} missing: {out}"
    assert "kmsg-ok" not in out, "the default rules let the container open /dev/kmsg (1:11)"
    assert any("kmsg" in line and "Operation not permitted" in line for line in out), out
    if blk:
        assert "bmknod-ok" in out, out
        assert not any(line.startswith("block-read-512") for line in out), out
        assert any("vda" in line and "Operation not permitted" in line for line in out), out

    rules = [{"allow": True, "type": "c", "major": KMSG[0], "minor": KMSG[1], "access": "w"}]
    if blk:
        rules.append({"allow": True, "type": "b", "major": blk[0], "minor": blk[1], "access": "r"})
    out, n = _device_run(tmp_path, rules)
    print("V2VM-INFO with allow rules:", out, flush=True)
    assert n == 1
    assert "kmsg-ok" in out, f"an allow rule for c 1:11 w did not open /dev/kmsg: {out}"
    if blk:
        assert "block-read-512" in out, out
    assert not any("Operation not permitted" in line for line in out), out
    mark("pyrunc-devices-ebpf")


# ---------------------------------------------------------------- a running container

LOOP = ("mknod /tmp/kmsg c {kmaj} {kmin}; i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; "
        "mv /tmp/count.new /tmp/count; if (echo pyrunc-v2vm > /tmp/kmsg) 2>/dev/null; "
        "then echo ok > /tmp/dev.new; else echo no > /tmp/dev.new; fi; mv /tmp/dev.new /tmp/dev; "
        "sleep 0.1; done")


def _count(b: Bundle) -> int:
    v = b.file("/tmp/count")
    return int(v) if v and v.isdigit() else 0


def test_running_container_update_ps_events_pause_resume_kill(tmp_path):
    b = Bundle(tmp_path, ["sh", "-c", LOOP.format(kmaj=KMSG[0], kmin=KMSG[1])])
    b.add_caps("CAP_MKNOD")
    b.config["linux"]["resources"].update({
        "memory": {"limit": 64 * MiB}, "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "pids": {"limit": 32}})
    cid = new_id("ops")
    d = b.cgroup_dir(cid)
    try:
        st = create(b, cid)
        pid = st["pid"]
        start(cid)
        wait_for(lambda: b.file("/tmp/dev") == "no", "the loop to report /dev/kmsg denied")
        wait_for(lambda: _count(b) > 1, "the loop to run")

        # ps: the JSON list is the cgroup's pids; the table is ps(1) filtered to them
        r = pyrunc("ps", "--format", "json", cid)
        assert r.returncode == 0, r.stderr
        pids = json.loads(r.stdout)
        assert pid in pids and all(isinstance(p, int) for p in pids), pids
        r = pyrunc("ps", cid)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert "PID" in lines[0].split(), lines
        col = lines[0].split().index("PID")
        assert str(pid) in [ln.split()[col] for ln in lines[1:]], lines
        mark("pyrunc-ps")

        # events --stats: one JSON object in runc's types.Stats shape, with live numbers
        r = pyrunc("events", "--stats", cid)
        assert r.returncode == 0, r.stderr
        ev = json.loads(r.stdout)
        assert ev["type"] == "stats" and ev["id"] == cid, ev
        data = ev["data"]
        assert data["cpu"]["usage"]["total"] > 0, data["cpu"]
        assert isinstance(data["cpu"]["usage"]["user"], int)
        assert data["memory"]["usage"]["usage"] > 0, data["memory"]
        assert data["memory"]["usage"]["limit"] == 64 * MiB, data["memory"]
        assert isinstance(data["memory"]["raw"], dict) and "anon" in data["memory"]["raw"]
        assert data["pids"]["current"] >= 1 and data["pids"]["limit"] == 32, data["pids"]
        for key in ("blkio", "hugetlb"):
            assert isinstance(data[key], dict), key
        mark("pyrunc-events-stats")

        # update: runc's flags, then a LinuxResources JSON on stdin; unrelated files stay
        r = pyrunc("update", "--memory", "48m", "--cpu-quota", "20000", "--cpu-period", "100000",
                   "--pids-limit", "20", "--cpu-share", "1024", cid)
        assert r.returncode == 0, r.stderr
        assert rd(d, "memory.max") == str(48 * MiB)
        assert rd(d, "cpu.max") == "20000 100000"
        assert rd(d, "pids.max") == "20"
        assert rd(d, "cpu.weight") == "39"  # 1 + (1024-2)*9999/262142
        r = pyrunc("update", "--resources", "-", cid,
                   stdin=json.dumps({"memory": {"limit": 40 * MiB}, "pids": {"limit": 25}}))
        assert r.returncode == 0, r.stderr
        assert rd(d, "memory.max") == str(40 * MiB)
        assert rd(d, "pids.max") == "25"
        assert rd(d, "cpu.max") == "20000 100000", "update must leave cpu alone"
        mark("pyrunc-update")

        # update of devices: the program is replaced (still one attached) and takes effect
        before = prog_ids(d)
        assert len(before) == 1, before
        rule = {"allow": True, "type": "c", "major": KMSG[0], "minor": KMSG[1], "access": "rwm"}
        r = pyrunc("update", "--resources", "-", cid, stdin=json.dumps({"devices": [rule]}))
        assert r.returncode == 0, r.stderr
        after = prog_ids(d)
        assert len(after) == 1 and after != before, (before, after)
        wait_for(lambda: b.file("/tmp/dev") == "ok", "the updated filter to allow /dev/kmsg")
        # the same update must not have opened everything else: the deny-all default stays.
        # A shell that joins the container's cgroup is judged by its filter: 1:2 (kmem, absent
        # from this kernel) is refused by the filter (EPERM) before the driver could say ENXIO.
        node = str(tmp_path / "kmem")
        r = subprocess.run(["sh", "-c", f"echo $$ > {d}/cgroup.procs && mknod {node} c 1 2 && "
                            f"head -c1 {node}"], capture_output=True, text=True, timeout=30)
        assert "Operation not permitted" in r.stderr, (r.returncode, r.stderr)
        mark("pyrunc-update-devices")

        # pause: cgroup.freeze, state paused, the counter stops; resume: it runs again
        r = pyrunc("pause", cid)
        assert r.returncode == 0, r.stderr
        assert state(cid)["status"] == "paused"
        assert rd(d, "cgroup.freeze") == "1" and "frozen 1" in rd(d, "cgroup.events")
        c1 = _count(b)
        time.sleep(0.8)
        assert _count(b) == c1, "the counter advanced while paused"
        r = pyrunc("ps", "--format", "json", cid)  # frozen, so the list can be compared exactly
        assert r.returncode == 0, r.stderr
        assert sorted(json.loads(r.stdout)) == sorted(int(x) for x in rd(d, "cgroup.procs").split())
        r = pyrunc("resume", cid)
        assert r.returncode == 0, r.stderr
        assert state(cid)["status"] == "running"
        wait_for(lambda: _count(b) > c1, "the counter to advance after resume")
        mark("pyrunc-pause-resume")

        # kill of a paused container
        assert pyrunc("pause", cid).returncode == 0
        r = pyrunc("kill", cid, "KILL")
        assert r.returncode == 0, r.stderr
        wait_status(cid, "stopped")
        wait_for(lambda: not rd(d, "cgroup.procs"), "the cgroup to empty")
        delete_and_check_gone(cid, d)
        mark("pyrunc-kill-paused")
    finally:
        force_cleanup(cid)


def test_kill_all(tmp_path):
    b = Bundle(tmp_path, ["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1001"])
    cid = new_id("kall")
    d = b.cgroup_dir(cid)
    try:
        st = create(b, cid)
        start(cid)
        wait_for(lambda: len(rd(d, "cgroup.procs").split()) >= 3, "three processes")
        # TERM through freeze/signal/thaw: the children die, the init (pid 1, no handler) stays
        r = pyrunc("kill", "--all", cid, "TERM")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: rd(d, "cgroup.procs").split() == [str(st["pid"])], "only the init left")
        assert state(cid)["status"] == "running", "kill --all left the container frozen"
        assert rd(d, "cgroup.freeze") == "0"
        r = pyrunc("kill", "--all", cid, "KILL")  # cgroup.kill
        assert r.returncode == 0, r.stderr
        wait_status(cid, "stopped")
        wait_for(lambda: not rd(d, "cgroup.procs"), "the cgroup to empty")
        delete_and_check_gone(cid, d)
        mark("pyrunc-kill-all")
    finally:
        force_cleanup(cid)


# ---------------------------------------------------------------- small memory limit

@pytest.mark.parametrize("cgroupns", [True, False], ids=["cgroupns", "no-cgroupns"])
def test_2mib_container_echoes(tmp_path, cgroupns):
    """The runtime's own work must not be charged to the container: its init joins the memory
    cgroup last (see Manager.add), and only the program itself runs under the 2 MiB limit."""
    b = Bundle(tmp_path, ["echo", "it works"])
    b.config["linux"]["resources"]["memory"] = {"limit": 2 * MiB, "swap": 2 * MiB}
    if not cgroupns:
        b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                           if n["type"] != "cgroup"]
    cid = new_id("mem")
    # echo it works, from a shell that first shows where it runs and, inside a cgroup namespace
    # (where the container's cgroup is /sys/fs/cgroup itself), the limits it runs under
    probe = "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.swap.max; " if cgroupns else ""
    b.config["process"]["args"] = ["sh", "-c", f"cat /proc/self/cgroup; {probe}echo it works"]
    try:
        b.write(cid)
        r = pyrunc("run", "--bundle", b.path, cid)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        out = r.stdout.split()
        assert out[0] == ("0::/" if cgroupns else f"0::/{b.group}/{cid}"), out
        want = [str(2 * MiB), "0"] if cgroupns else []
        assert out[1:] == [*want, "it", "works"], out
        assert not os.path.exists(b.cgroup_dir(cid)), "run left the container's cgroup"
        mark(f"pyrunc-2mib-{'cgroupns' if cgroupns else 'plain'}")
    finally:
        force_cleanup(cid)


# ---------------------------------------------------------------- io on a real disk

@pytest.fixture
def bfq_disk():
    """The VM's virtio disk with the BFQ scheduler, which per-device weights need; undone after,
    since io.bfq.weight changes how blockIO.weight is written for every later container."""
    blk = block_dev()
    if blk is None:
        pytest.skip("no /dev/vda in this VM (virtio_blk not loaded)")
    loaded = False
    if not os.path.exists("/sys/block/vda/queue/scheduler") or \
            "bfq" not in rd("/sys/block/vda/queue", "scheduler"):
        r = subprocess.run(["insmod", "/v2vm/modules/bfq.ko"], capture_output=True, text=True)
        assert r.returncode == 0, f"insmod bfq: {r.stderr}"
        loaded = True
    old = rd("/sys/block/vda/queue", "scheduler").split("[")[1].split("]")[0]
    with open("/sys/block/vda/queue/scheduler", "w") as f:
        f.write("bfq")
    try:
        yield blk
    finally:
        with open("/sys/block/vda/queue/scheduler", "w") as f:
            f.write(old)
        if loaded:
            subprocess.run(["rmmod", "bfq"], capture_output=True)


def _io_files(runtime: list[str], b: Bundle, cid: str) -> dict[str, str]:
    from guesthelp import detached
    b.write(cid)
    parent = os.path.dirname(b.cgroup_dir(cid))
    parent_existed = os.path.isdir(parent)
    r = detached(*runtime, "create", "--bundle", b.path, cid)
    assert r.returncode == 0, f"{runtime[0]} create: {r.stderr.strip()}"
    d = b.cgroup_dir(cid)
    try:
        return {"io.max": rd(d, "io.max"), "io.bfq.weight": rd(d, "io.bfq.weight")}
    finally:
        subprocess.run([*runtime, "delete", "--force", cid], capture_output=True)
        if not parent_existed:  # runc 1.1 leaves the parents it made
            try:
                os.rmdir(parent)
            except OSError:
                pass


def test_io_max_and_bfq_weights_on_virtio_disk(tmp_path, bfq_disk):
    maj, mnr = bfq_disk
    dev = {"major": maj, "minor": mnr}
    b = Bundle(tmp_path, ["sleep", "1000"])
    b.config["linux"]["resources"]["blockIO"] = {
        "weight": 300,
        "weightDevice": [{**dev, "weight": 500}],
        "throttleReadBpsDevice": [{**dev, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{**dev, "rate": 100}],
    }
    cid = new_id("io")
    d = b.cgroup_dir(cid)
    try:
        create(b, cid)
        io_max = rd(d, "io.max")
        assert io_max == f"{maj}:{mnr} rbps=1048576 wbps=max riops=max wiops=100", io_max
        bfq = rd(d, "io.bfq.weight").splitlines()
        assert "default 300" in bfq and f"{maj}:{mnr} 500" in bfq, bfq
        r = pyrunc("update", "--resources", "-", cid, stdin=json.dumps(
            {"blockIO": {"throttleReadBpsDevice": [{**dev, "rate": 2097152}],
                         "throttleWriteBpsDevice": [{**dev, "rate": 4194304}]}}))
        assert r.returncode == 0, r.stderr
        assert rd(d, "io.max") == f"{maj}:{mnr} rbps=2097152 wbps=4194304 riops=max wiops=100"
        ours = {"io.max": io_max, "io.bfq.weight": "\n".join(bfq)}
        delete_and_check_gone(cid, d)
    finally:
        force_cleanup(cid)
    if os.access(RUNC, os.X_OK):
        ref = _io_files([RUNC, "--root", "/run/runc-v2vm"], b, cid + "r")
        assert not os.path.exists(b.cgroup_dir(cid + "r"))
        assert ref == ours, f"runc wrote {ref}, pyrunc {ours}"
        print("V2VM-INFO runc agrees on io.max and io.bfq.weight", flush=True)
    mark("pyrunc-io-max")


def test_no_cgroupns_mount_shows_own_cgroup(tmp_path):
    """runc binds the container's own cgroup directory at /sys/fs/cgroup when there is no cgroup
    namespace: the container sees its limits there, and nothing of the host's tree."""
    b = Bundle(tmp_path, ["sh", "-c", "cat /sys/fs/cgroup/memory.max; ls /sys/fs/cgroup"])
    b.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                       if n["type"] != "cgroup"]
    cid = new_id("view")
    b.write(cid)
    try:
        r = pyrunc("run", "--bundle", b.path, cid)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        out = r.stdout.split()
        assert out[0] == str(32 * MiB), f"/sys/fs/cgroup is not the container's cgroup: {out}"
        assert b.group not in out, "the container sees the host's cgroup tree"
        mark("pyrunc-no-cgroupns-view")
    finally:
        force_cleanup(cid)
