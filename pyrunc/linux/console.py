"""Pseudo-terminals and passing their master over a unix socket (SCM_RIGHTS), what containerd's
shim and conmon expect on --console-socket."""
from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCGPTPEER = 0x5441


def open_pty(ptmx: str = "/dev/ptmx") -> tuple[int, int, str]:
    """(master, slave, slave path) from the devpts instance behind `ptmx`."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
        # TIOCGPTPEER opens the peer without a path lookup, so nothing can swap the slave
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        os.close(master)
        raise
    return master, slave, f"/dev/pts/{n}"


def set_size(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def make_controlling(slave: int) -> None:
    """The slave becomes stdio and the controlling terminal of a new session."""
    for target in (0, 1, 2):
        os.dup2(slave, target)
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def send_fd(sock: socket.socket, fd: int, name: str) -> None:
    socket.send_fds(sock, [name.encode()], [fd])


def recv_fd(sock: socket.socket) -> int:
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise OSError("no file descriptor received on the console socket")
    return fds[0]
