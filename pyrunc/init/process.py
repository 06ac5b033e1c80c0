"""The container's process (config.md "Process"): limits, scheduling, LSM labels, seccomp, user,
capabilities, personality, then execve.

Order matters and follows runc: rlimits, priorities and no_new_privs while still root; the bounding
set is dropped before changing uid (it needs CAP_SETPCAP); uid changes keep the permitted set
(PR_SET_KEEPCAPS) so that capset can then set exactly the configured sets.
"""
from __future__ import annotations

import os
import resource
import stat
import _signal as signal  # not `signal`: it imports enum (~5 ms) for its Signals class
TYPE_CHECKING = False  # typing itself costs milliseconds on every command
if TYPE_CHECKING:
    from typing import NoReturn

from pyrunc.errors import PyruncError
from pyrunc.linux import capabilities as caps
from pyrunc.linux import syscalls as sc

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_dict(env: list[str]) -> dict[str, str]:
    out = {}
    for item in env:
        k, eq, v = item.partition("=")
        if eq:
            out[k] = v
    return out


def home_of(uid: int) -> str:
    """runc's default HOME: the user's entry in the container's /etc/passwd, else "/"."""
    try:
        with open("/etc/passwd", "rb") as f:
            for line in f:
                fields = line.decode(errors="replace").rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def find_executable(args: list[str], env: dict[str, str]) -> str:
    """runc's lookup: a name with a slash is taken as is, else searched in the container's PATH."""
    if not args:
        raise PyruncError("process.args must not be empty")
    name = args[0]
    if "/" in name:
        try:
            mode = os.stat(name).st_mode
        except OSError:
            raise PyruncError(f'exec: "{name}": no such file or directory') from None
        # runc refuses a directory or a file without any x bit here, before create returns, so
        # the client hears "permission denied" (podman: exit 126) instead of a failed start.
        if stat.S_ISDIR(mode) or not mode & 0o111:
            raise PyruncError(f'exec: "{name}": permission denied')
        return name
    for d in (env.get("PATH") or DEFAULT_PATH).split(":"):
        cand = os.path.join(d or ".", name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise PyruncError(f'exec: "{name}": executable file not found in $PATH')


_RLIM_INFINITY = 2**64 - 1


def _rlimit_value(v: int) -> int:
    return resource.RLIM_INFINITY if v >= _RLIM_INFINITY or v < 0 else v


def apply_rlimits(rlimits: list[dict]) -> None:
    """Raising a hard limit needs CAP_SYS_RESOURCE, which a host may not grant even to root: say so
    plainly instead of a bare EPERM."""
    for rl in rlimits:
        kind = rl.get("type", "")
        num = getattr(resource, kind, None)
        if not kind.startswith("RLIMIT_") or num is None:
            raise PyruncError(f"unknown rlimit {kind!r}")
        soft, hard = _rlimit_value(rl["soft"]), _rlimit_value(rl["hard"])
        try:
            resource.setrlimit(num, (soft, hard))
        except (ValueError, OSError) as e:
            cur_hard = resource.getrlimit(num)[1]
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            if cur_hard != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > cur_hard):
                why = (f"the hard limit cannot be raised above the current {cur_hard} "
                       f"without CAP_SYS_RESOURCE ({why})")
            raise PyruncError(f"cannot set {kind} to soft={rl['soft']} hard={rl['hard']}: {why}") from None


def apply_user(process: dict, has_caps: bool, in_userns: bool) -> None:
    user = process.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    if has_caps:
        sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    groups = user.get("additionalGids") or []
    try:
        os.setgroups(groups)
    except OSError as e:
        # a user namespace whose setgroups is "deny" refuses even an empty list, as with runc
        if not in_userns or groups:
            raise PyruncError(f"cannot set additional gids {groups}: {e.strerror}") from None
    try:
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise PyruncError(f"cannot become uid {uid} gid {gid}: {e.strerror}") from None
    if has_caps:
        sc.prctl(sc.PR_SET_KEEPCAPS, 0)


def _masks(c: dict, kinds: tuple[str, ...]) -> dict[str, int]:
    """Masks of the five sets; names this kernel does not know are reported once and skipped."""
    last = caps.last_cap()
    out, unknown = {}, set()
    for kind in kinds:
        out[kind], bad = caps.to_mask(c.get(kind) or [], last)
        unknown.update(bad)
    if unknown:
        os.write(2, f"pyrunc: warning: ignoring capabilities unknown to this kernel: "
                    f"{', '.join(repr(u) for u in sorted(unknown))}\n".encode())
    return out


def apply_capabilities_before_user(c: dict) -> None:
    caps.drop_bounding(_masks(c, ("bounding",))["bounding"], caps.last_cap())


def apply_capabilities_after_user(c: dict) -> None:
    m = _masks(c, ("effective", "permitted", "inheritable", "ambient"))
    try:
        sc.capset(m["effective"], m["permitted"], m["inheritable"])
    except OSError as e:
        raise PyruncError(f"cannot set capabilities: {e.strerror} (effective and inheritable "
                          f"must be within permitted, permitted within bounding)") from None
    # the kernel refuses ambient caps that are not both permitted and inheritable; runc skips them
    caps.set_ambient(m["ambient"] & m["permitted"] & m["inheritable"], caps.last_cap())


def apply_lsm(process: dict) -> None:
    """Labels for the execve to come: the LSM switches at exec, so the init keeps its own until
    then. pyrunc.spec.validate already refused a label whose LSM this host lacks."""
    profile = process.get("apparmorProfile")
    if profile:
        _write_attr(["/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"], f"exec {profile}",
                    f"AppArmor profile {profile}")
    label = process.get("selinuxLabel")
    if label:
        _write_attr(["/proc/self/attr/exec"], label, f"SELinux label {label}")


def _write_attr(paths: list[str], value: str, what: str) -> None:
    err: OSError | None = None
    for p in paths:
        try:
            with open(p, "w") as f:
                f.write(value)
            return
        except FileNotFoundError as e:
            err = e
        except OSError as e:
            raise PyruncError(f"cannot apply the {what}: {e.strerror}") from None
    raise PyruncError(f"cannot apply the {what}: the LSM is not active on this host ({err})")


def preload(config: dict) -> None:
    """Import, before pivot_root hides the host's files, every module (and library) the init will
    need for this config: after the pivot neither Python's path nor libseccomp.so is reachable.
    Called by stage1 on the host side of the fork, so the init inherits them loaded."""
    proc = config.get("process") or {}
    linux = config.get("linux") or {}
    if proc.get("ioPriority") or proc.get("scheduler") or linux.get("memoryPolicy") \
            or linux.get("personality"):
        import pyrunc.linux.sched  # noqa: F401
    if linux.get("sysctl"):
        import pyrunc.init.sysctl  # noqa: F401
    if linux.get("seccomp"):
        from pyrunc.linux import seccomp
        seccomp.preload()
        import pyrunc.init.seccomp_listener  # noqa: F401


def prepare(process: dict, in_userns: bool, linux: dict | None = None, seccomp_filter=None,
            oci_state: dict | None = None) -> tuple[str, list[str], dict[str, str]]:
    """Everything short of exec; returns (path, argv, env) for `exec_`.

    runc's order: limits, scheduling and no_new_privs while still fully privileged; then seccomp
    if no_new_privs is off (loading a filter without it needs CAP_SYS_ADMIN, so before the drop);
    bounding set, user, the other capability sets; the personality last, since it changes how the
    rest would behave. With no_new_privs on, seccomp waits for exec_, just before execve.
    """
    linux = linux or {}
    env = env_dict(process.get("env") or [])
    if "HOME" not in env:
        env["HOME"] = home_of((process.get("user") or {}).get("uid", 0))
    path = find_executable(process.get("args") or [], env)
    apply_rlimits(process.get("rlimits") or [])
    if process.get("oomScoreAdj") is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(process["oomScoreAdj"]))
        except OSError as e:
            raise PyruncError(f"cannot set oomScoreAdj to {process['oomScoreAdj']}: {e.strerror} "
                              f"(lowering it needs CAP_SYS_RESOURCE)") from None
    if process.get("ioPriority") or process.get("scheduler") or linux.get("memoryPolicy") \
            or linux.get("personality"):
        from pyrunc.linux import sched
        if process.get("ioPriority"):
            sched.set_io_priority(process["ioPriority"])
        if process.get("scheduler"):
            sched.set_scheduler(process["scheduler"])
        if linux.get("memoryPolicy"):
            sched.set_memory_policy(linux["memoryPolicy"])
        persona = sched.personality_value(linux["personality"]) if linux.get("personality") else None
    else:
        persona = None
    nnp = bool(process.get("noNewPrivileges"))
    if nnp:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    apply_lsm(process)
    if seccomp_filter is not None and not nnp:
        _load_seccomp(seccomp_filter, oci_state)
    cwd = process.get("cwd") or "/"
    try:  # as root first: the user may not be able to reach it, runc tries again after the switch
        os.chdir(cwd)
        cwd_done = True
    except OSError:
        cwd_done = False
    c = process.get("capabilities")
    if c is not None:
        apply_capabilities_before_user(c)
    apply_user(process, c is not None, in_userns)
    if c is not None:
        apply_capabilities_after_user(c)
    if not cwd_done:
        try:
            os.chdir(cwd)
        except OSError as e:
            raise PyruncError(f"cannot change to cwd {cwd}: {e.strerror}") from None
    if seccomp_filter is not None and nnp:
        # as late as possible: exec_ loads it right before execve, after the exec fifo and the
        # startContainer hooks, which need syscalls a profile may forbid
        global _pending_seccomp
        _pending_seccomp = (seccomp_filter, oci_state)
    if persona is not None:
        from pyrunc.linux import sched
        sched.set_personality(persona)
    return path, list(process["args"]), env


_pending_seccomp: tuple | None = None  # (filter, oci state), set by prepare for exec_


def _load_seccomp(seccomp_filter, oci_state: dict | None) -> None:
    fd = seccomp_filter.load()
    if fd is not None:
        from pyrunc.init import seccomp_listener
        seccomp_listener.send(fd, oci_state or {}, seccomp_filter.metadata)


def exec_(path: str, argv: list[str], env: dict[str, str], umask: int, preserve_fds: int) -> NoReturn:
    os.umask(umask)
    # Python ignores SIGPIPE and SIGXFSZ for itself; the user's program must start with defaults
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    # fds inherited from our caller beyond the preserved ones must not reach the container
    sc.close_range(3 + preserve_fds, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
    for fd in range(3, 3 + preserve_fds):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    if _pending_seccomp is not None:
        _load_seccomp(*_pending_seccomp)
    os.execve(path, argv, env)
