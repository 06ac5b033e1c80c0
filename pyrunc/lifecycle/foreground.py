"""Staying with a process in the foreground, shared by `run` and `exec`: forward the signals we get
to it, proxy our terminal to its pty, and turn its wait status into our exit code (128+N when
signal N killed it), as runc does."""
from __future__ import annotations

import os
import select
import _signal as signal  # not `signal`: it imports enum (~5 ms) for its Signals class

# SIGCHLD is about our own children, SIGWINCH is the proxy's business, SIGURG is not forwarded by
# runc either (its Go runtime sends it to itself), and KILL/STOP cannot be caught at all.
_NOT_FORWARDED = {signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, signal.SIGWINCH, signal.SIGURG}


def exit_code(status: int) -> int:
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.waitstatus_to_exitcode(status)


def forward_signals(pid: int) -> None:
    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    for sig in signal.valid_signals():
        if sig not in _NOT_FORWARDED:
            try:
                signal.signal(sig, forward)
            except (OSError, ValueError):
                pass


def _drain(master: int) -> None:
    """What the process wrote just before it exited is still in the pty: copy it out, without
    blocking (a background child may hold the pty open)."""
    while select.select([master], [], [], 0)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every slave is closed
            return
        if not data:
            return
        os.write(1, data)


def proxy_tty(master: int, pid: int) -> int:
    """Copy our stdin to the pty and the pty to our stdout until `pid` (our child) exits."""
    import termios
    import tty
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
        from pyrunc.linux.console import set_size
        rows, cols = os.get_terminal_size(0).lines, os.get_terminal_size(0).columns
        set_size(master, rows, cols)
    fds = [master, 0]
    try:
        while True:
            try:
                ready, _, _ = select.select(fds, [], [], 0.1)
            except InterruptedError:
                ready = []
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    fds.remove(fd)
                    continue
                os.write(1 if fd == master else master, data)
            got, status = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                if master in fds:
                    _drain(master)
                return exit_code(status)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
