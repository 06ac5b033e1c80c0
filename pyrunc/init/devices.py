"""/dev inside the container: the default nodes every container gets, `linux.devices`, and the
standard symlinks (config-linux.md "Default Devices")."""
from __future__ import annotations

import os
import stat

from pyrunc.errors import PyruncError
from pyrunc.init import paths
from pyrunc.linux import syscalls as sc

DEFAULT_DEVICES = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
]
SYMLINKS = [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx")]
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def needs_setup(mounts: list[dict]) -> bool:
    """runc's rule: /dev is the runtime's to fill unless the user bind-mounted one."""
    for m in mounts:
        if os.path.normpath(m.get("destination", "")) == "/dev":
            opts = m.get("options") or []
            return not (m.get("type") == "bind" or "bind" in opts or "rbind" in opts)
    return True


def _check(dev: dict) -> tuple[str, str, int]:
    """A device entry's path, type and mode, or one clear error naming what is wrong."""
    path = dev.get("path")
    if not isinstance(path, str) or not path:
        raise PyruncError(f"linux.devices entry {dev!r} has no path")
    if not path.startswith("/"):
        raise PyruncError(f"device {path}: the path must be absolute")
    if os.path.normpath(path) == "/":
        raise PyruncError(f"device {path}: cannot make a device node over the container's /")
    kind = dev.get("type", "c")
    if kind not in _TYPES:
        raise PyruncError(f"device {path}: unknown type {kind!r} (want c, b, u or p)")
    if kind != "p":
        for key in ("major", "minor"):
            v = dev.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > 0xFFFFFFFF:
                raise PyruncError(f"device {path}: type {kind} needs a non-negative integer {key}")
    mode = dev.get("fileMode", 0o666)
    if not isinstance(mode, int) or mode < 0 or mode & ~0o7777 & ~stat.S_IFMT(mode):
        raise PyruncError(f"device {path}: bad fileMode {mode!r}")
    for key in ("uid", "gid"):
        v = dev.get(key, 0)
        if not isinstance(v, int) or v < 0 or v > 0xFFFFFFFE:
            raise PyruncError(f"device {path}: bad {key} {v!r}")
    return os.path.normpath(path), kind, mode & 0o7777


def create(root_fd: int, dev: dict, in_userns: bool) -> None:
    """mknod the entry's node inside the root; every path component is resolved inside it and
    the node is made relative to its parent's fd, so a symlink in the image cannot move it."""
    path, kind, mode = _check(dev)
    parent_path, name = os.path.split(path)
    parent = paths.mkdir_all(root_fd, parent_path)
    try:
        try:  # a leftover or user-made file there is replaced, never followed
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        except (IsADirectoryError, PermissionError):
            if stat.S_ISDIR(os.lstat(name, dir_fd=parent).st_mode):
                raise PyruncError(f"device {path}: a directory is in the way") from None
            raise
        if in_userns:
            # mknod is not allowed in a user namespace: bind the host's node instead, as runc does
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600, dir_fd=parent))
            target = paths.open_in_root(root_fd, path)
            try:
                sc.mount(path, paths.fd_path(target), None, sc.MS_BIND)
            except FileNotFoundError:
                raise PyruncError(f"device {path}: in a user namespace the host's {path} is bound "
                                  "in, and the host has none") from None
            finally:
                os.close(target)
            return
        rdev = os.makedev(dev.get("major", 0), dev.get("minor", 0)) if kind != "p" else 0
        os.mknod(name, _TYPES[kind] | mode, rdev, dir_fd=parent)
        os.chown(name, dev.get("uid", 0), dev.get("gid", 0), dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)


def setup(root_fd: int, linux: dict, in_userns: bool) -> None:
    for dev in DEFAULT_DEVICES + list(linux.get("devices") or []):
        create(root_fd, dev, in_userns)
    devfd = paths.mkdir_all(root_fd, "/dev")
    try:
        links = SYMLINKS + ([("/proc/kcore", "core")] if os.path.exists("/proc/kcore") else [])
        for target, name in links:
            try:
                os.symlink(target, name, dir_fd=devfd)
            except FileExistsError:
                pass
    finally:
        os.close(devfd)
