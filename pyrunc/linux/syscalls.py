"""Python face of the C shim (pyrunc._shim): each call raises OSError with the kernel's errno.

Constants live here too, so callers never spell a magic number twice.
"""
from __future__ import annotations

import errno
import os

from pyrunc._shim import ffi, lib

# clone/unshare flags
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# mount_setattr / open_tree / move_mount
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x01
MOUNT_ATTR_NOSUID = 0x02
MOUNT_ATTR_NODEV = 0x04
MOUNT_ATTR_NOEXEC = 0x08
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x00
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# prctl options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

CLOSE_RANGE_CLOEXEC = 1 << 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _check(ret: int, what: str, path: str | None = None) -> int:
    if ret < 0:
        err = ffi.errno
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret


def _b(s: str | bytes | None):
    if s is None:
        return ffi.NULL
    return s if isinstance(s, bytes) else os.fsencode(s)


def unshare(flags: int) -> None:
    _check(lib.pyrunc_unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(lib.pyrunc_setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(lib.pyrunc_mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(lib.pyrunc_umount2(_b(target), flags), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(lib.pyrunc_pivot_root(_b(new_root), _b(put_old)), "pivot_root", new_root)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(lib.pyrunc_sethostname(raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(lib.pyrunc_setdomainname(raw, len(raw)), "setdomainname")


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return _check(lib.pyrunc_prctl(option, a2, a3, a4, a5), "prctl")


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) as 64-bit masks."""
    data = ffi.new("uint32_t[6]")
    _check(lib.pyrunc_capget(_LINUX_CAPABILITY_VERSION_3, pid, data), "capget")
    return (data[0] | data[3] << 32, data[1] | data[4] << 32, data[2] | data[5] << 32)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    m = 0xFFFFFFFF
    data = ffi.new("uint32_t[6]", [effective & m, permitted & m, inheritable & m,
                                   effective >> 32, permitted >> 32, inheritable >> 32])
    _check(lib.pyrunc_capset(_LINUX_CAPABILITY_VERSION_3, 0, data), "capset")


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    return _check(lib.pyrunc_openat2(dirfd, _b(path), flags | os.O_CLOEXEC, mode, resolve),
                  "openat2", path)


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    _check(lib.pyrunc_mount_setattr(dirfd, _b(path), flags, attr_set, attr_clr, propagation,
                                    userns_fd), "mount_setattr", path)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    return _check(lib.pyrunc_open_tree(dirfd, _b(path), flags), "open_tree", path)


def move_mount(from_dirfd: int, from_path: str, to_dirfd: int, to_path: str, flags: int) -> None:
    _check(lib.pyrunc_move_mount(from_dirfd, _b(from_path), to_dirfd, _b(to_path), flags),
           "move_mount", to_path)


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    _check(lib.pyrunc_close_range(first, last, flags), "close_range")


def personality(persona: int) -> int:
    return _check(lib.pyrunc_personality(persona), "personality")


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    _check(lib.pyrunc_ioprio_set(which, who, ioprio), "ioprio_set")


def sched_setattr(pid: int, attr: bytes, flags: int = 0) -> None:
    buf = ffi.from_buffer(bytearray(attr))
    _check(lib.pyrunc_sched_setattr(pid, buf, flags), "sched_setattr")


def set_mempolicy(mode: int, nodemask: list[int], maxnode: int) -> None:
    arr = ffi.new("unsigned long[]", nodemask or [0])
    _check(lib.pyrunc_set_mempolicy(mode, arr if nodemask else ffi.NULL, maxnode), "set_mempolicy")


def bpf(cmd: int, attr: bytearray) -> int:
    buf = ffi.from_buffer(attr)
    ret = lib.pyrunc_bpf(cmd, buf, len(attr))
    return _check(ret, "bpf")


def seccomp_set_filter(flags: int, program: bytes) -> int:
    """Load a BPF program (a whole number of 8-byte instructions); the notify fd or 0."""
    buf = ffi.from_buffer(bytearray(program))
    return _check(lib.pyrunc_seccomp_set_filter(flags, buf, len(program) // 8), "seccomp")


def seccomp_flags_known(flags: int) -> bool:
    """Whether this kernel knows seccomp filter `flags` (see the shim's probe: EFAULT means it
    got past the flag check)."""
    if lib.pyrunc_seccomp_probe_flags(flags) == 0:
        return True
    return ffi.errno == errno.EFAULT


KEYCTL_JOIN_SESSION_KEYRING = 1


def keyctl_join_session_keyring(name: str) -> int:
    buf = ffi.new("char[]", name.encode())
    return _check(lib.pyrunc_keyctl(KEYCTL_JOIN_SESSION_KEYRING, int(ffi.cast("uintptr_t", buf)),
                                    0, 0, 0), "keyctl")


# the new mount API (fsopen/fsconfig/fsmount): a filesystem made as a detached mount fd, attached
# with move_mount, never reached through a path
FSOPEN_CLOEXEC = 0x01
FSMOUNT_CLOEXEC = 0x01
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6


def fsopen(fsname: str, flags: int = FSOPEN_CLOEXEC) -> int:
    return _check(lib.pyrunc_fsopen(_b(fsname), flags), "fsopen", fsname)


def fsconfig(fd: int, cmd: int, key: str | None = None, value: str | None = None, aux: int = 0) -> None:
    _check(lib.pyrunc_fsconfig(fd, cmd, _b(key), _b(value), aux), "fsconfig", key)


def fsmount(fd: int, flags: int = FSMOUNT_CLOEXEC, attr_flags: int = 0) -> int:
    return _check(lib.pyrunc_fsmount(fd, flags, attr_flags), "fsmount")
