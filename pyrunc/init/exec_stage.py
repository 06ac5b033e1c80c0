"""The process `pyrunc exec` forks: it enters a running container and becomes a new process in it.

`exec` already moved us into the container's pid (and time) namespace by forking after joining
them (those two take effect for children only). Here we load, as the host's root and while the
host's files are still in sight, everything the process needs; then join the other namespaces of
the container's init, user first; take the pty if asked; let the runtime put us in the memory
cgroup last; and apply the process settings with the very code the container's init uses
(pyrunc/init/process.py) before execve. Every failure before execve reaches `exec` over the
channel as one line; a successful execve closes our end of it (CLOEXEC), which `exec` reads as
success.
"""
from __future__ import annotations

import os
TYPE_CHECKING = False  # typing itself costs milliseconds on every command
if TYPE_CHECKING:
    import socket

    from pyrunc.channel import Channel
    from typing import NoReturn

from pyrunc import channel
from pyrunc.init import process, terminal
from pyrunc.init.stage1 import report_error
from pyrunc.linux import namespaces as ns
from pyrunc.linux import syscalls as sc


def _preload(proc: dict, linux: dict, console: bool):
    """Import (and compile) now: after setns(mnt) neither pyrunc nor libseccomp is reachable, and
    inside a user namespace the mapped root may not be allowed to read them."""
    process.preload({"process": proc, "linux": linux})
    if console:
        import pyrunc.linux.console  # noqa: F401
    if os.environ.get("PYRUNC_DEBUG"):
        import traceback  # noqa: F401 - report_error formats with it
    profile = linux.get("seccomp")
    if not profile:
        return None
    if profile.get("listenerPath"):  # a host path: connect while it still means the host's
        from pyrunc.init import seccomp_listener
        seccomp_listener.connect(profile["listenerPath"])
    from pyrunc.linux import seccomp
    return seccomp.compile(profile)


def _join(ns_fds: list[tuple[str, int]]) -> None:
    """The namespaces `exec` opened from /proc/<init>/ns, in namespaces.KINDS order (user
    first: joining it gives us the capabilities the others need when it owns them)."""
    ns.join(ns_fds)
    if any(kind == "user" for kind, _ in ns_fds):
        # As the host's root we are nobody in there: become the namespace's root, like the init
        # was, so that what we do before switching to the process's user is done as its root.
        try:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        except OSError:
            pass


def _fork_into(sock: Channel, late: list[tuple[str, int]]) -> None:
    """Join the pid (and time) namespaces `exec` could not join for us (see exec_cmd), and fork:
    only a child enters them. The parent tells `exec` the child's pid and is done."""
    ns.join(late)
    pid = os.fork()
    if pid:
        channel.send(sock, "pid", str(pid))
        os._exit(0)


def run(sock: Channel, ns_fds: list[tuple[str, int]], proc: dict, linux: dict,
        in_userns: bool, console: socket.socket | None, preserve_fds: int,
        oci_state: dict, late: list[tuple[str, int]] | None = None) -> NoReturn:
    try:
        # our fds (the channel, the console socket) are host fds: no container process may reach
        # them, or our executable, through /proc/<pid> while we are still the runtime's code
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        seccomp_filter = _preload(proc, linux, console is not None)
        channel.expect(sock, "go")
        _join(ns_fds)
        if late:
            _fork_into(sock, late)
        if console is not None:
            terminal.setup(console, proc, bind_console=False)
        # the pages we fault in from here on are the process's: charge them to the container
        channel.send(sock, "memory")
        channel.expect(sock, "ok")
        path, argv, env = process.prepare(proc, in_userns, linux, seccomp_filter, oci_state)
        user = proc.get("user") or {}
        process.exec_(path, argv, env, user.get("umask", 0o022), preserve_fds)
    except BaseException as e:  # noqa: BLE001 - everything goes back to `exec` as one line
        report_error(sock, e)
    os._exit(1)
