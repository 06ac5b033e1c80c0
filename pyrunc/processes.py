"""The container's processes when it has no cgroup to list them: a rootless runtime without
permission for any hierarchy runs the container without one (as runc does)."""
from __future__ import annotations

import os


def container_pids(record: dict, mgr) -> list[int]:
    """The cgroup's pids where there is a cgroup; otherwise every process in the init's pid
    namespace (all of the container's, when it has its own), or just the init when it shares
    ours. Never pids of a stopped init: its number may be someone else's by now."""
    if mgr is not None and mgr.paths:
        return mgr.pids()
    from pyrunc import state
    if not state.init_alive(record):
        return []
    init = record["pid"]
    try:
        theirs = os.stat(f"/proc/{init}/ns/pid")
        ours = os.stat("/proc/self/ns/pid")
    except OSError:
        return []
    if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
        return [init]
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                st = os.stat(f"/proc/{name}/ns/pid")
            except OSError:
                continue  # gone, or not ours to look at
            if (st.st_dev, st.st_ino) == (theirs.st_dev, theirs.st_ino):
                out.append(int(name))
    return sorted(out)
