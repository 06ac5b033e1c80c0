"""The device filter of a cgroup2 directory: a BPF_PROG_TYPE_CGROUP_DEVICE program.

cgroup2 has no devices.allow/deny files; the kernel instead asks a program attached to the cgroup,
with a context of (access_type = type | access << 16, major, minor), and allows the access when the
program returns 1. The program is generated from the effective rules (a default and the exceptions
to it, see devices.effective): one block per exception that returns the opposite of the default
when the device matches, and a final return of the default.

Loading and attaching go through the C shim's bpf(cmd, attr). The attr structs carry user pointers
(to the instructions and the license string); ctypes is used only to take those buffers' addresses.
A replaced program is attached first (BPF_F_ALLOW_MULTI) and the old ones detached afterwards, so
an update never leaves the container without a filter for a moment.
"""
from __future__ import annotations

import ctypes
import os
import struct

from pyrunc.errors import PyruncError

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4

# opcodes
_LDXW = 0x61      # dst = *(u32 *)(src + off)
_AND_K = 0x57     # dst &= imm (64-bit)
_RSH_K = 0x77     # dst >>= imm
_MOV_K = 0xb7     # dst = imm
_MOV_X = 0xbf     # dst = src
_JNE_K = 0x55     # if dst != imm goto pc + off
_EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _access_mask(access: str) -> int:
    return (ACC_MKNOD if "m" in access else 0) | (ACC_READ if "r" in access else 0) | \
        (ACC_WRITE if "w" in access else 0)


def program(default_allow: bool, exceptions: list) -> bytes:
    """The instructions; r2 = type, r3 = access, r4 = major, r5 = minor, r1 scratch."""
    prog = [
        _insn(_LDXW, 2, 1, 0), _insn(_AND_K, 2, imm=0xFFFF),
        _insn(_LDXW, 3, 1, 0), _insn(_RSH_K, 3, imm=16),
        _insn(_LDXW, 4, 1, 4), _insn(_LDXW, 5, 1, 8),
    ]
    for r in exceptions:
        checks: list[tuple] = []  # each: list of insns whose last is a jump to "next block"
        if r.type in ("c", "b"):
            checks.append([("j", _JNE_K, 2, DEV_CHAR if r.type == "c" else DEV_BLOCK)])
        mask = _access_mask(r.access)
        if mask != 7:
            checks.append([_insn(_MOV_X, 1, 3), _insn(_AND_K, 1, imm=(~mask) & 7),
                           ("j", _JNE_K, 1, 0)])
        if r.major != -1:
            checks.append([("j", _JNE_K, 4, r.major)])
        if r.minor != -1:
            checks.append([("j", _JNE_K, 5, r.minor)])
        flat = [i for c in checks for i in c] + [
            _insn(_MOV_K, 0, imm=1 if r.allow else 0), _insn(_EXIT)]
        n = len(flat)
        for idx, ins in enumerate(flat):
            if isinstance(ins, tuple):
                _, code, dst, imm = ins
                prog.append(_insn(code, dst, 0, n - idx - 1, imm))
            else:
                prog.append(ins)
    prog += [_insn(_MOV_K, 0, imm=1 if default_allow else 0), _insn(_EXIT)]
    return b"".join(prog)


def _addr(buf) -> int:
    return ctypes.addressof(buf)


def load(insns: bytes) -> int:
    from pyrunc.linux import syscalls
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"Apache\0")
    log = ctypes.create_string_buffer(65536)
    attr = bytearray(128)
    struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8,
                     _addr(code), _addr(lic), 1, len(log), _addr(log))
    attr[48:48 + 13] = b"pyrunc_devices"[:13]
    struct.pack_into("<I", attr, 68, BPF_CGROUP_DEVICE)
    try:
        return syscalls.bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        detail = log.value.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise PyruncError(f"cannot load the device filter (eBPF): {e.strerror} {detail[0]}".strip()
                          ) from None


def _query(cg_fd: int) -> list[int]:
    from pyrunc.linux import syscalls
    ids = (ctypes.c_uint32 * 64)()
    attr = bytearray(40)
    struct.pack_into("<IIIIQI", attr, 0, cg_fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64)
    syscalls.bpf(BPF_PROG_QUERY, attr)
    cnt = struct.unpack_from("<I", attr, 24)[0]
    return [ids[i] for i in range(min(cnt, 64))]


def attached(cgroup_dir: str) -> list[int]:
    """Ids of the device programs attached to the cgroup itself."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _query(fd)
    finally:
        os.close(fd)


def install(cgroup_dir: str, default_allow: bool, exceptions: list) -> None:
    from pyrunc.linux import syscalls
    prog_fd = load(program(default_allow, exceptions))
    cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            old = _query(cg_fd)
        except OSError:
            old = []
        attr = bytearray(20)
        struct.pack_into("<IIII", attr, 0, cg_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        try:
            syscalls.bpf(BPF_PROG_ATTACH, attr)
        except OSError as e:
            raise PyruncError(f"cannot attach the device filter to {cgroup_dir}: {e.strerror}"
                              ) from None
        for pid_ in old:
            a = bytearray(16)
            struct.pack_into("<I", a, 0, pid_)
            try:
                ofd = syscalls.bpf(BPF_PROG_GET_FD_BY_ID, a)
            except OSError:
                continue
            try:
                d = bytearray(20)
                struct.pack_into("<III", d, 0, cg_fd, ofd, BPF_CGROUP_DEVICE)
                syscalls.bpf(BPF_PROG_DETACH, d)
            except OSError:
                pass
            finally:
                os.close(ofd)
    finally:
        os.close(cg_fd)
        os.close(prog_fd)
