"""Resolving paths inside the rootfs so that no symlink can lead outside it.

Every lookup goes through openat2(RESOLVE_IN_ROOT): the kernel treats the rootfs fd as `/` for the
whole walk, `..` and absolute symlinks included, and refuses magic links. Callers get an O_PATH fd
and mount or create through it (`fd_path`), never through a path string that could be swapped.
"""
from __future__ import annotations

import errno
import os
import stat

from pyrunc.errors import PyruncError
from pyrunc.linux import syscalls as sc

RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS


def fd_path(fd: int) -> str:
    """A path the kernel resolves to exactly this fd's file (through the host's procfs)."""
    return f"/proc/self/fd/{fd}"


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH) -> int:
    return sc.openat2(root_fd, path.lstrip("/") or ".", flags, 0, RESOLVE)


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def mkdir_all(root_fd: int, path: str, mode: int = 0o755) -> int:
    """Make every missing directory of `path` inside the root; returns an O_PATH fd of the last."""
    parts = _split(path)
    fd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root_fd)
    done: list[str] = []
    for part in parts:
        done.append(part)
        try:
            nfd = open_in_root(root_fd, "/".join(done), os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            try:
                os.mkdir(part, mode, dir_fd=fd)
            except FileExistsError:
                pass  # a dangling symlink, or made meanwhile: the open below decides
            nfd = open_in_root(root_fd, "/".join(done), os.O_PATH | os.O_DIRECTORY)
        except NotADirectoryError:
            os.close(fd)
            raise PyruncError(f"{'/' + '/'.join(done)} in the rootfs is not a directory") from None
        os.close(fd)
        fd = nfd
    return fd


def make_target(root_fd: int, path: str, is_dir: bool) -> int:
    """Make a mount target (a directory, or an empty file for a file bind) and return an O_PATH fd
    of it, resolved inside the root."""
    if is_dir:
        return mkdir_all(root_fd, path)
    parts = _split(path)
    if not parts:
        raise PyruncError("cannot mount a file over the rootfs itself")
    parent = mkdir_all(root_fd, "/".join(parts[:-1]))
    try:
        try:
            return open_in_root(root_fd, "/".join(parts))
        except FileNotFoundError:
            pass
        try:
            os.close(os.open(parts[-1], os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=parent))
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
        return open_in_root(root_fd, "/".join(parts))
    finally:
        os.close(parent)


def is_symlink(root_fd: int, path: str) -> bool:
    """Whether the last component of `path` (its parents resolved inside the root) is a symlink."""
    parts = _split(path)
    if not parts:
        return False
    try:
        parent = open_in_root(root_fd, "/".join(parts[:-1]), os.O_PATH | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        return stat.S_ISLNK(os.lstat(parts[-1], dir_fd=parent).st_mode)
    except FileNotFoundError:
        return False
    finally:
        os.close(parent)


def copy_tree(src: int, dst: int) -> None:
    """Copy the contents of directory fd `src` into directory fd `dst` (tmpcopyup), keeping
    modes, owners, times, symlinks and special files. Nothing is followed: every open is
    O_NOFOLLOW relative to an fd, so a symlink in the image is copied, never traversed."""
    for entry in os.scandir(src):
        name = entry.name
        st = os.lstat(name, dir_fd=src)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            s = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            d = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
            try:
                copy_tree(s, d)
            finally:
                os.close(s)
                os.close(d)
        elif stat.S_ISREG(st.st_mode):
            s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        0o600, dir_fd=dst)
            try:
                while os.sendfile(d, s, None, 1 << 20) > 0:
                    pass
            finally:
                os.close(s)
                os.close(d)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        else:  # devices, fifos and sockets: the node itself
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, mode, dir_fd=dst)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
