"""config-linux.md "Sysctl": written by the init through the container's own /proc/sys, before the
readonly paths make it read-only. Whether each key belongs to a namespace the container owns is
checked by pyrunc.spec.validate before anything is created, as runc's validator does."""
from __future__ import annotations

import os

from pyrunc.errors import PyruncError


def path_of(key: str) -> str:
    """`net.ipv4.ip_forward` -> /proc/sys/net/ipv4/ip_forward; a key written with slashes keeps its
    dots (sysctl(8)'s rule, for names such as the interface `eth0.100`)."""
    rel = key.strip("/") if "/" in key else key.replace(".", "/")
    if ".." in rel.split("/"):
        raise PyruncError(f"linux.sysctl: bad key {key!r}")
    return "/proc/sys/" + rel


def apply(sysctl: dict[str, str]) -> None:
    for key, value in sysctl.items():
        path = path_of(key)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                os.write(fd, str(value).encode())
            finally:
                os.close(fd)
        except OSError as e:
            raise PyruncError(f"cannot set sysctl {key}={value}: {e.strerror}") from None
