"""Namespace kinds as runtime-spec names them, their clone flags and /proc/PID/ns names."""
from __future__ import annotations

import os

from pyrunc.linux import syscalls as sc

# spec type -> (clone flag, /proc/self/ns entry). Ordered as they must be joined: user first, since
# it decides what the others may do; mount last of the rest, since after it paths change meaning.
KINDS: dict[str, tuple[int, str]] = {
    "user": (sc.CLONE_NEWUSER, "user"),
    "ipc": (sc.CLONE_NEWIPC, "ipc"),
    "uts": (sc.CLONE_NEWUTS, "uts"),
    "network": (sc.CLONE_NEWNET, "net"),
    "pid": (sc.CLONE_NEWPID, "pid"),
    "cgroup": (sc.CLONE_NEWCGROUP, "cgroup"),
    "time": (sc.CLONE_NEWTIME, "time"),
    "mount": (sc.CLONE_NEWNS, "mnt"),
}


def open_paths(namespaces: list[dict]) -> list[tuple[str, int]]:
    """Open every `path` namespace before joining any: once one is joined (mount above all), the
    other paths may no longer resolve the way the user meant."""
    fds = []
    try:
        for ns in sorted((n for n in namespaces if n.get("path")), key=lambda n: list(KINDS).index(n["type"])):
            fds.append((ns["type"], os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)))
    except OSError as e:
        for _, fd in fds:
            os.close(fd)
        raise OSError(e.errno, f"cannot open {ns['type']} namespace {ns['path']}: {e.strerror}") from None
    return fds


def join(fds: list[tuple[str, int]]) -> None:
    for kind, fd in fds:
        try:
            sc.setns(fd, KINDS[kind][0])
        except OSError as e:
            raise OSError(e.errno, f"cannot join {kind} namespace: {e.strerror}") from None
        os.close(fd)


def new_flags(namespaces: list[dict]) -> int:
    """The clone flags of the namespaces to create (those without a path)."""
    flags = 0
    for ns in namespaces:
        if not ns.get("path"):
            flags |= KINDS[ns["type"]][0]
    return flags
