"""The first child of `create`: it enters the container's namespaces and forks the init into them.

A process cannot move itself into a new pid (or time) namespace, only its children, so this stage
exists to join the `path` namespaces, unshare the new ones (asking the runtime to write the uid/gid
maps between user and the rest), fork the container's init, report its pid and exit.
"""
from __future__ import annotations

import os
TYPE_CHECKING = False  # typing itself costs milliseconds on every command
if TYPE_CHECKING:
    import socket

    from pyrunc.channel import Channel
    from typing import NoReturn

from pyrunc import channel
from pyrunc.linux import namespaces as ns
from pyrunc.linux import syscalls as sc


def report_error(sock: Channel, exc: BaseException) -> None:
    if isinstance(exc, OSError) and exc.strerror:
        msg = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        msg = str(exc) or type(exc).__name__
    if os.environ.get("PYRUNC_DEBUG"):
        import traceback
        msg += " | " + " ".join(traceback.format_exception(exc)).replace("\n", " ")
    try:
        channel.send(sock, "error", msg)
    except OSError:
        pass


def _write_time_offsets(offsets: dict) -> None:
    lines = "".join(f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n"
                    for clock, o in offsets.items())
    with open("/proc/self/timens_offsets", "w") as f:
        f.write(lines)


def run(sock: Channel, config: dict, bundle: str, container_id: str, *, fifo_fd: int,
        console: socket.socket | None, no_pivot: bool, no_new_keyring: bool,
        preserve_fds: int, cgroup_paths: dict[str, str] | None = None) -> NoReturn:
    code = 1
    try:
        # Import the init now, as the host's root: inside a user namespace the mapped root may
        # not be able to read the installed package (e.g. under a 0700 /root).
        from pyrunc.init import main as init_main
        init_main.preload(config, console is not None)
        channel.expect(sock, "go")
        # idmapped mounts need privilege on the host's side of the user namespace: build them
        # here, as fds the init inherits and attaches (pyrunc/init/idmap.py)
        from pyrunc.init import idmap
        idmap.prepare(config, bundle)
        linux = config.get("linux") or {}
        namespaces = linux.get("namespaces") or []
        listener = (linux.get("seccomp") or {}).get("listenerPath")
        if listener:  # as the host's root, before any namespace changes what the path means
            from pyrunc.init import seccomp_listener
            seccomp_listener.connect(listener)
        ns.join(ns.open_paths(namespaces))
        flags = ns.new_flags(namespaces)
        if flags & sc.CLONE_NEWUSER:
            sc.unshare(sc.CLONE_NEWUSER)
            channel.send(sock, "maps")
            channel.expect(sock, "ok")
            flags &= ~sc.CLONE_NEWUSER
        if any(n.get("type") == "user" for n in namespaces):
            try:  # become the namespace's root, if it has one
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            except OSError:
                pass
            # changing ids made us non-dumpable, which hands /proc/self to the host's root: we
            # could no longer write timens_offsets (or anything there) as the namespace's root
            sc.prctl(sc.PR_SET_DUMPABLE, 1)
        if flags & sc.CLONE_NEWCGROUP:
            # The namespace's cgroup root is fixed by this unshare: the runtime puts us in the
            # container's memory cgroup for this one call and takes us out again right after, so
            # that the setup that follows is not charged to the container (see Manager.add).
            channel.send(sock, "cgroupns")
            channel.expect(sock, "ok")
        sc.unshare(flags)
        if flags & sc.CLONE_NEWCGROUP:
            channel.send(sock, "unshared")
            channel.expect(sock, "ok")
        if flags & sc.CLONE_NEWTIME and linux.get("timeOffsets"):
            _write_time_offsets(linux["timeOffsets"])
        pid = os.fork()
        if pid == 0:
            init_main.run(sock, config, bundle, container_id, fifo_fd=fifo_fd, console=console,
                     no_pivot=no_pivot, no_new_keyring=no_new_keyring, preserve_fds=preserve_fds,
                     cgroup_paths=cgroup_paths)
        channel.send(sock, "pid", str(pid))
        code = 0
    except BaseException as e:  # noqa: BLE001 - everything goes back to the runtime as one line
        report_error(sock, e)
    os._exit(code)
