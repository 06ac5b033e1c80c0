"""`events`: usage statistics of the container's cgroup, once (--stats) or every --interval, plus
"oom" events, as JSON lines in runc's event shape: {"type": ..., "id": ..., "data": ...}.

As in runc 1.1.5, the stream prints its first stats one interval after it starts (default 5s),
and an {"type":"oom","id":...} line (no data) as soon as the kernel reports an OOM in the
container's memory cgroup (pyrunc.cgroups.oom). Unlike runc, which keeps printing the stats of a
dead container until it is killed, the stream ends (status 0) when the container's init exits: a
pidfd on the init wakes the same poll(2) that waits for OOMs and for the next interval, so there
is no sleep loop.
"""
from __future__ import annotations

from pyrunc import jsonfast as json
import os
import sys
import time

from pyrunc.errors import PyruncError
from pyrunc.cgroups.cmd import load, need_id

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}


_MAX_WAIT_MS = 3_600_000  # poll(2) takes a C int: a huge --interval is waited for in hours


def parse_duration(s: str) -> float:
    """A Go time.Duration string ("5s", "1m30s", "250ms") in seconds; runc's --interval is one."""
    import re
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", s or "")
    if not parts or "".join(a + b for a, b in parts) != s:
        raise PyruncError(f"invalid --interval {s!r}: a duration such as 5s, 500ms or 1m30s")
    secs = sum(float(a) * _UNITS[b] for a, b in parts)
    if secs <= 0:
        raise PyruncError("--interval must be greater than 0")
    return secs


def _emit(kind: str, cid: str, data: dict | None = None) -> None:
    ev: dict = {"type": kind, "id": cid}
    if data is not None:
        ev["data"] = data
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def _pin_init(st: dict) -> int | None:
    """A pidfd on the container's init, or None if it has already exited (or its pid was
    recycled: the start time recorded at create must still match once the pidfd holds it)."""
    from pyrunc import state
    pid = st.get("pid") or 0
    if pid <= 0:
        return None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if state.process_start_time(pid) != st.get("init_start_time"):
        os.close(fd)
        return None
    return fd


def main(g, flags: dict, args: list[str]) -> int:
    cid = need_id(args, "events")
    given = flags.get("interval")
    interval = parse_duration("5s" if given is None else given)
    path, st, status, mgr = load(g.root, cid)
    if status == "stopped":
        raise PyruncError(f"container {cid!r} is not running")
    try:
        if flags.get("stats"):
            _emit("stats", cid, mgr.stats())
            return 0
        return _stream(cid, st, mgr, interval)
    except BrokenPipeError:  # the reader went away: nothing left to report to
        try:
            sys.stdout = None  # type: ignore[assignment]  # no flush error at exit
        except Exception:
            pass
        return 0


def _stream(cid: str, st: dict, mgr, interval: float) -> int:
    import select
    from pyrunc.cgroups import oom
    pidfd = _pin_init(st)
    if pidfd is None:
        return 0
    try:
        watcher = oom.watch(mgr)
    except OSError as e:
        os.close(pidfd)
        raise PyruncError(f"cannot watch the container's memory cgroup for OOMs: {e.strerror}"
                          ) from None
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if watcher is not None:
        poller.register(watcher.fd, watcher.mask)
    next_stats = time.monotonic() + interval
    try:
        while True:
            wait_ms = min(_MAX_WAIT_MS, max(0, int((next_stats - time.monotonic()) * 1000 + 0.999)))
            ready = poller.poll(wait_ms)
            exited = any(fd == pidfd for fd, _ in ready)
            if watcher is not None and (exited or any(fd == watcher.fd for fd, _ in ready)):
                # on exit too: an OOM that killed the init is reported before the stream ends
                for _ in range(watcher.consume()):
                    _emit("oom", cid)
                if watcher.gone:
                    poller.unregister(watcher.fd)
                    watcher.close()
                    watcher = None
            if exited:
                return 0
            now = time.monotonic()
            if now >= next_stats:
                _emit("stats", cid, mgr.stats())
                next_stats += interval
                if next_stats <= now:  # a slow reader or a suspended host: do not burst
                    next_stats = now + interval
    finally:
        if watcher is not None:
            watcher.close()
        os.close(pidfd)
