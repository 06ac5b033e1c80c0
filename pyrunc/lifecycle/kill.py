"""`kill`: send a signal to the container's init (or, with --all, to every process in its cgroup)."""
from __future__ import annotations

import os
import _signal as signal  # not `signal`: it imports enum (~5 ms) for its Signals class

from pyrunc import state
from pyrunc.errors import PyruncError


def parse_signal(text: str) -> int:
    """`9`, `KILL`, `SIGKILL` and `sigkill` all name SIGKILL, as in runc."""
    if text.isdigit():
        num = int(text)
        if num < 0 or num >= signal.NSIG:  # 0 probes, as with kill(1) and runc
            raise PyruncError(f"invalid signal {text!r}")
        return num
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    num = getattr(signal, name, None)
    if not isinstance(num, int) or name.startswith("SIG_"):  # SIG_DFL, SIG_IGN are no signals
        raise PyruncError(f"unknown signal {text!r}")
    return num


def kill(root: str, container_id: str, sig: int = signal.SIGTERM, all_processes: bool = False) -> None:
    path = state.container_dir(root, container_id)
    record = state.read(root, container_id)
    status = state.status(path, record)
    # "container not running" is the phrase containerd's shim takes as "already gone" (runc's)
    if status == "creating" or (status == "stopped" and not all_processes):
        raise PyruncError(f"container not running ({container_id} is {status})")
    if all_processes:
        # also for a stopped init: processes it left in a shared pid namespace still get it
        if record.get("cgroup"):
            from pyrunc.cgroups import Manager
            mgr = Manager.from_state(record["cgroup"])
            if mgr.paths:
                mgr.signal_all(sig)
                return
        from pyrunc.processes import container_pids
        for pid in container_pids(record, None):  # never a stopped init's: see container_pids
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return
    try:
        os.kill(record["pid"], sig)
    except ProcessLookupError:
        raise PyruncError(f"container not running ({container_id} has exited)") from None
    if sig == signal.SIGKILL and status == "paused":
        # a frozen process cannot act on SIGKILL until thawed (runc thaws too)
        from pyrunc.cgroups import Manager
        Manager.from_state(record["cgroup"]).thaw()


def main(g, flags: dict, args: list[str]) -> int:
    if len(args) > 2:
        raise PyruncError("usage: pyrunc kill [--all] <container-id> [signal]")
    sig = parse_signal(args[1]) if len(args) > 1 else signal.SIGTERM
    kill(g.root, args[0], sig, flags.get("all", False))
    return 0
