"""The container's process (config.md "Process"): rlimits, user, capabilities, then execve.

Order matters and follows runc: rlimits and no_new_privs while still root; the bounding set is
dropped before changing uid (it needs CAP_SETPCAP); uid changes keep the permitted set
(PR_SET_KEEPCAPS) so that capset can then set exactly the configured sets.
"""
from __future__ import annotations

import os
import resource
import signal
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


def find_executable(args: list[str], env: dict[str, str]) -> str:
    """runc's lookup: a name with a slash is taken as is, else searched in the container's PATH."""
    if not args:
        raise PyruncError("process.args must not be empty")
    name = args[0]
    if "/" in name:
        if not os.path.exists(name):
            raise PyruncError(f'exec: "{name}": no such file or directory')
        return name
    for d in (env.get("PATH") or DEFAULT_PATH).split(":"):
        cand = os.path.join(d or ".", name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise PyruncError(f'exec: "{name}": executable file not found in $PATH')


def apply_rlimits(rlimits: list[dict]) -> None:
    for rl in rlimits:
        kind = rl.get("type", "")
        num = getattr(resource, kind, None)
        if not kind.startswith("RLIMIT_") or num is None:
            raise PyruncError(f"unknown rlimit {kind!r}")
        try:
            resource.setrlimit(num, (rl["soft"], rl["hard"]))
        except (ValueError, OSError) as e:
            raise PyruncError(f"cannot set {kind} to soft={rl['soft']} hard={rl['hard']}: {e}") from None


def apply_user(process: dict, has_caps: bool, in_userns: bool) -> None:
    user = process.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    if has_caps:
        sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(user.get("additionalGids") or [])
    except OSError as e:
        if not in_userns:
            raise PyruncError(f"cannot set additional gids: {e.strerror}") from None
    try:
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise PyruncError(f"cannot become uid {uid} gid {gid}: {e.strerror}") from None
    if has_caps:
        sc.prctl(sc.PR_SET_KEEPCAPS, 0)


def apply_capabilities_before_user(c: dict) -> None:
    last = caps.last_cap()
    bounding, _ = caps.to_mask(c.get("bounding") or [], last)
    caps.drop_bounding(bounding, last)


def apply_capabilities_after_user(c: dict) -> None:
    last = caps.last_cap()
    eff, _ = caps.to_mask(c.get("effective") or [], last)
    perm, _ = caps.to_mask(c.get("permitted") or [], last)
    inh, _ = caps.to_mask(c.get("inheritable") or [], last)
    amb, _ = caps.to_mask(c.get("ambient") or [], last)
    sc.capset(eff, perm, inh)
    caps.set_ambient(amb & perm & inh, last)  # the kernel allows no other ambient caps


def prepare(process: dict, in_userns: bool) -> tuple[str, list[str], dict[str, str]]:
    """Everything short of exec; returns (path, argv, env) for `exec_`."""
    env = env_dict(process.get("env") or [])
    path = find_executable(process.get("args") or [], env)
    apply_rlimits(process.get("rlimits") or [])
    if process.get("oomScoreAdj") is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(process["oomScoreAdj"]))
    if process.get("noNewPrivileges"):
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    cwd = process.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as e:
        raise PyruncError(f"cannot change to cwd {cwd}: {e.strerror}") from None
    c = process.get("capabilities")
    if c is not None:
        apply_capabilities_before_user(c)
    apply_user(process, c is not None, in_userns)
    if c is not None:
        apply_capabilities_after_user(c)
    return path, list(process["args"]), env


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
    os.execve(path, argv, env)
