"""Mounts made and attached through fds only (open_tree, fsopen/fsmount, move_mount).

After pivot_root the only procfs is the container's, which a hostile image or a racing container
could have arranged; these helpers never need /proc/self/fd, so nothing the container controls
can redirect them (the CVE-2025-31133 / CVE-2025-52565 class).
"""
from __future__ import annotations

import os
import stat

from pyrunc.errors import PyruncError
from pyrunc.linux import syscalls as sc

def clone_tree(fd: int, recursive: bool) -> int:
    """A detached copy of the mount (tree) at fd: a bind mount waiting to be attached."""
    flags = sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | sc.AT_EMPTY_PATH
    return sc.open_tree(fd, "", flags | (sc.AT_RECURSIVE if recursive else 0))


def set_attrs(tree: int, attr_set: int, attr_clr: int = 0, recursive: bool = True) -> None:
    if attr_set or attr_clr:
        sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if recursive else 0),
                         attr_set, attr_clr)


def attach(tree: int, target_fd: int) -> None:
    """Mount the detached tree on the file or directory that target_fd is."""
    try:
        sc.move_mount(tree, "", target_fd, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH)
    finally:
        os.close(tree)


def new_fs(fstype: str, options: dict[str, str | None], attrs: int = 0) -> int:
    """A fresh, detached filesystem mount (fsopen/fsconfig/fsmount)."""
    fs = sc.fsopen(fstype)
    try:
        for k, v in options.items():
            if v is None:
                sc.fsconfig(fs, sc.FSCONFIG_SET_FLAG, k)
            else:
                sc.fsconfig(fs, sc.FSCONFIG_SET_STRING, k, v)
        sc.fsconfig(fs, sc.FSCONFIG_CMD_CREATE)
        return sc.fsmount(fs, sc.FSMOUNT_CLOEXEC, attrs)
    finally:
        os.close(fs)


def open_null(root_fd: int) -> int:
    """An O_PATH fd of the container's /dev/null, refused unless it really is the null device
    (char 1:3): a container that swapped it for a symlink or a file must not steer a mask."""
    try:
        fd = sc.openat2(root_fd, "dev/null", os.O_PATH | os.O_NOFOLLOW, 0,
                        sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS)
    except OSError as e:
        raise PyruncError(f"cannot open /dev/null in the container: {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise PyruncError("/dev/null in the container is not the null device (char 1:3): refusing "
                          "to use it for masking")
    return fd
