"""Runs inside the v2 VM only: `pyrunc events` on a pure cgroup-v2 kernel. An OOM kill in the
container's cgroup is reported at once from memory.events (poll(2) on the file, not a timer), the
stream ends with the container, and --interval streams stats in runc's shape until delete.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time

from guesthelp import (MiB, PYRUNC, Bundle, create, delete_and_check_gone, force_cleanup, mark,
                       new_id, rd, start, state, wait_for)

# It then stays until the test has looked (/done), however slowly a loaded machine reports the OOM.
OOM_SCRIPT = ("while [ ! -e /go ]; do sleep 0.05; done; head -c 64m /dev/zero | tail; "
              "echo $? > /result; while [ ! -e /done ]; do sleep 0.05; done")


class Events:
    """`pyrunc events` with its lines read by a thread, so the test can wait with a deadline."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([*PYRUNC, "events", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout: float) -> dict | None:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout}s") from None
        return None if line is None else json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def test_oom_kill_reported_from_memory_events(tmp_path):
    b = Bundle(tmp_path, ["sh", "-c", OOM_SCRIPT])
    b.config["linux"]["resources"]["memory"] = {"limit": 16 * MiB, "swap": 16 * MiB}
    cid = new_id("oom")
    d = b.cgroup_dir(cid)
    ev = None
    try:
        create(b, cid)
        ev = Events("--interval", "1h", cid)  # no stats for an hour: any line is the OOM's
        start(cid)
        time.sleep(0.5)
        with open(os.path.join(b.rootfs, "go"), "w"):
            pass
        got = ev.next(timeout=60)
        assert got == {"type": "oom", "id": cid}, got
        assert state(cid)["status"] == "running", "the OOM must be reported while it happens"
        kills = dict(line.split() for line in rd(d, "memory.events").splitlines())
        assert int(kills["oom_kill"]) >= 1, kills
        assert wait_for(lambda: b.file("/result"), "the shell's report", timeout=60) == "137"
        with open(os.path.join(b.rootfs, "done"), "w"):
            pass
        assert ev.next(timeout=60) is None  # the stream ends with the container's init
        assert ev.proc.wait(10) == 0, ev.proc.stderr.read()
        delete_and_check_gone(cid, d)
        mark("pyrunc-events-oom")
    finally:
        if ev is not None:
            ev.close()
        force_cleanup(cid)


def test_interval_stream_in_runc_shape_until_delete(tmp_path):
    b = Bundle(tmp_path, ["sleep", "1000"])
    b.config["linux"]["resources"].update({"memory": {"limit": 32 * MiB}, "pids": {"limit": 12}})
    cid = new_id("evs")
    d = b.cgroup_dir(cid)
    ev = None
    try:
        create(b, cid)
        start(cid)
        ev = Events("--interval", "200ms", cid)
        got = [ev.next(timeout=30) for _ in range(3)]
        for e in got:
            assert e["type"] == "stats" and e["id"] == cid, e
            data = e["data"]
            assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb",
                                  "intel_rdt", "network_interfaces"], list(data)
            assert list(data["cpu"]["usage"])[-2:] == ["kernel", "user"], data["cpu"]
            assert data["memory"]["usage"]["limit"] == 32 * MiB, data["memory"]
            assert data["memory"]["usage"]["usage"] > 0
            assert data["pids"] == {"current": 1, "limit": 12}, data["pids"]
            assert "sched_load_balance" in data["cpuset"] and "use_hierarchy" not in data["memory"]
        r = subprocess.run([*PYRUNC, "delete", "--force", cid], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        while (e := ev.next(timeout=30)) is not None:
            assert e["type"] == "stats", e
        assert ev.proc.wait(10) == 0, ev.proc.stderr.read()
        assert not os.path.exists(d)
        bad = subprocess.run([*PYRUNC, "events", "--interval", "soon", cid], capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 1 and "interval" in bad.stderr, bad.stderr
        mark("pyrunc-events-interval")
    finally:
        if ev is not None:
            ev.close()
        force_cleanup(cid)
