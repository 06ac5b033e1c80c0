"""linux.resources written to the v1 hierarchies (and, on a hybrid host, to the unified one for
what only it carries, such as hugetlb here).

A field that is unset is skipped, also when its controller is missing; a field that is set on a host
without its controller is an error naming the field. Values are written as runc 1.1 writes them.
"""
from __future__ import annotations

from pyrunc.cgroups import fs
from pyrunc.errors import PyruncError


def _dir(mgr, controller: str, field: str) -> str:
    d = mgr.path_of(controller)
    if not d and mgr.rootless:
        raise PyruncError(f"linux.resources.{field} is set but this rootless container could not "
                          f"join or create a {controller} cgroup")
    if not d:
        raise PyruncError(f"linux.resources.{field} is set but this host has no {controller} "
                          f"cgroup controller")
    return d


def _set(v) -> bool:
    return v is not None


def apply(mgr, r: dict, creating: bool) -> None:
    if r.get("unified"):
        _unified(mgr, r["unified"])
    _memory(mgr, r.get("memory") or {})
    _cpu(mgr, r.get("cpu") or {})
    _pids(mgr, r.get("pids") or {})
    _blkio(mgr, r.get("blockIO") or {})
    _hugetlb(mgr, r.get("hugepageLimits") or [])
    _network(mgr, r.get("network") or {})
    _rdma(mgr, r.get("rdma") or {})
    if "devices" in r and (creating or r.get("devices")):
        _devices(mgr, r.get("devices") or [], creating)


def _unified(mgr, unified: dict) -> None:
    """runc refuses `unified` on v1; on a hybrid host the keys the cgroup2 mount has are written."""
    u = mgr.unified()
    for k, v in unified.items():
        if "/" in k or k.startswith("."):
            raise PyruncError(f"linux.resources.unified: invalid key {k!r}")
        if not u or not fs.has(u, k):
            raise PyruncError(f"linux.resources.unified.{k}: this host's cgroup v2 hierarchy has "
                              f"no such file (cgroup v1 or hybrid host)")
        fs.write(u, k, v, f"linux.resources.unified.{k}")


def _memory(mgr, m: dict) -> None:
    keys = ("limit", "reservation", "swap", "swappiness", "disableOOMKiller", "kernelTCP",
            "useHierarchy")
    if not any(_set(m.get(k)) for k in keys) and not _set(m.get("kernel")):
        return
    if not any(_set(m.get(k)) for k in keys):
        return  # only `kernel`: runc 1.1 ignores kernel memory limits
    d = _dir(mgr, "memory", "memory")
    limit, swap = m.get("limit"), m.get("swap")
    if _set(limit) and _set(swap) and limit != 0 and swap != 0:
        cur = int(fs.read_or(d, "memory.limit_in_bytes", "0") or 0)
        # memsw must stay >= limit at every moment, so the order depends on the direction
        if swap == -1 or cur < swap:
            _write_swap(d, swap)
            fs.write(d, "memory.limit_in_bytes", limit, "memory.limit")
        else:
            fs.write(d, "memory.limit_in_bytes", limit, "memory.limit")
            _write_swap(d, swap)
    else:
        if _set(limit) and limit != 0:
            fs.write(d, "memory.limit_in_bytes", limit, "memory.limit")
        if _set(swap) and swap != 0:
            _write_swap(d, swap)
    if _set(m.get("reservation")) and m["reservation"] != 0:
        fs.write(d, "memory.soft_limit_in_bytes", m["reservation"], "memory.reservation")
    if _set(m.get("kernelTCP")) and m["kernelTCP"] != 0 and fs.has(d, "memory.kmem.tcp.limit_in_bytes"):
        try:
            fs.write(d, "memory.kmem.tcp.limit_in_bytes", m["kernelTCP"], "memory.kernelTCP")
        except PyruncError:
            pass  # kernels that keep the file but no longer honour it
    if m.get("disableOOMKiller"):
        fs.write(d, "memory.oom_control", 1, "memory.disableOOMKiller")
    sw = m.get("swappiness")
    if _set(sw) and sw != -1:
        if not 0 <= int(sw) <= 100:
            raise PyruncError(f"invalid value:{sw}. valid memory swappiness range is 0-100")
        fs.write(d, "memory.swappiness", sw, "memory.swappiness")
    if m.get("useHierarchy") and fs.has(d, "memory.use_hierarchy"):
        fs.write(d, "memory.use_hierarchy", 1, "memory.useHierarchy")


def _write_swap(d: str, swap: int) -> None:
    if not fs.has(d, "memory.memsw.limit_in_bytes"):
        raise PyruncError("linux.resources.memory.swap is set but the kernel has no swap "
                          "accounting (memory.memsw.limit_in_bytes)")
    fs.write(d, "memory.memsw.limit_in_bytes", swap, "memory.swap")


def _cpu(mgr, c: dict) -> None:
    cpu_keys = ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "idle", "burst")
    if any(_set(c.get(k)) and c.get(k) != 0 for k in cpu_keys) or _set(c.get("idle")):
        d = _dir(mgr, "cpu", "cpu")
        if c.get("realtimePeriod"):
            fs.write(d, "cpu.rt_period_us", c["realtimePeriod"], "cpu.realtimePeriod")
        if c.get("realtimeRuntime"):
            fs.write(d, "cpu.rt_runtime_us", c["realtimeRuntime"], "cpu.realtimeRuntime")
        if c.get("shares"):
            fs.write(d, "cpu.shares", c["shares"], "cpu.shares")
            got = int(fs.read(d, "cpu.shares"))
            if got != int(c["shares"]):
                which = "maximum" if int(c["shares"]) > got else "minimum"
                raise PyruncError(f"the {which} allowed cpu-shares is {got}")
        if c.get("period"):
            fs.write(d, "cpu.cfs_period_us", c["period"], "cpu.period")
        if _set(c.get("quota")) and c["quota"] != 0:
            fs.write(d, "cpu.cfs_quota_us", c["quota"], "cpu.quota")
        if _set(c.get("burst")):
            fs.write(d, "cpu.cfs_burst_us", c["burst"], "cpu.burst")
        if _set(c.get("idle")):
            fs.write(d, "cpu.idle", c["idle"], "cpu.idle")
    if c.get("cpus") or c.get("mems"):
        d = _dir(mgr, "cpuset", "cpu.cpus")
        if c.get("cpus"):
            fs.write(d, "cpuset.cpus", c["cpus"], "cpu.cpus")
        if c.get("mems"):
            fs.write(d, "cpuset.mems", c["mems"], "cpu.mems")


def _pids(mgr, p: dict) -> None:
    lim = p.get("limit")
    if not _set(lim) or lim == 0:
        return
    d = _dir(mgr, "pids", "pids")
    fs.write(d, "pids.max", "max" if lim < 0 else lim, "pids.limit")


def _blkio(mgr, b: dict) -> None:
    if not any(b.get(k) for k in ("weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
                                  "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                                  "throttleWriteIOPSDevice")):
        return
    d = _dir(mgr, "blkio", "blockIO")
    # CFQ's blkio.weight, or BFQ's blkio.bfq.weight on kernels without CFQ (as runc 1.1 does)
    bfq = not fs.has(d, "blkio.weight") and fs.has(d, "blkio.bfq.weight")
    pre = "blkio.bfq." if bfq else "blkio."
    if b.get("weight"):
        fs.write(d, pre + "weight", b["weight"], "blockIO.weight")
    if b.get("leafWeight"):
        fs.write(d, "blkio.leaf_weight", b["leafWeight"], "blockIO.leafWeight")
    for wd in b.get("weightDevice") or []:
        dev = f"{wd['major']}:{wd['minor']}"
        if wd.get("weight"):
            fs.write(d, pre + "weight_device", f"{dev} {wd['weight']}", "blockIO.weightDevice")
        if wd.get("leafWeight"):
            fs.write(d, "blkio.leaf_weight_device", f"{dev} {wd['leafWeight']}",
                     "blockIO.weightDevice.leafWeight")
    for key, fname in (("throttleReadBpsDevice", "read_bps_device"),
                       ("throttleWriteBpsDevice", "write_bps_device"),
                       ("throttleReadIOPSDevice", "read_iops_device"),
                       ("throttleWriteIOPSDevice", "write_iops_device")):
        for t in b.get(key) or []:
            fs.write(d, "blkio.throttle." + fname, f"{t['major']}:{t['minor']} {t['rate']}",
                     f"blockIO.{key}")


def _hugetlb(mgr, limits: list) -> None:
    if not limits:
        return
    d = mgr.path_of("hugetlb")
    if d:
        for h in limits:
            fs.write(d, f"hugetlb.{h['pageSize']}.limit_in_bytes", h["limit"], "hugepageLimits")
        return
    u = mgr.unified()  # hybrid: hugetlb may be a cgroup2 controller while the rest is v1
    if u and fs.has(u, f"hugetlb.{limits[0]['pageSize']}.max"):
        for h in limits:
            fs.write(u, f"hugetlb.{h['pageSize']}.max", h["limit"], "hugepageLimits")
        return
    raise PyruncError("linux.resources.hugepageLimits is set but this host has no hugetlb "
                      "cgroup controller (or not that page size)")


def _network(mgr, n: dict) -> None:
    if n.get("classID"):
        fs.write(_dir(mgr, "net_cls", "network.classID"), "net_cls.classid", n["classID"],
                 "network.classID")
    if n.get("priorities"):
        d = _dir(mgr, "net_prio", "network.priorities")
        for p in n["priorities"]:
            fs.write(d, "net_prio.ifpriomap", f"{p['name']} {p['priority']}", "network.priorities")


def rdma_line(dev: str, lim: dict) -> str:
    parts = [dev]
    if lim.get("hcaHandles") is not None:
        parts.append(f"hca_handle={lim['hcaHandles']}")
    if lim.get("hcaObjects") is not None:
        parts.append(f"hca_object={lim['hcaObjects']}")
    return " ".join(parts)


def _rdma(mgr, r: dict) -> None:
    if not r:
        return
    d = _dir(mgr, "rdma", "rdma")
    for dev, lim in r.items():
        fs.write(d, "rdma.max", rdma_line(dev, lim), "rdma")


def _devices(mgr, devs: list, creating: bool) -> None:
    from pyrunc.cgroups import devices
    d = mgr.path_of("devices")
    if not d:
        if any(not x.get("allow") for x in devs):
            raise PyruncError("linux.resources.devices is set but this host has no devices cgroup "
                              "controller")
        return
    rules = devices.from_spec(devs, mgr.linux_devices)
    default_allow, exc = devices.effective(rules)
    # Reach the target from any current state: reset to the default, then the exceptions.
    if default_allow:
        fs.write(d, "devices.allow", "a", "devices")
    else:
        fs.write(d, "devices.deny", "a", "devices")
    for r in exc:
        fs.write(d, "devices.allow" if r.allow else "devices.deny", r.v1_line(), "devices")
