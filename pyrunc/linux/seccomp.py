"""config-linux.md "Seccomp" through libseccomp, loaded with cffi in ABI mode (no headers needed).

`compile(profile)` builds the libseccomp context up front, while errors can still reach `create`;
`Filter.load()` installs it and returns the user-notification fd when the profile uses
SCMP_ACT_NOTIFY. The cffi parse and dlopen cost ~70 ms, so nothing here is imported unless the
config has a seccomp profile.

Behaviour follows runc: rules whose action equals the default are skipped (the kernel would gain
nothing and libseccomp refuses them), syscall names libseccomp does not know are skipped, several
conditions on the same argument turn into one rule per condition (libseccomp can only AND
conditions on distinct arguments), and the no_new_privs attribute is cleared so that
`process.noNewPrivileges` alone decides it.
"""
from __future__ import annotations

import errno as _errno
import os
import sys

from pyrunc.errors import PyruncError

_CDEF = """
typedef void *scmp_filter_ctx;
struct scmp_arg_cmp { unsigned int arg; int op; uint64_t datum_a; uint64_t datum_b; };
struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
int seccomp_load(scmp_filter_ctx ctx);
int seccomp_attr_set(scmp_filter_ctx ctx, int attr, uint32_t value);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
int seccomp_syscall_resolve_name(const char *name);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                           unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
int seccomp_notify_fd(scmp_filter_ctx ctx);
int seccomp_export_bpf(scmp_filter_ctx ctx, int fd);
const struct scmp_version *seccomp_version(void);
"""

ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP, "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE, "SCMP_ACT_ALLOW": ACT_ALLOW, "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}

# enum scmp_filter_attr
_ATTR_CTL_NNP = 3
_ATTR_CTL_TSYNC = 4
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7
_ATTR_CTL_WAITKILL = 10  # libseccomp >= 2.6

# seccomp(2)
FLAG_TSYNC = 1 << 0
FLAG_LOG = 1 << 1
FLAG_SPEC_ALLOW = 1 << 2
FLAG_NEW_LISTENER = 1 << 3
FLAG_TSYNC_ESRCH = 1 << 4
FLAG_WAIT_KILLABLE_RECV = 1 << 5
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": (FLAG_TSYNC, _ATTR_CTL_TSYNC),
    "SECCOMP_FILTER_FLAG_LOG": (FLAG_LOG, _ATTR_CTL_LOG),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (FLAG_SPEC_ALLOW, _ATTR_CTL_SSB),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (FLAG_WAIT_KILLABLE_RECV, _ATTR_CTL_WAITKILL),
}
_MAX_ARGS = 6

# config-linux.md's architecture names; each is handed to libseccomp (its own name lower-cased)
ARCHS = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
)


def supported_flags() -> list[str]:
    """The FLAGS this kernel takes. pyrunc loads the filter itself where libseccomp cannot pass
    a flag, so the kernel alone decides. WAIT_KILLABLE_RECV is only valid with a listener."""
    from pyrunc.linux import syscalls
    return [name for name, (bit, _) in FLAGS.items()
            if syscalls.seccomp_flags_known(
                bit | (FLAG_NEW_LISTENER if bit == FLAG_WAIT_KILLABLE_RECV else 0))]

_lib = None
_ffi = None


def _load_library():
    """dlopen libseccomp once; a profile on a host without it gets one clear line."""
    global _lib, _ffi
    if _lib is None:
        try:
            import cffi
        except ImportError:
            raise PyruncError("linux.seccomp needs the Python package cffi") from None
        ffi = cffi.FFI()
        ffi.cdef(_CDEF)
        try:
            _lib = ffi.dlopen("libseccomp.so.2")
        except OSError:
            raise PyruncError("linux.seccomp needs libseccomp (libseccomp.so.2), which is not "
                              "installed on this host (Debian: apt-get install libseccomp2)") from None
        _ffi = ffi
    return _ffi, _lib


def preload() -> None:
    """dlopen libseccomp while the host's / is still ours."""
    _load_library()


def library_version() -> tuple[int, int, int]:
    ffi, lib = _load_library()
    v = lib.seccomp_version()
    return (v.major, v.minor, v.micro)


def _action(name: str, errno_ret: int | None, where: str) -> int:
    act = ACTIONS.get(name)
    if act is None:
        raise PyruncError(f"seccomp: {where}: unknown action {name!r}")
    if act in (ACT_ERRNO, ACT_TRACE):
        ret = _errno.EPERM if errno_ret is None else errno_ret
        return act | (ret & 0xFFFF)
    if errno_ret is not None:
        raise PyruncError(f"seccomp: {where}: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE")
    return act


def _arch_token(lib, name: str) -> int:
    short = name[len("SCMP_ARCH_"):].lower() if name.startswith("SCMP_ARCH_") else name.lower()
    token = lib.seccomp_arch_resolve_name(short.encode())
    if token == 0:
        raise PyruncError(f"seccomp: unknown architecture {name!r}")
    return token


def _conditions(ffi, args: list[dict], where: str) -> list[list]:
    """The condition sets to add as separate rules: one set normally, one per condition when an
    argument index repeats."""
    conds = []
    for a in args:
        idx = a.get("index", 0)
        if not 0 <= idx < _MAX_ARGS:
            raise PyruncError(f"seccomp: {where}: argument index {idx} is out of range 0..5")
        op = OPS.get(a.get("op", ""))
        if op is None:
            raise PyruncError(f"seccomp: {where}: unknown comparison {a.get('op')!r}")
        conds.append((idx, op, a.get("value", 0) & (2**64 - 1), a.get("valueTwo", 0) & (2**64 - 1)))
    indices = [c[0] for c in conds]
    groups = [[c] for c in conds] if len(set(indices)) != len(indices) else [conds]
    out = []
    for group in groups:
        arr = ffi.new("struct scmp_arg_cmp[]", len(group))
        for i, (idx, op, va, vb) in enumerate(group):
            arr[i].arg, arr[i].op, arr[i].datum_a, arr[i].datum_b = idx, op, va, vb
        out.append(arr)
    return out


class Filter:
    """A compiled profile, not yet in the kernel. Holds the libseccomp context until load."""

    def __init__(self, ctx, flags: int, attrs_unsupported: int, notify: bool, listener_path: str,
                 metadata: str):
        self._ctx = ctx
        self.flags = flags
        self._raw_flags = attrs_unsupported
        self.notify = notify
        self.listener_path = listener_path
        self.metadata = metadata

    def load(self) -> int | None:
        """Install the filter in this thread (all threads with TSYNC). Returns the notify fd when
        the profile has SCMP_ACT_NOTIFY rules, else None."""
        ffi, lib = _load_library()
        try:
            if self._raw_flags:
                return self._load_raw(ffi, lib)
            ret = lib.seccomp_load(self._ctx)
            if ret < 0:
                raise PyruncError(f"cannot load the seccomp filter: {os.strerror(-ret)}")
            if not self.notify:
                return None
            fd = lib.seccomp_notify_fd(self._ctx)
            if fd < 0:
                raise PyruncError(f"cannot get the seccomp notify fd: {os.strerror(-fd)}")
            return os.dup(fd)
        finally:
            self.release()

    def _load_raw(self, ffi, lib) -> int | None:
        """Flags this libseccomp cannot set (WAIT_KILLABLE_RECV before 2.6): export its BPF and
        install it with seccomp(2) ourselves, as runc's patchbpf does."""
        rfd = os.memfd_create("pyrunc-seccomp", os.MFD_CLOEXEC)
        try:
            ret = lib.seccomp_export_bpf(self._ctx, rfd)
            if ret < 0:
                raise PyruncError(f"cannot export the seccomp filter: {os.strerror(-ret)}")
            size = os.lseek(rfd, 0, os.SEEK_CUR)
            prog = os.pread(rfd, size, 0)
        finally:
            os.close(rfd)
        flags = self.flags
        if self.notify:
            flags |= FLAG_NEW_LISTENER | (FLAG_TSYNC_ESRCH if flags & FLAG_TSYNC else 0)
        else:
            flags &= ~FLAG_WAIT_KILLABLE_RECV  # the kernel accepts it only with a listener
        fd = _seccomp_set_mode_filter(prog, flags)
        return fd if self.notify else None

    def release(self) -> None:
        if self._ctx is not None:
            _load_library()[1].seccomp_release(self._ctx)
            self._ctx = None


def _seccomp_set_mode_filter(prog: bytes, flags: int) -> int:
    from pyrunc.linux import syscalls
    try:
        return syscalls.seccomp_set_filter(flags, prog)
    except OSError as e:
        raise PyruncError(f"cannot load the seccomp filter: {e.strerror}") from None


def _warn(msg: str) -> None:
    os.write(2, f"pyrunc: warning: {msg}\n".encode(errors="replace"))


def compile(profile: dict) -> Filter:  # noqa: A001 - the name main.py calls
    """Build the filter for `profile` (the linux.seccomp object); raises PyruncError."""
    ffi, lib = _load_library()
    default = _action(profile.get("defaultAction", ""), profile.get("defaultErrnoRet"), "defaultAction")
    if default == ACT_NOTIFY:
        raise PyruncError("seccomp: SCMP_ACT_NOTIFY cannot be the default action")
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise PyruncError("seccomp: cannot initialise libseccomp")
    ok = False
    try:
        def attr(a: int, v: int, what: str) -> bool:
            ret = lib.seccomp_attr_set(ctx, a, v)
            if ret < 0 and ret != -_errno.EOPNOTSUPP and ret != -_errno.EINVAL:
                raise PyruncError(f"seccomp: cannot set {what}: {os.strerror(-ret)}")
            return ret >= 0

        attr(_ATTR_CTL_NNP, 0, "no_new_privs")
        for arch in profile.get("architectures") or []:
            ret = lib.seccomp_arch_add(ctx, _arch_token(lib, arch))
            if ret < 0 and ret != -_errno.EEXIST:
                raise PyruncError(f"seccomp: cannot add architecture {arch}: {os.strerror(-ret)}")
        flags = raw = 0
        for name in profile.get("flags") or []:
            if name not in FLAGS:
                raise PyruncError(f"seccomp: unknown flag {name!r}")
            bit, a = FLAGS[name]
            flags |= bit
            if not attr(a, 1, name):
                raw |= bit
        notify = False
        for i, rule in enumerate(profile.get("syscalls") or []):
            where = f"syscalls[{i}]"
            act = _action(rule.get("action", ""), rule.get("errnoRet"), where)
            if act == ACT_NOTIFY:
                if not profile.get("listenerPath"):
                    raise PyruncError(f"seccomp: {where}: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
                if "write" in (rule.get("names") or []):
                    raise PyruncError(f"seccomp: {where}: SCMP_ACT_NOTIFY cannot be used for write")
            if act == default:
                continue
            groups = _conditions(ffi, rule.get("args") or [], where)
            for name in rule.get("names") or []:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp, skipped as runc does
                    continue
                for arr in groups:
                    ret = lib.seccomp_rule_add_array(ctx, act, nr, len(arr), arr)
                    if ret < 0:
                        raise PyruncError(f"seccomp: cannot add the rule for {name}: {os.strerror(-ret)}")
                notify = notify or act == ACT_NOTIFY
        ok = True
        return Filter(ctx, flags, raw, notify, profile.get("listenerPath") or "",
                      profile.get("listenerMetadata") or "")
    finally:
        if not ok:
            lib.seccomp_release(ctx)


if __name__ == "__main__":  # pragma: no cover - a quick probe: python -m pyrunc.linux.seccomp
    print("libseccomp %d.%d.%d" % library_version(), file=sys.stderr)
