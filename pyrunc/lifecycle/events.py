"""`events`: usage statistics of the container's cgroup, once (--stats) or every --interval, plus
"oom" events, as JSON lines in runc's event shape: {"type": ..., "id": ..., "data": ...}."""
from __future__ import annotations

from pyrunc import jsonfast as json
import re
import sys
import time

from pyrunc.errors import PyruncError
from pyrunc.cgroups.cmd import load, need_id

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(s: str) -> float:
    """A Go time.Duration string ("5s", "1m30s", "250ms") in seconds."""
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", s or "")
    if not parts or "".join(a + b for a, b in parts) != s:
        raise PyruncError(f"invalid duration {s!r}: use e.g. 5s, 500ms, 1m")
    secs = sum(float(a) * _UNITS[b] for a, b in parts)
    if secs <= 0:
        raise PyruncError("duration must be greater than 0")
    return secs


def _emit(kind: str, cid: str, data: dict | None = None) -> None:
    ev = {"type": kind, "id": cid}
    if data is not None:
        ev["data"] = data
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def main(g, flags: dict, args: list[str]) -> int:
    from pyrunc import state
    from pyrunc.cgroups.stats import oom_count
    cid = need_id(args, "events")
    interval = parse_duration(flags.get("interval") or "5s")
    path, st, status, mgr = load(g.root, cid)
    if status == "stopped":
        raise PyruncError(f"container {cid!r} is not running")
    if flags.get("stats"):
        _emit("stats", cid, mgr.stats())
        return 0
    ooms = oom_count(mgr)
    next_stats = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_stats:
            _emit("stats", cid, mgr.stats())
            next_stats = now + interval
        n = oom_count(mgr)
        if n > ooms:
            _emit("oom", cid)
            ooms = n
        try:
            if state.status(path, state.read(g.root, cid)) == "stopped":
                return 0
        except PyruncError:
            return 0  # deleted
        time.sleep(min(0.2, max(0.0, next_stats - time.monotonic())) or 0.05)
