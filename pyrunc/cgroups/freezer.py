"""pause/resume and kill --all: the v1 freezer, or cgroup.freeze / cgroup.kill on cgroup2."""
from __future__ import annotations

import os
import time

from pyrunc.cgroups import fs
from pyrunc.errors import PyruncError


def _target(mgr) -> tuple[str, str]:
    d = mgr.path_of("freezer")
    if d:
        return "v1", d
    u = mgr.unified()
    if u and fs.has(u, "cgroup.freeze"):
        return "v2", u
    if mgr.rootless:
        raise PyruncError("this rootless container has no freezer cgroup: the runtime had no "
                          "permission to create one")
    raise PyruncError("this host has no cgroup freezer (no v1 freezer hierarchy, no cgroup.freeze)")


def _set(mgr, frozen: bool, timeout: float = 5.0) -> None:
    how, d = _target(mgr)
    if not os.path.isdir(d):
        raise PyruncError(f"the container's cgroup {d} is gone")
    deadline = time.monotonic() + timeout
    if how == "v1":
        want = "FROZEN" if frozen else "THAWED"
        while True:
            fs.write(d, "freezer.state", want)
            if fs.read(d, "freezer.state") == want:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.001)
    else:
        fs.write(d, "cgroup.freeze", "1" if frozen else "0")
        want = "frozen 1" if frozen else "frozen 0"
        while True:
            if want in fs.read_or(d, "cgroup.events").splitlines():
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.001)
    if frozen:  # leave nothing half-frozen behind
        try:
            _set(mgr, False, 1.0)
        except PyruncError:
            pass
    raise PyruncError(f"timed out {'freezing' if frozen else 'thawing'} cgroup {d}")


def freeze(mgr) -> None:
    _set(mgr, True)


def thaw(mgr) -> None:
    _set(mgr, False)


def signal_all(mgr, sig: int) -> None:
    """Freeze, signal every pid, thaw: no process can fork a child that escapes the signal.

    With SIGKILL on a cgroup2 that has cgroup.kill the kernel does it atomically for us."""
    import _signal  # not `signal`: it imports enum (~5 ms) for its Signals class
    u = mgr.unified()
    if sig == _signal.SIGKILL and mgr.kind == "v2" and u and fs.has(u, "cgroup.kill"):
        fs.write(u, "cgroup.kill", "1")
        return
    if not mgr.pids():
        return  # an empty cgroup cannot gain a process by fork: spare the freeze/thaw round trip
    try:
        freeze(mgr)
        frozen = True
    except PyruncError:
        frozen = False  # no freezer: signal anyway, as runc does
    try:
        for pid in mgr.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    finally:
        if frozen:
            thaw(mgr)
