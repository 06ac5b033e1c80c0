"""Usage numbers in runc's libcontainer types.Stats JSON shape (what `runc events --stats` prints
under "data", and what containerd's `ctr task metrics` decodes), from v1 files or cgroup2 files.
"""
from __future__ import annotations

import os

from pyrunc.cgroups import fs

MAX_U64 = 2**64 - 1


def _int(s: str) -> int:
    s = s.strip()
    if s in ("", "max"):
        return MAX_U64 if s == "max" else 0
    try:
        return int(s)
    except ValueError:
        return 0


def _kv(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v:
            out[k] = _int(v)
    return out


def _page_sizes() -> list[str]:
    out = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return out
    for n in sorted(names):
        kb = int(n.split("-")[1].rstrip("kB"))
        out.append(f"{kb // 1048576}GB" if kb >= 1048576 else
                   (f"{kb // 1024}MB" if kb >= 1024 else f"{kb}KB"))
    return out


def empty() -> dict:
    """What runc prints for a cgroup without the controllers: its non-omitempty fields, zero."""
    zero = {"limit": 0, "failcnt": 0}
    return {"cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
            "cpuset": _cpuset([], [], {}),
            "memory": {"usage": dict(zero), "swap": dict(zero), "kernel": dict(zero),
                       "kernelTCP": dict(zero)},
            "pids": {}, "blkio": {}, "hugetlb": {}, "intel_rdt": {}, "network_interfaces": None}


def _drop_zero(d: dict) -> dict:
    """Go's omitempty on the fields runc marks so."""
    return {k: v for k, v in d.items() if v}


def collect(mgr) -> dict:
    s = empty()
    if mgr.kind == "v2":
        _v2(mgr.paths[""], s)
    else:
        _v1(mgr, s)
    return s


# ---- v1 ---------------------------------------------------------------------------------------
def _mem_entry(d: str, prefix: str) -> dict:
    e = {"limit": _int(fs.read_or(d, prefix + "limit_in_bytes")),
         "usage": _int(fs.read_or(d, prefix + "usage_in_bytes")),
         "max": _int(fs.read_or(d, prefix + "max_usage_in_bytes")),
         "failcnt": _int(fs.read_or(d, prefix + "failcnt"))}
    return {k: v for k, v in e.items() if v or k in ("limit", "failcnt")}


def _blkio_v1(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            maj, mnr = parts[0].split(":")
            out.append(_drop_zero({"major": int(maj), "minor": int(mnr), "op": parts[1],
                                   "value": int(parts[2])}))
    return out


def _v1(mgr, s: dict) -> None:
    hz = os.sysconf("SC_CLK_TCK")
    d = mgr.path_of("cpuacct")
    if d:
        st = _kv(fs.read_or(d, "cpuacct.stat"))
        pk, pu = _percpu_modes(fs.read_or(d, "cpuacct.usage_all"))
        # runc's key order: total, percpu, percpu_kernel, percpu_user, kernel, user
        s["cpu"]["usage"] = _drop_zero({
            "total": _int(fs.read_or(d, "cpuacct.usage")),
            "percpu": [int(x) for x in fs.read_or(d, "cpuacct.usage_percpu").split()],
            "percpu_kernel": pk, "percpu_user": pu}) | {
            "kernel": st.get("system", 0) * 1_000_000_000 // hz,
            "user": st.get("user", 0) * 1_000_000_000 // hz}
    d = mgr.path_of("cpu")
    if d:
        st = _kv(fs.read_or(d, "cpu.stat"))
        s["cpu"]["throttling"] = _drop_zero({"periods": st.get("nr_periods", 0),
                                             "throttledPeriods": st.get("nr_throttled", 0),
                                             "throttledTime": st.get("throttled_time", 0)})
    d = mgr.path_of("cpuset")
    if d:
        s["cpuset"] = _cpuset(_ranges(fs.read_or(d, "cpuset.cpus")),
                              _ranges(fs.read_or(d, "cpuset.mems")),
                              {k: fs.read_or(d, "cpuset." + k) for k in _CPUSET_FLAGS})
    d = mgr.path_of("memory")
    if d:
        raw = _kv(fs.read_or(d, "memory.stat"))
        m = s["memory"]
        m["cache"] = raw.get("total_cache", raw.get("cache", 0))
        m["usage"] = _mem_entry(d, "memory.")
        m["swap"] = _mem_entry(d, "memory.memsw.")
        m["kernel"] = _mem_entry(d, "memory.kmem.")
        m["kernelTCP"] = _mem_entry(d, "memory.kmem.tcp.")
        m["raw"] = raw
        if not m["cache"]:
            del m["cache"]
    d = mgr.path_of("pids")
    if d:
        mx = fs.read_or(d, "pids.max")
        s["pids"] = _drop_zero({"current": _int(fs.read_or(d, "pids.current")),
                                "limit": 0 if mx == "max" else _int(mx)})
    d = mgr.path_of("blkio")
    if d:
        b = {"ioServiceBytesRecursive": _blkio_v1(fs.read_or(
                d, "blkio.throttle.io_service_bytes_recursive")),
             "ioServicedRecursive": _blkio_v1(fs.read_or(
                 d, "blkio.throttle.io_serviced_recursive"))}
        s["blkio"] = _drop_zero(b)
    d = mgr.path_of("hugetlb")
    if d:
        for ps in _page_sizes():
            p = f"hugetlb.{ps}."
            s["hugetlb"][ps] = _drop_zero({"usage": _int(fs.read_or(d, p + "usage_in_bytes")),
                                           "max": _int(fs.read_or(d, p + "max_usage_in_bytes"))}
                                          ) | {"failcnt": _int(fs.read_or(d, p + "failcnt"))}
    elif mgr.unified():
        _hugetlb_v2(mgr.unified(), s)


def _percpu_modes(text: str) -> tuple[list[int], list[int]]:
    """cpuacct.usage_all ("cpu user system" then one line per cpu, in ns): per-cpu kernel and
    user time, runc's percpu_kernel and percpu_user."""
    kern: list[int] = []
    user: list[int] = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            user.append(_int(parts[1]))
            kern.append(_int(parts[2]))
    return kern, user


# runc's types.CPUSet prints these always (no omitempty), zero where there is no file (v2)
_CPUSET_FLAGS = ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                 "memory_spread_page", "memory_spread_slab", "memory_pressure",
                 "sched_load_balance", "sched_relax_domain_level")


def _cpuset(cpus: list[int], mems: list[int], flags: dict[str, str]) -> dict:
    out: dict = {}
    if cpus:
        out["cpus"] = cpus
    out["cpu_exclusive"] = 0
    if mems:
        out["mems"] = mems
    for k in _CPUSET_FLAGS:
        v = flags.get(k, "").strip()
        out[k] = int(v) if v.lstrip("-").isdigit() else 0
    return out


def _ranges(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part.strip():
            out.append(int(part))
    return out


# ---- v2 ---------------------------------------------------------------------------------------
def _hugetlb_v2(d: str, s: dict) -> None:
    for ps in _page_sizes():
        if not fs.has(d, f"hugetlb.{ps}.current"):
            continue
        ev = _kv(fs.read_or(d, f"hugetlb.{ps}.events"))
        s["hugetlb"][ps] = _drop_zero({"usage": _int(fs.read_or(d, f"hugetlb.{ps}.current"))}
                                      ) | {"failcnt": ev.get("max", 0)}


def _v2(d: str, s: dict) -> None:
    st = _kv(fs.read_or(d, "cpu.stat"))
    s["cpu"]["usage"] = _drop_zero({"total": st.get("usage_usec", 0) * 1000}) | {
        "kernel": st.get("system_usec", 0) * 1000, "user": st.get("user_usec", 0) * 1000}
    s["cpu"]["throttling"] = _drop_zero({"periods": st.get("nr_periods", 0),
                                         "throttledPeriods": st.get("nr_throttled", 0),
                                         "throttledTime": st.get("throttled_usec", 0) * 1000})
    s["cpuset"] = _cpuset(_ranges(fs.read_or(d, "cpuset.cpus.effective")),
                          _ranges(fs.read_or(d, "cpuset.mems.effective")), {})
    if fs.has(d, "memory.current"):
        raw = _kv(fs.read_or(d, "memory.stat"))
        ev = _kv(fs.read_or(d, "memory.events"))
        m = s["memory"]
        m["usage"] = _drop_zero({"usage": _int(fs.read_or(d, "memory.current")),
                                 "max": _int(fs.read_or(d, "memory.peak", "0"))}) | {
            "limit": _int(fs.read_or(d, "memory.max")), "failcnt": ev.get("max", 0)}
        if fs.has(d, "memory.swap.current"):
            # v1 reports memory+swap as "swap"; runc adds v2's separate numbers up to match
            swap_max = _int(fs.read_or(d, "memory.swap.max"))
            mem_max = m["usage"]["limit"]
            m["swap"] = _drop_zero({"usage": _int(fs.read_or(d, "memory.swap.current"))
                                    + m["usage"].get("usage", 0)}) | {
                "limit": swap_max if MAX_U64 in (swap_max, mem_max) else swap_max + mem_max,
                "failcnt": 0}
        if raw.get("file"):
            m["cache"] = raw["file"]
        m["raw"] = raw
    if fs.has(d, "pids.current"):
        mx = fs.read_or(d, "pids.max")
        s["pids"] = _drop_zero({"current": _int(fs.read_or(d, "pids.current")),
                                "limit": 0 if mx == "max" else _int(mx)})
    if fs.has(d, "io.stat"):
        byts, ios = [], []
        for line in fs.read_or(d, "io.stat").splitlines():
            parts = line.split()
            maj, mnr = (int(x) for x in parts[0].split(":"))
            kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            for op, bk, ik in (("Read", "rbytes", "rios"), ("Write", "wbytes", "wios")):
                byts.append(_drop_zero({"major": maj, "minor": mnr, "op": op,
                                        "value": int(kv.get(bk, 0))}))
                ios.append(_drop_zero({"major": maj, "minor": mnr, "op": op,
                                       "value": int(kv.get(ik, 0))}))
        s["blkio"] = _drop_zero({"ioServiceBytesRecursive": byts, "ioServicedRecursive": ios})
    _hugetlb_v2(d, s)
