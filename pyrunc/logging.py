"""The --log file: text or JSON lines, the shape containerd and conmon read back from runc."""
from __future__ import annotations

from pyrunc import jsonfast as json
import os
import time


def _timestamp() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def write(g, level: str, msg: str) -> None:
    if not g.log:
        return
    if g.log_format == "json":
        line = json.dumps({"level": level, "msg": msg, "time": _timestamp()}) + "\n"
    else:
        line = f'time="{_timestamp()}" level={level} msg="{msg}"\n'
    try:
        fd = os.open(g.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # the error already went to stderr; a broken log path must not mask it


def log_error(g, msg: str) -> None:
    write(g, "error", msg)
