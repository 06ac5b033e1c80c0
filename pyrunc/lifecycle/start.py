"""`start`: runtime.md's start operation. Opening the exec fifo releases the init, which is blocked
opening its other end; the byte it writes tells us it has passed that point and is about to exec."""
from __future__ import annotations

import os
import select

from pyrunc import state
from pyrunc.errors import PyruncError


def start(root: str, container_id: str) -> None:
    with state.locked(root, container_id) as path:
        record = state.read(root, container_id)
        status = state.status(path, record)
        if status != "created":
            raise PyruncError(f"cannot start a container that is {status} (only a created one)")
        fifo = os.path.join(path, state.EXEC_FIFO)
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while True:
                if poller.poll(100):
                    data = os.read(fd, 1)
                    if data:
                        break
                if not state.init_alive(record):
                    raise PyruncError("container init exited before it could be started")
        finally:
            os.close(fd)
        os.unlink(fifo)
        from pyrunc import hooks
        config = record.get("config") or {}
        if hooks.of(config, "poststart"):
            hooks.run(config, "poststart", state.oci_state(path, record))


def main(g, flags: dict, args: list[str]) -> int:
    start(g.root, args[0])
    return 0
