"""`run`: create and start; in the foreground, also wait for the container, forward the signals we
get to it, and exit with its status (128+N when signal N killed it), deleting it unless --keep.

We become a child subreaper before creating, so the container's init, orphaned by the first child
of create, is reparented to us and we can wait for it.
"""
from __future__ import annotations

import os
import sys

from pyrunc.errors import PyruncError
from pyrunc.lifecycle.create import create
from pyrunc.lifecycle.delete import delete
from pyrunc.lifecycle.foreground import exit_code
from pyrunc.lifecycle.foreground import forward_signals as _forward_signals
from pyrunc.lifecycle.foreground import proxy_tty as _proxy_tty
from pyrunc.lifecycle.start import start
from pyrunc.linux import syscalls as sc

def _wait(pid: int) -> int:
    """Reap children (orphans of the container reach us too) until the init is among them."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            raise PyruncError("lost track of the container's init") from None
        if got == pid:
            return exit_code(status)


def run(root: str, container_id: str, bundle: str, *, detach: bool = False, keep: bool = False,
        console_socket: str | None = None, **create_opts) -> int:
    from pyrunc.spec.load import load_config
    config = load_config(os.path.abspath(bundle))
    terminal = bool((config.get("process") or {}).get("terminal"))
    ours = theirs = None
    if terminal and console_socket is None:
        if detach:
            raise PyruncError("cannot allocate tty if pyrunc will detach without setting console socket")
        import socket  # only with a terminal: the module is slow to import
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if not detach:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    try:
        record = create(root, container_id, bundle, console_socket=console_socket,
                        console_sock=theirs, config=config, **create_opts)
    finally:
        if theirs is not None:
            theirs.close()
    master = None
    try:
        if ours is not None:
            from pyrunc.linux.console import recv_fd
            master = recv_fd(ours)
            ours.close()
        start(root, container_id)
    except BaseException:
        delete(root, container_id, force=True)
        raise
    if detach:
        return 0
    pid = record["pid"]
    _forward_signals(pid)
    code = _proxy_tty(master, pid) if master is not None else _wait(pid)
    if not keep:
        delete(root, container_id, force=True)
    return code


def main(g, flags: dict, args: list[str]) -> int:
    if len(args) != 1:
        raise PyruncError(f"run takes exactly one container id, got {len(args)} arguments")
    sys.stdout.flush()
    return run(g.root, args[0], flags.get("bundle") or ".", detach=flags.get("detach", False),
               keep=flags.get("keep", False), console_socket=flags.get("console_socket"),
               pid_file=flags.get("pid_file"), no_pivot=flags.get("no_pivot", False),
               no_new_keyring=flags.get("no_new_keyring", False),
               preserve_fds=flags.get("preserve_fds", 0), systemd_cgroup=g.systemd_cgroup,
               rootless=g.is_rootless())
