"""`pyrunc events`: OOM notifications from the kernel, the --stats object in runc's types.Stats
shape (compared with runc 1.1.5's own output), --interval streaming and its end, and bad input.

Real containers on this hybrid host's v1 memory controller; the pure-v2 side runs in the VM
(spec-tests/v2vm/guest_tests/guest_events.py)."""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

CG = Path("/sys/fs/cgroup")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not (CG / "memory").is_dir(),
                                reason="needs root and the v1 hierarchies of these hosts")
MiB = 1 << 20

# The shell survives: only `tail`, which buffers the endless line in its cgroup, is OOM-killed.
# It then stays until the test has looked (/done), however slowly a loaded machine reports the OOM.
OOM_SCRIPT = ("while [ ! -e /go ]; do sleep 0.05; done; head -c 64m /dev/zero | tail; "
              "echo $? > /result; while [ ! -e /done ]; do sleep 0.05; done")


class Events:
    """A running `pyrunc events` whose lines are read by a thread, so a test can wait with a
    deadline for the next one."""

    def __init__(self, runtime, *args: str):
        self.proc = subprocess.Popen(runtime.cmd("events", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout: float) -> dict | None:
        """The next event, or None at the end of the stream; AssertionError on timeout."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout}s") from None
        return None if line is None else json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def _create(runtime, bundle, args: list[str], resources: dict | None = None) -> str:
    bundle.config["process"]["args"] = args
    if resources is not None:
        bundle.config["linux"]["resources"] = resources
    bundle.write()
    cid = runtime.new_id("ev")
    runtime("create", "--bundle", str(bundle.path), cid, check=True)
    return cid


def _wait(pred, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (v := pred()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return v


def _has_eventfd(pid: int) -> bool:
    """Whether the process holds an eventfd: pyrunc's v1 OOM watch registers it with
    cgroup.event_control straight after creating it, long before the OOM this test sets off."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(f) == "anon_inode:[eventfd]" for f in fds.iterdir())
    except FileNotFoundError:
        return False


def test_oom_kill_is_reported_at_once_and_the_stream_ends_with_the_container(runtime, bundle):
    cid = _create(runtime, bundle, ["sh", "-c", OOM_SCRIPT], {"memory": {"limit": 16 * MiB}})
    # started before the container is: a created container has a cgroup to watch already.
    # An interval of an hour: any line before it can only come from the OOM notification.
    ev = Events(runtime, "--interval", "1h", cid)
    try:
        runtime("start", cid, check=True)
        _wait(lambda: _has_eventfd(ev.proc.pid), "`events` to register its OOM eventfd")
        (bundle.rootfs / "go").write_text("")
        got = ev.next(timeout=15)
        assert got == {"type": "oom", "id": cid}, got
        # reported while it happened, not at the container's end: the shell still runs
        assert runtime.state(cid)["status"] == "running"
        result = _wait(lambda: (bundle.rootfs / "result").exists() and
                       (bundle.rootfs / "result").read_text().strip(), "the shell's report")
        assert result == "137", "tail should have died of SIGKILL (128+9) while sh survived"
        (bundle.rootfs / "done").write_text("")
        # one kill, one event (the kernel signals many times per kill); then the end of the
        # stream as soon as the container's init exits, with status 0
        assert ev.next(timeout=15) is None
        assert ev.proc.wait(5) == 0, ev.proc.stderr.read()
        assert runtime.state(cid)["status"] == "stopped"
        oom_control = (CG / "memory").glob(f"**/{cid}/memory.oom_control")
        assert "oom_kill 1" in next(oom_control).read_text()
    finally:
        ev.close()


def test_no_oom_event_without_an_oom(runtime, bundle):
    cid = _create(runtime, bundle, ["sh", "-c", "head -c 4m /dev/zero | tail; sleep 1"],
                  {"memory": {"limit": 64 * MiB}})
    ev = Events(runtime, "--interval", "1h", cid)
    try:
        runtime("start", cid, check=True)
        assert ev.next(timeout=15) is None  # the stream ends with the container, no oom in it
        assert ev.proc.wait(5) == 0
    finally:
        ev.close()


def test_interval_streams_stats_until_the_container_is_deleted(runtime, bundle):
    cid = _create(runtime, bundle, ["sleep", "1000"], {"memory": {"limit": 32 * MiB}})
    runtime("start", cid, check=True)
    t0 = time.monotonic()
    ev = Events(runtime, "--interval", "100ms", cid)
    try:
        got = [ev.next(timeout=10) for _ in range(4)]
        assert all(e["type"] == "stats" and e["id"] == cid for e in got), got
        assert all(e["data"]["memory"]["usage"]["limit"] == 32 * MiB for e in got)
        assert time.monotonic() - t0 < 5, "4 lines at 100ms took far too long"
        assert ev.proc.poll() is None
        runtime("delete", "--force", cid, check=True)
        deadline = time.monotonic() + 10
        while (e := ev.next(timeout=10)) is not None:  # stats already on their way may arrive
            assert e["type"] == "stats", e
            assert time.monotonic() < deadline
        assert ev.proc.wait(5) == 0, ev.proc.stderr.read()
    finally:
        ev.close()


def test_first_stats_come_one_interval_after_the_start_as_in_runc(runtime, bundle):
    cid = _create(runtime, bundle, ["sleep", "1000"])
    runtime("start", cid, check=True)
    ev = Events(runtime, "--interval", "1500ms", cid)
    try:
        t0 = time.monotonic()
        assert ev.next(timeout=10)["type"] == "stats"
        assert time.monotonic() - t0 > 1.0
    finally:
        ev.close()


def _stats(runtime, cid: str) -> dict:
    r = runtime("events", "--stats", cid, check=True)
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    ev = json.loads(lines[0])
    assert set(ev) == {"type", "id", "data"} and ev["type"] == "stats" and ev["id"] == cid, ev
    return ev["data"]


BUSY = ("dd if=/dev/zero of=/blk bs=1M count=2 oflag=direct 2>/dev/null; i=0; "
        "while [ $i -lt 20000 ]; do i=$((i+1)); done; touch /ready; sleep 1000")


def test_stats_shape_and_live_numbers(runtime, bundle):
    cid = _create(runtime, bundle, ["sh", "-c", BUSY],
                  {"memory": {"limit": 48 * MiB}, "pids": {"limit": 16},
                   "cpu": {"shares": 512}})
    runtime("start", cid, check=True)
    _wait(lambda: (bundle.rootfs / "ready").exists(), "the busy loop")
    d = _stats(runtime, cid)
    assert list(d) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                       "network_interfaces"], list(d)
    u = d["cpu"]["usage"]
    assert u["total"] > 0 and isinstance(u["kernel"], int) and isinstance(u["user"], int), u
    assert u["kernel"] + u["user"] > 0, u  # 20000 shell iterations take some ticks
    assert len(u["percpu"]) >= 1 and sum(u["percpu"]) == pytest.approx(u["total"], rel=0.2), u
    assert len(u["percpu_kernel"]) == len(u["percpu_user"]) == len(u["percpu"])
    assert isinstance(d["cpu"]["throttling"], dict)
    assert d["cpuset"]["cpus"] and d["cpuset"]["mems"], d["cpuset"]
    assert d["cpuset"]["sched_load_balance"] in (0, 1)
    m = d["memory"]
    assert m["usage"]["limit"] == 48 * MiB and 0 < m["usage"]["usage"] <= 48 * MiB, m["usage"]
    assert m["usage"]["max"] >= m["usage"]["usage"]
    assert {"limit", "failcnt"} <= set(m["swap"]) and {"limit", "failcnt"} <= set(m["kernel"])
    assert "total_rss" in m["raw"] and "use_hierarchy" not in m
    assert d["pids"]["limit"] == 16 and d["pids"]["current"] >= 1, d["pids"]
    written = [e for e in d["blkio"].get("ioServiceBytesRecursive", []) if e.get("op") == "Write"]
    if written:  # a tmpfs or overlay rootfs does no block I/O of its own
        assert sum(e.get("value", 0) for e in written) >= 2 * MiB, d["blkio"]
    assert d["intel_rdt"] == {} and d["network_interfaces"] is None


def _keys(v, pre: str = "") -> set[str]:
    """Every key path of a stats object: the shape, without the numbers (and raw's kernel keys)."""
    out = set()
    if isinstance(v, dict):
        for k, x in v.items():
            out.add(pre + "." + k)
            if k != "raw":
                out |= _keys(x, pre + "." + k)
    elif isinstance(v, list) and v and isinstance(v[0], dict):
        out |= _keys(v[0], pre + "[]")
    return out


# runc's stats fields tagged `omitempty` whose presence depends on a live number.
_OMITEMPTY = {".data.memory.cache", ".data.pids.current", ".data.cpu.throttling.periods",
              ".data.cpu.throttling.throttledPeriods", ".data.cpu.throttling.throttledTime"}


def _at(v, path: str):
    """The value at a key path made by _keys (no list steps: the omitempty keys have none)."""
    for k in path.split(".")[1:]:
        v = v[k]
    return v


@pytest.mark.skipif(not shutil.which("runc"), reason="runc is not installed")
def test_stats_shape_matches_runc(runtime, bundle, tmp_path):
    """The same bundle under runc 1.1.5 and pyrunc: the same keys, in the same places. hugetlb
    differs by design: runc ignores the unified hierarchy's hugetlb on a hybrid host."""
    res = {"memory": {"limit": 48 * MiB}, "pids": {"limit": 16}}
    cid = _create(runtime, bundle, ["sh", "-c", BUSY], res)
    runtime("start", cid, check=True)
    _wait(lambda: (bundle.rootfs / "ready").exists(), "pyrunc's busy loop")
    (bundle.rootfs / "ready").unlink()
    rroot = tmp_path / "runc-root"
    rid = f"pyrunc-evcmp-{uuid.uuid4().hex[:8]}"
    cfg = json.loads((bundle.path / "config.json").read_text())
    cfg["linux"]["cgroupsPath"] = f"/{rid}"
    cfg["root"]["path"] = str(bundle.rootfs)  # the same files: runc refuses a symlinked rootfs
    rb = tmp_path / "runc-bundle"
    rb.mkdir()
    (rb / "config.json").write_text(json.dumps(cfg))
    runc = ["runc", "--root", str(rroot)]
    try:
        with tempfile.TemporaryFile("w+") as err:  # a pipe: the container would hold it open
            r = subprocess.run([*runc, "run", "-d", "--bundle", str(rb), rid], timeout=30,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            err.seek(0)
            assert r.returncode == 0, f"runc run failed: {err.read()}"
        _wait(lambda: (bundle.rootfs / "ready").exists(), "runc's busy loop")
        theirs = json.loads(subprocess.run([*runc, "events", "--stats", rid], check=True,
                                           capture_output=True, text=True, timeout=30).stdout)
    finally:
        subprocess.run([*runc, "delete", "--force", rid], capture_output=True, timeout=30)
    ours = {"type": "stats", "id": rid, "data": _stats(runtime, cid)}
    mine, ref = _keys(ours), _keys(theirs)
    mine = {k for k in mine if not k.startswith(".data.hugetlb.")}
    ref = {k for k in ref if not k.startswith(".data.hugetlb.")}
    # A counter runc tags omitempty vanishes when it reads zero, and the two containers' numbers
    # differ (page cache is charged to whichever cgroup touched a page first). Such a key may be
    # on one side only, provided that side's value is non-zero: both then follow omitempty.
    for k in mine ^ ref:
        side = ours if k in mine else theirs
        assert k in _OMITEMPTY and _at(side, k), \
            f"only pyrunc: {sorted(mine - ref)}; only runc: {sorted(ref - mine)}"
    assert list(ours["data"]["cpu"]["usage"]) == list(theirs["data"]["cpu"]["usage"])
    assert list(ours["data"]["cpuset"]) == list(theirs["data"]["cpuset"])
    assert set(ours["data"]["memory"]["raw"]) == set(theirs["data"]["memory"]["raw"])


@pytest.mark.parametrize("interval", ["abc", "0s", "-1s", "5", "1x", ""])
def test_bad_interval_is_one_clear_error(runtime, bundle, interval):
    cid = _create(runtime, bundle, ["sleep", "1000"])
    r = runtime("events", "--interval", interval, cid)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "interval" in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_events_of_missing_or_stopped_container_is_one_clear_error(runtime, bundle):
    r = runtime("events", "--stats", "no-such-container-" + uuid.uuid4().hex[:6])
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "does not exist" in r.stderr
    cid = _create(runtime, bundle, ["true"])
    runtime("start", cid, check=True)
    _wait(lambda: runtime.state(cid)["status"] == "stopped", "the container to stop")
    for args in (["--stats"], ["--interval", "1s"]):
        r = runtime("events", *args, cid)
        assert r.returncode == 1 and "not running" in r.stderr and r.stdout == "", r.stderr


def test_v1_signal_bursts_become_one_event_per_kill():
    """The v1 eventfd fires before the victim is chosen and again while it dies: the burst measured
    on this host for one kill (oom_kill read at each signal) must give one event, a second kill
    inside the burst a second one, and a signal after a quiet gap a new one."""
    from pyrunc.cgroups.oom import EPISODE_GAP, _V1
    w = _V1.__new__(_V1)  # the judgement alone, no cgroup
    w._last, w._base = -EPISODE_GAP - 1.0, 0
    burst = [(1.3906, 0), (1.3955, 1), (1.3963, 1), (1.3966, 1), (1.3968, 1), (1.397, 1)]
    assert [w._judge(t, k) for t, k in burst] == [1, 0, 0, 0, 0, 0]
    assert w._judge(1.40, 2) == 1  # another victim in the same burst
    assert w._judge(1.41, 2) == 0
    assert w._judge(1.41 + EPISODE_GAP + 0.1, 2) == 1  # a new OOM, before its kill is counted
    assert w._judge(1.41 + EPISODE_GAP + 0.11, 3) == 0
