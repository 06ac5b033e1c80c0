"""process.terminal inside the container: a pty from the container's own devpts, its master handed
to the console socket (SCM_RIGHTS), its slave our stdio and controlling terminal. Shared by the
init and by `exec`."""
from __future__ import annotations

import os

from pyrunc.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket


def setup(console: "socket.socket", proc: dict, bind_console: bool) -> None:
    """`bind_console`: the init also binds the slave onto /dev/console (through fds)."""
    from pyrunc.linux import console as con
    if not os.path.exists("/dev/ptmx"):
        raise PyruncError("a terminal needs /dev/ptmx in the container (mount devpts at /dev/pts)")
    master, slave, slave_path = con.open_pty("/dev/ptmx")
    size = proc.get("consoleSize")
    if size:
        con.set_size(master, size.get("height", 0), size.get("width", 0))
    if bind_console:
        from pyrunc.init import rootfs
        rootfs.bind_console(slave)
    con.send_fd(console, master, slave_path)
    os.close(master)
    console.close()
    con.make_controlling(slave)
    if slave > 2:
        os.close(slave)
