"""Scheduling knobs of config.md "Process" and config-linux.md: scheduler (sched_setattr), I/O
priority, personality, memory policy and CPU affinity. Each call turns the spec's strings into the
kernel's numbers and its failures into one PyruncError line."""
from __future__ import annotations

import errno
import os
import struct

from pyrunc.errors import PyruncError
from pyrunc.linux import syscalls as sc

POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
            "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
_SCHED_ATTR_SIZE_VER0 = 48

IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13

PER_LINUX = 0x0000
PER_LINUX32 = 0x0008
DOMAINS = {"LINUX": PER_LINUX, "LINUX32": PER_LINUX32}
# personality(2) flags; runtime-spec defines none yet, these are the kernel's names for them
PERSONALITY_FLAGS = {"UNAME26": 0x0020000, "ADDR_NO_RANDOMIZE": 0x0040000,
                     "FDPIC_FUNCPTRS": 0x0080000, "MMAP_PAGE_ZERO": 0x0100000,
                     "ADDR_COMPAT_LAYOUT": 0x0200000, "READ_IMPLIES_EXEC": 0x0400000,
                     "ADDR_LIMIT_32BIT": 0x0800000, "SHORT_INODE": 0x1000000,
                     "WHOLE_SECONDS": 0x2000000, "STICKY_TIMEOUTS": 0x4000000,
                     "ADDR_LIMIT_3GB": 0x8000000}

MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_STATIC_NODES": 1 << 15}


def set_scheduler(s: dict) -> None:
    """process.scheduler for this process (pid 0), inherited by the program after exec."""
    policy = POLICIES.get(s.get("policy", ""))
    if policy is None:
        raise PyruncError(f"process.scheduler: unknown policy {s.get('policy')!r}")
    flags = 0
    for name in s.get("flags") or []:
        bit = SCHED_FLAGS.get(name)
        if bit is None:
            raise PyruncError(f"process.scheduler: unknown flag {name!r}")
        flags |= bit
    attr = struct.pack("=IIQiIQQQ", _SCHED_ATTR_SIZE_VER0, policy, flags, s.get("nice", 0),
                       s.get("priority", 0), s.get("runtime", 0), s.get("deadline", 0),
                       s.get("period", 0))
    try:
        sc.sched_setattr(0, attr, 0)
    except OSError as e:
        hint = ""
        if e.errno == errno.EPERM and policy in (1, 2) and os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
            hint = (" (cgroup v1 real-time group scheduling: give the container's cgroup a budget "
                    "with linux.resources.cpu.realtimeRuntime)")
        raise PyruncError(f"cannot set the scheduler to {s['policy']}: {os.strerror(e.errno)}{hint}") from None


def set_io_priority(p: dict) -> None:
    cls = IOPRIO_CLASSES.get(p.get("class", ""))
    if cls is None:
        raise PyruncError(f"process.ioPriority: unknown class {p.get('class')!r}")
    prio = p.get("priority", 0)
    if not 0 <= prio <= 7:
        raise PyruncError(f"process.ioPriority: priority {prio} is outside 0..7")
    try:
        sc.ioprio_set(_IOPRIO_WHO_PROCESS, 0, cls << _IOPRIO_CLASS_SHIFT | prio)
    except OSError as e:
        raise PyruncError(f"cannot set the I/O priority: {os.strerror(e.errno)}") from None


def _or_flags(table: dict[str, int], names: list[str], what: str) -> int:
    bits = 0
    for name in names:
        bit = table.get(name)
        if bit is None:
            raise PyruncError(f"{what}: unknown flag {name!r}")
        bits |= bit
    return bits


def personality_value(p: dict) -> int:
    domain = DOMAINS.get(p.get("domain", ""))
    if domain is None:
        raise PyruncError(f"linux.personality: unknown domain {p.get('domain')!r} (LINUX or LINUX32)")
    return domain | _or_flags(PERSONALITY_FLAGS, p.get("flags") or [], "linux.personality")


def set_personality(value: int) -> None:
    try:
        sc.personality(value)
    except OSError as e:
        raise PyruncError(f"cannot set the personality: {os.strerror(e.errno)}") from None


def parse_list(text: str, what: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7], the list format of cpusets, node sets and affinities."""
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise PyruncError(f"{what}: {text!r} is not a list like 0-3,7") from None
        if a > b or a < 0:
            raise PyruncError(f"{what}: bad range {part!r}")
        out.extend(range(a, b + 1))
    return out


def set_memory_policy(mp: dict) -> None:
    """linux.memoryPolicy: the init sets it and the program inherits it across execve."""
    mode = MPOL_MODES.get(mp.get("mode", ""))
    if mode is None:
        raise PyruncError(f"linux.memoryPolicy: unknown mode {mp.get('mode')!r}")
    mode |= _or_flags(MPOL_FLAGS, mp.get("flags") or [], "linux.memoryPolicy")
    nodes = parse_list(mp.get("nodes") or "", "linux.memoryPolicy.nodes")
    words = [0] * ((max(nodes) // 64 + 1) if nodes else 0)
    for n in nodes:
        words[n // 64] |= 1 << (n % 64)
    try:
        # maxnode counts bits and the kernel reads one fewer than it is given
        sc.set_mempolicy(mode, words, len(words) * 64 + 1 if words else 0)
    except OSError as e:
        raise PyruncError(f"cannot set the memory policy {mp['mode']}: {os.strerror(e.errno)}") from None


def set_affinity(cpus: str, what: str, pid: int = 0) -> None:
    """process.execCPUAffinity (initial before joining the cgroup, final after): for `exec`."""
    wanted = parse_list(cpus, what)
    if not wanted:
        return
    try:
        os.sched_setaffinity(pid, wanted)
    except OSError as e:
        raise PyruncError(f"cannot set the CPU affinity {what} to {cpus}: {os.strerror(e.errno)}") from None
