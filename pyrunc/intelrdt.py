"""config-linux.md "IntelRdt": cache and memory-bandwidth allocation through the resctrl filesystem.

The container's init joins a resctrl group: `closID` names a group (shared with other containers,
made if missing), else the group is named after the container. `l3CacheSchema`, `memBwSchema`
and `schemata` (runtime-spec 1.3) are lines of the group's `schemata` file; `enableMonitoring`
makes a monitoring group for the container under `mon_groups`. Hosts without resctrl get a clear
error from validation before anything is created.
"""
from __future__ import annotations

import os

from pyrunc.errors import PyruncError


def mountpoint(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["resctrl"]:
                return left.split()[4]
    return None


def _write(path: str, text: str, what: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise PyruncError(f"intelRdt: cannot write {what} to {path}: {e.strerror}") from None


def apply(rdt: dict, container_id: str, pid: int, root: str | None = None) -> dict:
    """Put `pid` in the container's resctrl group; returns what `remove` needs (for state.json)."""
    root = root or mountpoint()
    if not root:
        raise PyruncError("intelRdt: no resctrl filesystem is mounted on this host")
    name = rdt.get("closID") or container_id
    if "/" in name or name in (".", ".."):
        raise PyruncError(f"intelRdt: invalid closID {name!r}")
    group = os.path.join(root, name)
    made: list[str] = []
    try:
        try:
            os.mkdir(group)
            made.append(group)
        except FileExistsError:
            if not rdt.get("closID"):
                raise PyruncError(f"intelRdt: resctrl group {group} already exists") from None
        lines = [rdt[k] for k in ("l3CacheSchema", "memBwSchema") if rdt.get(k)]
        lines += list(rdt.get("schemata") or [])
        for line in lines:  # one write per line: the kernel parses each write as one update
            _write(os.path.join(group, "schemata"), line.rstrip("\n") + "\n", "schemata")
        _write(os.path.join(group, "tasks"), str(pid), "the init's pid")
        if rdt.get("enableMonitoring"):
            mon = os.path.join(group, "mon_groups", container_id)
            os.mkdir(mon)
            made.append(mon)
            _write(os.path.join(mon, "tasks"), str(pid), "the init's pid")
    except BaseException:
        remove({"made": made})
        raise
    return {"made": made}


def remove(recorded: dict) -> None:
    """Remove the groups `apply` made (innermost first); a shared closID group it found stays."""
    for path in reversed(recorded.get("made") or []):
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
