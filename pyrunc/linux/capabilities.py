"""Capability names, numbers and the calls that set the five sets."""
from __future__ import annotations

from pyrunc.linux import syscalls as sc

NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
NUMBERS = {name: i for i, name in enumerate(NAMES)}


_last: int | None = None


def last_cap() -> int:
    """The kernel's highest capability number; read once (it cannot change while we run)."""
    global _last
    if _last is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _last = int(f.read())
        except OSError:
            _last = len(NAMES) - 1
    return _last


def to_mask(names: list[str], last: int) -> tuple[int, list[str]]:
    """Mask of the known names, and the names this kernel does not know (runc skips them)."""
    mask, unknown = 0, []
    for name in names:
        n = NUMBERS.get(name)
        if n is None or n > last:
            unknown.append(name)
        else:
            mask |= 1 << n
    return mask, unknown


def drop_bounding(keep: int, last: int) -> None:
    for n in range(last + 1):
        if not keep & (1 << n) and sc.prctl(sc.PR_CAPBSET_READ, n):
            sc.prctl(sc.PR_CAPBSET_DROP, n)


def set_ambient(mask: int, last: int) -> None:
    sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    for n in range(last + 1):
        if mask & (1 << n):
            sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, n)
