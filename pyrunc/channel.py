"""The channel between the runtime and the process it is creating (or exec'ing into a container).

Two pipes, one per direction; a message is one line: a word, then an optional argument after one
space (`pid 1234`, `error cannot mount /proc: ...`). Pipes, not a socketpair: importing `socket`
costs more than the rest of `create`'s own imports. Both sides use this module: it carries no
policy, only the framing.
"""
from __future__ import annotations

import os

from pyrunc.errors import PyruncError


class Channel:
    """One end: the pipe we read from and the pipe we write to (close-on-exec both)."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.buf = b""

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.rfd = self.wfd = -1

    def above(self, lowest: int) -> "Channel":
        """Move both fds to numbers >= `lowest` (out of the way of --preserve-fds)."""
        import fcntl
        moved = Channel(fcntl.fcntl(self.rfd, fcntl.F_DUPFD_CLOEXEC, lowest),
                        fcntl.fcntl(self.wfd, fcntl.F_DUPFD_CLOEXEC, lowest))
        moved.buf = self.buf
        self.close()
        return moved


def pair() -> tuple[Channel, Channel]:
    """(runtime's end, child's end)."""
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    return Channel(up_r, down_w), Channel(down_r, up_w)


def send(ch: Channel, word: str, arg: str = "") -> None:
    line = (f"{word} {arg}" if arg else word).replace("\n", " ") + "\n"
    data = line.encode(errors="replace")
    while data:
        data = data[os.write(ch.wfd, data):]


def recv(ch: Channel) -> tuple[str, str]:
    """The next message; an empty word means the other side is gone."""
    while b"\n" not in ch.buf:
        chunk = os.read(ch.rfd, 65536)
        if not chunk:
            return "", ""
        ch.buf += chunk
    line, _, ch.buf = ch.buf.partition(b"\n")
    word, _, arg = line.decode(errors="replace").partition(" ")
    return word, arg


def expect(ch: Channel, want: str) -> str:
    """Wait for `want`; an `error` message or a closed channel becomes a PyruncError."""
    word, arg = recv(ch)
    if word == want:
        return arg
    if word == "error":
        raise PyruncError(arg)
    if not word:
        raise PyruncError(f"container process exited before it said {want!r}")
    raise PyruncError(f"container process said {word!r} where {want!r} was expected")
