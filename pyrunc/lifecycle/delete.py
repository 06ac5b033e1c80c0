"""`delete`: runtime.md's delete operation. A created or stopped container goes; a running one only
with --force (SIGKILL first). Its cgroup and state dir are removed and poststop hooks run."""
from __future__ import annotations

import _signal as signal  # not `signal`: it imports enum (~5 ms) for its Signals class

from pyrunc import state
from pyrunc.errors import PyruncError


def destroy(path: str, record: dict) -> None:
    """Tear down what create made: processes, cgroup, state dir; then poststop hooks."""
    if record.get("netDevices"):  # first: the container's network namespace dies with the init
        from pyrunc import netdevs
        netdevs.give_back(record)
    if state.init_alive(record) and not state.kill_and_wait(record["pid"], record.get("init_start_time")):
        raise PyruncError(f"container init {record['pid']} did not die after SIGKILL")
    if record.get("cgroup"):
        from pyrunc.cgroups import Manager
        mgr = Manager.from_state(record["cgroup"])
        mgr.signal_all(signal.SIGKILL)  # processes outside the init's pid namespace
        mgr.destroy()
    if record.get("intelRdt"):
        from pyrunc import intelrdt
        intelrdt.remove(record["intelRdt"])
    oci = state.oci_state(path, record)
    state.remove(path)
    config = record.get("config") or {}
    from pyrunc import hooks
    if hooks.of(config, "poststop"):
        try:
            hooks.run(config, "poststop", {**oci, "status": "stopped"})
        except PyruncError as e:  # runtime.md: a poststop failure is logged, delete goes on
            import sys
            sys.stderr.write(f"pyrunc: warning: {e}\n")


def delete(root: str, container_id: str, force: bool = False) -> None:
    with state.locked(root, container_id) as path:
        try:
            record = state.read(root, container_id)
        except PyruncError:
            if force:  # a state dir left by a crash: remove what is there
                state.remove(path)
                return
            raise
        status = state.status(path, record)
        if status in ("running", "paused") and not force:
            raise PyruncError(f"cannot delete container {container_id} that is not stopped: {status}")
        if status == "paused" and record.get("cgroup"):
            from pyrunc.cgroups import Manager
            Manager.from_state(record["cgroup"]).thaw()
        destroy(path, record)


def main(g, flags: dict, args: list[str]) -> int:
    try:
        delete(g.root, args[0], flags.get("force", False))
    except PyruncError as e:
        if flags.get("force") and "does not exist" in str(e):
            return 0  # runc: delete --force of a missing container succeeds
        raise
    return 0
