"""The socketpair between the runtime and the process it is creating.

SOCK_SEQPACKET keeps message boundaries, so a message is one send: a word, then an optional
argument after one space (`pid 1234`, `error cannot mount /proc: ...`). Both sides use this module:
it carries no policy, only the framing.
"""
from __future__ import annotations

import socket

from pyrunc.errors import PyruncError


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, word: str, arg: str = "") -> None:
    sock.send(f"{word} {arg}".encode() if arg else word.encode())


def recv(sock: socket.socket) -> tuple[str, str]:
    """The next message; an empty word means the other side is gone."""
    data = sock.recv(65536)
    word, _, arg = data.decode(errors="replace").partition(" ")
    return word, arg


def expect(sock: socket.socket, want: str) -> str:
    """Wait for `want`; an `error` message or a closed channel becomes a PyruncError."""
    word, arg = recv(sock)
    if word == want:
        return arg
    if word == "error":
        raise PyruncError(arg)
    if not word:
        raise PyruncError(f"container init exited before it said {want!r}")
    raise PyruncError(f"container init said {word!r} where {want!r} was expected")
