"""Making and removing the container's cgroup directories on every hierarchy."""
from __future__ import annotations

import errno
import os
import sys
import time

from pyrunc.cgroups import fs
from pyrunc.errors import PyruncError


def mountpoints() -> dict[str, str]:
    """Each hierarchy's key (as in Manager.paths) and its mount point."""
    from pyrunc.cgroups.hierarchy import mounted
    return {h.key: h.mountpoint for h in mounted()}


def make_dirs(paths: dict[str, str], kind: str, droppable: bool = False
              ) -> tuple[list[str], bool]:
    """mkdir -p every leaf; return (dirs made, parents first; whether a leaf already existed).

    A new v1 cpuset cgroup starts with empty cpus/mems, and no task can join it until they are
    filled, so they are copied down from the parent. On cgroup2 the parent's controllers are
    enabled down the path (best effort: a resource that needs a missing one fails later, clearly).
    With `droppable` (a rootless runtime without cgroupsPath), a hierarchy where permission is
    denied is taken out of `paths` instead of failing.
    """
    mounts = mountpoints()
    created: list[str] = []
    preexisting = False
    try:
        for key, leaf in list(paths.items()):
            mine: list[str] = []
            try:
                preexisting |= _make_leaf(key, leaf, mounts.get(key, "/"), mine)
            except (OSError, PyruncError) as e:
                if not (droppable and e.errno in (errno.EPERM, errno.EACCES, errno.EROFS)):
                    raise
                del paths[key]
                rmdirs(mine)
                mine = []
            finally:
                created += mine
        if preexisting:
            _check_existing(paths)
    except BaseException as e:
        rmdirs(created)
        if isinstance(e, OSError):
            raise PyruncError(f"cannot create cgroup {e.filename or ''}: {e.strerror}") from None
        raise
    return created, preexisting


def rmdirs(made: list[str]) -> None:
    """Remove directories listed parents first, deepest first, as far as they are empty."""
    for d in reversed(made):
        try:
            os.rmdir(d)
        except OSError:
            pass


def _make_leaf(key: str, leaf: str, top: str, created: list[str]) -> bool:
    """mkdir -p `leaf` below mount point `top`, appending what it made; whether it existed."""
    missing: list[str] = []
    d = leaf
    while d != top and d != "/" and not os.path.isdir(d):
        missing.append(d)
        d = os.path.dirname(d)
    for m in reversed(missing):
        try:
            os.mkdir(m, 0o755)
            created.append(m)
        except FileExistsError:
            pass
        if "cpuset" in key.split(","):
            _copy_cpuset(m)
    if key == "":
        _enable_controllers(top, leaf)
    return not missing


def _copy_cpuset(d: str) -> None:
    parent = os.path.dirname(d)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not fs.read_or(d, name):
            fs.write(d, name, fs.read(parent, name) or fs.read_or(parent, name.replace(
                "cpuset.", "cpuset.effective_")))


def _enable_controllers(top: str, leaf: str) -> None:
    """Write +ctrl into cgroup.subtree_control of every ancestor of `leaf` below and at `top`."""
    chain = []
    d = os.path.dirname(leaf)
    while True:
        chain.append(d)
        if d == top or d == "/":
            break
        d = os.path.dirname(d)
    for d in reversed(chain):
        avail = fs.read_or(d, "cgroup.controllers").split()
        enabled = set(fs.read_or(d, "cgroup.subtree_control").split())
        for c in avail:
            if c in enabled:
                continue
            try:
                fs.write(d, "cgroup.subtree_control", f"+{c}")
            except PyruncError:
                pass  # e.g. EBUSY: the ancestor has processes of its own; not fatal for placement


def _check_existing(paths: dict[str, str]) -> None:
    """runc 1.1: joining a non-empty cgroup is allowed with a warning; a frozen one is an error."""
    from pyrunc.cgroups import Manager, is_frozen
    m = Manager(paths, "")
    if is_frozen({"freezer": m._freezer_file()}):
        raise PyruncError("container's cgroup unexpectedly frozen")
    n = len(m.pids())
    if n:
        print(f"pyrunc: warning: container's cgroup is not empty: {n} process(es) found",
              file=sys.stderr)


def remove_dirs(mgr) -> None:
    """rmdir each leaf (with any sub-cgroups) and then the parents create made.

    Processes that were just killed may hold the cgroup for a few milliseconds while they exit, so
    EBUSY is retried for up to 2 seconds. A leaf that existed before create is shared with someone
    else, so if it is still busy it is left alone, as runc leaves it.
    """
    leaves = set(mgr.paths.values())
    busy: list[str] = []
    deadline = time.monotonic() + 2.0  # shared by all hierarchies
    for leaf in mgr.paths.values():
        while True:
            try:
                fs.rmdir_tree(leaf)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if mgr.preexisting and e.errno == errno.EBUSY and fs.procs(leaf):
                    break  # a shared cgroup its owner still uses
                if e.errno in (errno.EBUSY, errno.ENOTEMPTY) and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                if not mgr.preexisting:
                    busy.append(f"{leaf}: {e.strerror}")
                break
    for d in reversed(mgr.created):
        if d in leaves:
            continue
        try:
            os.rmdir(d)
        except OSError:
            pass  # ENOENT, or a neighbour's cgroup lives under it now
    if busy:
        raise PyruncError("cannot remove cgroup " + "; ".join(busy))
