"""linux.resources on a cgroup2 directory, converted from the v1-shaped spec fields as runc 1.1
converts them. `convert` is pure (a list of (file, value) writes) so it can be checked without a
kernel; `apply` writes the list into any directory, a real cgroup or a test's fake tree.
"""
from __future__ import annotations

from pyrunc.cgroups import fs
from pyrunc.errors import PyruncError


def cpu_weight(shares: int) -> int:
    """runc's mapping of cpu.shares [2, 262144] onto cpu.weight [1, 10000]."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight(blkio_weight: int) -> int:
    """runc's mapping of blkio.weight [10, 1000] onto io.weight [1, 10000]."""
    if blkio_weight == 0:
        return 0
    return 1 + (blkio_weight - 10) * 9999 // 990


def swap_max(swap: int, limit: int) -> int:
    """v1's memsw (memory+swap) to v2's memory.swap.max (swap alone); 0 means leave unset."""
    if limit == -1 and swap == 0:
        return -1  # both unlimited, as v1 would read it
    if swap in (-1, 0):
        return swap
    if limit in (0, -1):
        raise PyruncError("unable to set swap limit without memory limit")
    if limit < 0:
        raise PyruncError(f"invalid memory value: {limit}")
    if swap < limit:
        raise PyruncError("memory+swap limit should be >= memory limit")
    return swap - limit


def _num(v: int) -> str:
    return "max" if v == -1 else str(v)


def convert(r: dict, has_bfq: bool = False) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    m = r.get("memory") or {}
    limit, swap = m.get("limit") or 0, m.get("swap") or 0
    sw = swap_max(swap, limit)
    if sw != 0 or swap > 0:  # swap == limit > 0: memory+swap no bigger than memory, no swap
        out.append(("memory.swap.max", _num(sw)))
    if limit:
        out.append(("memory.max", _num(limit)))
    if m.get("reservation"):
        out.append(("memory.low", _num(m["reservation"])))

    c = r.get("cpu") or {}
    if c.get("realtimeRuntime") or c.get("realtimePeriod"):
        raise PyruncError("linux.resources.cpu.realtimeRuntime/realtimePeriod are not supported "
                          "on cgroup v2")
    if c.get("shares"):
        out.append(("cpu.weight", str(cpu_weight(int(c["shares"])))))
    if c.get("quota") or c.get("period"):
        s = str(c["quota"]) if (c.get("quota") or 0) > 0 else "max"
        if c.get("period"):
            s += f" {c['period']}"
        out.append(("cpu.max", s))
    if c.get("burst") is not None:
        out.append(("cpu.max.burst", str(c["burst"])))
    if c.get("idle") is not None:
        out.append(("cpu.idle", str(c["idle"])))
    if c.get("cpus"):
        out.append(("cpuset.cpus", c["cpus"]))
    if c.get("mems"):
        out.append(("cpuset.mems", c["mems"]))

    p = (r.get("pids") or {}).get("limit")
    if p:
        out.append(("pids.max", "max" if p < 0 else str(p)))

    b = r.get("blockIO") or {}
    if b.get("weight"):
        out.append(("io.bfq.weight", str(b["weight"])) if has_bfq
                   else ("io.weight", str(io_weight(int(b["weight"])))))
    for wd in b.get("weightDevice") or []:
        if wd.get("weight"):
            if not has_bfq:
                raise PyruncError("linux.resources.blockIO.weightDevice needs the BFQ scheduler "
                                  "(io.bfq.weight) on cgroup v2")
            out.append(("io.bfq.weight", f"{wd['major']}:{wd['minor']} {wd['weight']}"))
    for key, k in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                   ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for t in b.get(key) or []:
            out.append(("io.max", f"{t['major']}:{t['minor']} {k}={t['rate']}"))

    for h in r.get("hugepageLimits") or []:
        out.append((f"hugetlb.{h['pageSize']}.max", str(h["limit"])))
    from pyrunc.cgroups.v1 import rdma_line
    for dev, lim in (r.get("rdma") or {}).items():
        out.append(("rdma.max", rdma_line(dev, lim)))
    n = r.get("network") or {}
    if n.get("classID") or n.get("priorities"):
        raise PyruncError("linux.resources.network is not supported on cgroup v2 "
                          "(no net_cls/net_prio controllers)")
    for k, v in (r.get("unified") or {}).items():
        if "/" in k or k.startswith(".") or not k:
            raise PyruncError(f"linux.resources.unified: invalid key {k!r}")
        out.append((k, str(v)))
    return out


def apply(d: str, r: dict, creating: bool = True, linux_devices: list | None = None) -> None:
    writes = convert(r, has_bfq=fs.has(d, "io.bfq.weight"))
    for name, value in writes:
        if name == "memory.swap.max" and not fs.has(d, name):
            if value in ("max", "0"):
                continue  # no swap accounting: an unlimited or zero swap limit needs no file
        fs.write(d, name, value, f"cgroup v2 {name}")
    if "devices" in r and (creating or r.get("devices")):
        from pyrunc.cgroups import devices, ebpf
        rules = devices.from_spec(r.get("devices"), linux_devices)
        ebpf.install(d, *devices.effective(rules))
