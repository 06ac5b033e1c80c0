"""The container's init, from fork to execve: runtime.md's create (up to `ready`) and start.

Until `ready`, every failure goes back to `create` over the channel as one line and create undoes
everything. After `ready` the runtime has returned; like runc, failures then go to the container's
stderr and the process exits.
"""
from __future__ import annotations

from pyrunc import jsonfast as json
import os
TYPE_CHECKING = False  # typing itself costs milliseconds on every command
if TYPE_CHECKING:
    import socket

    from pyrunc.channel import Channel
    from typing import NoReturn

from pyrunc import channel, hooks
from pyrunc.errors import PyruncError
from pyrunc.init import process, rootfs, terminal
from pyrunc.init.stage1 import report_error
from pyrunc.linux import syscalls as sc


def preload(config: dict, terminal: bool) -> None:
    """Import everything the init will need for this config, called by stage1 before it changes
    any namespace: after pivot_root pyrunc's files (and Python's standard library) are out of
    sight, and inside a user namespace the mapped root may not be allowed to read them."""
    if terminal:
        import pyrunc.linux.console  # noqa: F401
    if hooks.of(config, "startContainer"):
        import subprocess  # noqa: F401
    process.preload(config)


def _reopen_fifo(fifo_fd: int) -> int:
    """Block until `start` opens the fifo: reopening our O_PATH fd through the container's procfs
    reaches the fifo without any path into the host."""
    return os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)


def run(sock: Channel, config: dict, bundle: str, container_id: str, *, fifo_fd: int,
        console: socket.socket | None, no_pivot: bool, no_new_keyring: bool,
        preserve_fds: int, cgroup_paths: dict[str, str] | None = None) -> NoReturn:
    proc = config["process"]
    linux = config.get("linux") or {}
    in_userns = any(n.get("type") == "user" for n in linux.get("namespaces") or [])
    try:
        os.umask(0)
        # no other process may reach our fds (the fifo) through /proc/PID/fd while we wait
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        channel.expect(sock, "go")
        root = os.path.normpath(os.path.join(bundle, config["root"]["path"]))
        rootfs.prepare(config, bundle, root, cgroup_paths)
        channel.send(sock, "hooks")
        oci_state = json.loads(channel.expect(sock, "ok") or "{}")
        hooks.run(config, "createContainer", oci_state)
        rootfs.pivot(root, no_pivot)
        if config.get("hostname"):
            sc.sethostname(config["hostname"])
        if config.get("domainname"):
            sc.setdomainname(config["domainname"])
        if not no_new_keyring:
            try:
                sc.keyctl_join_session_keyring(f"_ses.{container_id}")
            except OSError:
                pass  # keyrings disabled or restricted (as inside some sandboxes): runc goes on too
        if linux.get("sysctl"):  # before finalize: readonlyPaths usually include /proc/sys
            from pyrunc.init import sysctl
            sysctl.apply(linux["sysctl"])
        if console is not None:
            terminal.setup(console, proc, bind_console=True)
        rootfs.finalize(config)
        if linux.get("seccomp"):
            from pyrunc.linux import seccomp
            seccomp_filter = seccomp.compile(linux["seccomp"])
        else:
            seccomp_filter = None
        # seccomp is loaded inside prepare, at runc's point (before the capability drop without
        # noNewPrivileges, last with it); after it every syscall of ours must pass the filter
        path, argv, env = process.prepare(proc, in_userns, linux, seccomp_filter, oci_state)
        if not os.path.exists(f"/proc/self/fd/{fifo_fd}"):
            raise PyruncError("the container needs /proc mounted (config.json mounts) to be started")
        channel.send(sock, "ready")
        sock.close()
    except BaseException as e:  # noqa: BLE001 - reported to create, which cleans up
        report_error(sock, e)
        os._exit(1)
    try:
        fd = _reopen_fifo(fifo_fd)
        os.write(fd, b"0")
        os.close(fd)
        os.close(fifo_fd)
        hooks.run(config, "startContainer", {**oci_state, "status": "running"})
        user = proc.get("user") or {}
        process.exec_(path, argv, env, user.get("umask", 0o022), preserve_fds)
    except BaseException as e:  # noqa: BLE001
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        os.write(2, f"pyrunc: container process: {msg}\n".encode(errors="replace"))
        os._exit(127 if isinstance(e, OSError) else 1)
