"""Where the host's cgroup hierarchies are and where this process sits in each.

Read once per command from /proc/self/mountinfo and /proc/self/cgroup. A host is "v1" (only v1
mounts), "v2" (one cgroup2 mount, no v1 controllers) or "hybrid" (v1 controllers plus a cgroup2
mount, as on the machines here). The key of a hierarchy is the comma-joined set of its v1
controllers ("cpu", "name=systemd", "cpu,cpuacct") or "" for the unified one.
"""
from __future__ import annotations

import os

V1_CONTROLLERS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
    "net_cls", "net_prio", "perf_event", "rdma", "misc",
})


class Hierarchy:
    """One mounted cgroup hierarchy. A plain class: dataclasses costs ~7 ms to import, on every
    `create`."""

    __slots__ = ("key", "mountpoint", "mount_root", "controllers")

    def __init__(self, key: str, mountpoint: str, mount_root: str, controllers: frozenset[str]) -> None:
        self.key = key                # "" for cgroup2
        self.mountpoint = mountpoint
        self.mount_root = mount_root  # the cgroup path the mount shows at its mountpoint
        self.controllers = controllers

    def _t(self) -> tuple:
        return (self.key, self.mountpoint, self.mount_root, self.controllers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hierarchy) and self._t() == other._t()

    def __hash__(self) -> int:
        return hash(self._t())

    def __repr__(self) -> str:
        return f"Hierarchy{self._t()!r}"

    def host_dir(self, cgroup_path: str) -> str:
        """The directory of cgroup `cgroup_path` (as /proc/PID/cgroup names it) in this mount."""
        rel = cgroup_path
        if self.mount_root != "/" and (rel == self.mount_root or rel.startswith(self.mount_root + "/")):
            rel = rel[len(self.mount_root):]
        return os.path.normpath(os.path.join(self.mountpoint, rel.lstrip("/")))


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mounted(mountinfo: str = "/proc/self/mountinfo") -> list[Hierarchy]:
    """Every cgroup mount, first one per hierarchy (bind mounts of the same one are skipped)."""
    out: dict[str, Hierarchy] = {}
    with open(mountinfo) as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, rest = pre.split(), post.split()
            if len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
                continue
            if rest[0] == "cgroup2":
                key, ctrls = "", frozenset()
            else:
                opts = rest[2].split(",")
                names = [o for o in opts if o in V1_CONTROLLERS or o.startswith("name=")]
                if not names:
                    continue
                key, ctrls = ",".join(sorted(names)), frozenset(names)
            if key not in out:
                out[key] = Hierarchy(key, _unescape(fields[4]), _unescape(fields[3]), ctrls)
    return list(out.values())


def own_paths(pid: str = "self") -> dict[str, str]:
    """This process's cgroup path per hierarchy key."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            key = ",".join(sorted(c for c in ctrls.split(",") if c)) if ctrls else ""
            out[key] = path
    return out


def host_kind(hs: list[Hierarchy]) -> str:
    v1 = any(h.key for h in hs)
    v2 = any(not h.key for h in hs)
    if v1 and v2:
        return "hybrid"
    return "v1" if v1 else ("v2" if v2 else "none")
