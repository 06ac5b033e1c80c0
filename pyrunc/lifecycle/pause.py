"""`pause` and `resume`: freeze and thaw every process of the container through its cgroup."""
from __future__ import annotations

from pyrunc.errors import PyruncError
from pyrunc.cgroups.cmd import load, need_id


def main_pause(g, flags: dict, args: list[str]) -> int:
    from pyrunc import state
    cid = need_id(args, "pause")
    with state.locked(g.root, cid):
        _, _, status, mgr = load(g.root, cid)
        if status not in ("running", "created"):
            raise PyruncError(f"container {cid!r} is not running (status {status})")
        mgr.freeze()
    return 0


def main_resume(g, flags: dict, args: list[str]) -> int:
    from pyrunc import state
    cid = need_id(args, "resume")
    with state.locked(g.root, cid):
        _, _, status, mgr = load(g.root, cid)
        if status != "paused":
            raise PyruncError(f"container {cid!r} is not paused (status {status})")
        mgr.thaw()
    return 0
