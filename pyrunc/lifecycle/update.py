"""`update`: change a live container's resources, from a LinuxResources JSON (--resources FILE or
-, what containerd sends) and/or runc's individual flags, which win over the JSON."""
from __future__ import annotations

from pyrunc import jsonfast as json
import re
import sys

from pyrunc.errors import PyruncError
from pyrunc.cgroups.cmd import load, need_id

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)$", re.I)
_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_bytes(flag: str, s: str) -> int:
    """docker's RAMInBytes as runc uses it: "-1" is unlimited, suffixes are binary (512m, 1g)."""
    if s.strip() == "-1":
        return -1
    m = _SIZE.match(s.strip())
    if not m:
        raise PyruncError(f"invalid value for --{flag}: {s!r}")
    return int(float(m.group(1)) * _MULT[m.group(2).lower()])


def _int(flag: str, s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise PyruncError(f"invalid value for --{flag}: {s!r}") from None


def resources_from(flags: dict) -> dict:
    r: dict = {}
    src = flags.get("resources")
    if src:
        try:
            text = sys.stdin.read() if src == "-" else open(src).read()
            r = json.loads(text)
        except OSError as e:
            raise PyruncError(f"cannot read --resources {src}: {e.strerror}") from None
        except ValueError as e:
            raise PyruncError(f"--resources {src}: invalid JSON: {e}") from None
        if not isinstance(r, dict):
            raise PyruncError(f"--resources {src}: expected a JSON object (LinuxResources)")
    for f in ("l3_cache_schema", "mem_bw_schema"):
        if flags.get(f):
            raise PyruncError("Intel RDT is not supported by pyrunc (--l3-cache-schema, "
                              "--mem-bw-schema)")
    cpu_map = {"cpu_period": "period", "cpu_quota": "quota", "cpu_share": "shares",
               "cpu_rt_period": "realtimePeriod", "cpu_rt_runtime": "realtimeRuntime"}
    for f, k in cpu_map.items():
        if flags.get(f):
            r.setdefault("cpu", {})[k] = _int(f.replace("_", "-"), flags[f])
    for f, k in (("cpuset_cpus", "cpus"), ("cpuset_mems", "mems")):
        if flags.get(f):
            r.setdefault("cpu", {})[k] = flags[f]
    mem_map = {"memory": "limit", "memory_reservation": "reservation", "memory_swap": "swap",
               "kernel_memory": "kernel", "kernel_memory_tcp": "kernelTCP"}
    for f, k in mem_map.items():
        if flags.get(f):
            r.setdefault("memory", {})[k] = ram_bytes(f.replace("_", "-"), flags[f])
    if flags.get("pids_limit"):
        r.setdefault("pids", {})["limit"] = _int("pids-limit", flags["pids_limit"])
    if flags.get("blkio_weight"):
        w = _int("blkio-weight", flags["blkio_weight"])
        if w and not 10 <= w <= 1000:
            raise PyruncError("--blkio-weight must be 10 to 1000")
        r.setdefault("blockIO", {})["weight"] = w
    return r


def main(g, flags: dict, args: list[str]) -> int:
    from pyrunc import state
    cid = need_id(args, "update")
    r = resources_from(flags)
    with state.locked(g.root, cid) as path:
        _, st, status, mgr = load(g.root, cid)
        if status == "stopped":
            raise PyruncError(f"container {cid!r} is not running (status stopped)")
        mgr.update(r)
        st["cgroup"] = mgr.to_state()
        state.write(path, st)
    return 0
