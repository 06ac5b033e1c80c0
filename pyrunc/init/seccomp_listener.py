"""Hand the seccomp user-notification fd to the agent at linux.seccomp.listenerPath, as runc does.

The message is one sendmsg on a unix stream socket: the JSON of runtime-spec's
ContainerProcessState (ociVersion, fds ["seccompFd"], pid, metadata, state) with the fd attached
as SCM_RIGHTS.

We connect in stage1, before any namespace is joined or unshared: the path is a host path, and the
socket is usually writable only by the host's root, which a process inside a user namespace no
longer is. The init, a fork of stage1, inherits the connection and sends once the filter is loaded.
"""
from __future__ import annotations

from pyrunc import jsonfast as json
import socket

from pyrunc.errors import PyruncError

_conn: socket.socket | None = None


def connect(path: str) -> None:
    global _conn
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise PyruncError(f"cannot connect to the seccomp listener {path}: {e.strerror}") from None
    _conn = sock


def send(notify_fd: int, oci_state: dict, metadata: str) -> None:
    """Send the fd with the container's state, then close both: the container must keep neither."""
    global _conn
    if _conn is None:
        raise PyruncError("the seccomp listener is not connected")
    msg = {"ociVersion": oci_state.get("ociVersion", ""), "fds": ["seccompFd"],
           "pid": oci_state.get("pid", 0), "state": oci_state}
    if metadata:
        msg["metadata"] = metadata
    try:
        socket.send_fds(_conn, [json.dumps(msg).encode()], [notify_fd])
    except OSError as e:
        raise PyruncError(f"cannot send the seccomp fd to the listener: {e.strerror}") from None
    finally:
        _conn.close()
        _conn = None
        import os
        os.close(notify_fd)
