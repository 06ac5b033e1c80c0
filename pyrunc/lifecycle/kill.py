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
        if num <= 0 or num >= signal.NSIG:
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
    if status in ("stopped", "creating"):
        raise PyruncError(f"container {container_id} is {status}: nothing to signal")
    if all_processes and record.get("cgroup"):
        from pyrunc.cgroups import Manager
        Manager.from_state(record["cgroup"]).signal_all(sig)
        return
    try:
        os.kill(record["pid"], sig)
    except ProcessLookupError:
        raise PyruncError(f"container {container_id} is not running") from None
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
