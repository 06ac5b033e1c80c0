"""Reading and writing cgroup files, with errors a user can act on."""
from __future__ import annotations

import errno
import os

from pyrunc.errors import PyruncError


def write(d: str, name: str, value: str | int, what: str | None = None) -> None:
    """One write(2) per value, as the kernel parses each write as one command."""
    path = os.path.join(d, name)
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PyruncError(f"{what or name}: this host's cgroups have no {name} "
                          f"(in {d})") from None
    except OSError as e:
        err = PyruncError(f"cannot open {path}: {e.strerror}")
        err.errno = e.errno
        raise err from None
    try:
        os.write(fd, data)
    except OSError as e:
        hint = ""
        if e.errno == errno.EINVAL:
            hint = " (value rejected by the kernel)"
        elif e.errno == errno.EBUSY:
            hint = " (in use)"
        err = PyruncError(f"cannot write {str(value)!r} to {path}: {e.strerror}{hint}")
        err.errno = e.errno
        raise err from None
    finally:
        os.close(fd)


def read(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def read_or(d: str, name: str, default: str = "") -> str:
    try:
        return read(d, name)
    except OSError:
        return default


def has(d: str, name: str) -> bool:
    return os.path.exists(os.path.join(d, name))


def procs(d: str, recursive: bool = True) -> list[int]:
    """Every pid in cgroup `d` (and its sub-cgroups when `recursive`), no duplicates."""
    out: list[int] = []
    seen: set[int] = set()
    for root, dirs, _ in (os.walk(d) if recursive else [(d, [], [])]):
        try:
            with open(os.path.join(root, "cgroup.procs")) as f:
                for line in f:
                    if line.strip():
                        pid = int(line)
                        if pid not in seen:
                            seen.add(pid)
                            out.append(pid)
        except FileNotFoundError:
            continue
    return out


def rmdir_tree(d: str) -> None:
    """Remove cgroup `d` and the sub-cgroups a container may have made, deepest first.

    Cgroup directories are removed with rmdir(2) only; their files are not real files."""
    for root, dirs, _ in os.walk(d, topdown=False):
        for sub in dirs:
            try:
                os.rmdir(os.path.join(root, sub))
            except FileNotFoundError:
                pass
    os.rmdir(d)
