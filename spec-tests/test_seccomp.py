"""config-linux.md "Seccomp" through libseccomp: actions, errnoRet, argument filters, flags, and
SCMP_ACT_NOTIFY with a listener that receives the fd over a unix socket and answers a call."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import struct
import threading

import pytest


def run(runtime, bundle, script: str, profile: dict, nnp: bool = True):
    bundle.config["process"]["noNewPrivileges"] = nnp
    bundle.config["linux"]["seccomp"] = profile
    bundle.set_args("sh", "-c", script)
    return runtime("run", "--bundle", str(bundle.path), runtime.new_id())


def allow_but(*rules: dict, **extra) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": list(rules), **extra}


MKDIR = ["mkdir", "mkdirat"]


@pytest.mark.parametrize("nnp", [True, False])
def test_mkdir_fails_with_the_configured_errno(runtime, bundle, nnp):
    prof = allow_but({"names": MKDIR + ["no_such_syscall_skipped"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": errno.EROFS})
    p = run(runtime, bundle, "mkdir /d; echo rc=$?; touch /f && echo touched; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
            prof, nnp)
    assert p.returncode == 0, p.stderr
    assert "Read-only file system" in p.stderr
    assert p.stdout.split() == ["rc=1", "touched", "NoNewPrivs:", "1" if nnp else "0", "Seccomp:", "2"]
    assert not (bundle.rootfs / "d").exists()


def test_errno_without_errno_ret_is_eperm(runtime, bundle):
    p = run(runtime, bundle, "mkdir /d", allow_but({"names": MKDIR, "action": "SCMP_ACT_ERRNO"}))
    assert p.returncode == 1 and "Operation not permitted" in p.stderr


def native_syscall_names() -> list[str]:
    import cffi
    ffi = cffi.FFI()
    ffi.cdef("char *seccomp_syscall_resolve_num_arch(uint32_t arch, int num); void free(void *);")
    lib = ffi.dlopen("libseccomp.so.2")
    names = []
    for nr in range(512):
        p = lib.seccomp_syscall_resolve_num_arch(0, nr)  # 0: the native architecture
        if p != ffi.NULL:
            names.append(ffi.string(p).decode())
    return names


def test_default_action_errno_with_default_errno_ret(runtime, bundle):
    """Default deny with ENOTTY, every native syscall but mkdir allowed: mkdir gets the default."""
    allowed = [n for n in native_syscall_names() if n not in MKDIR]
    prof = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOTTY,
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    p = run(runtime, bundle, "mkdir /d; echo rc=$?", prof)
    assert p.stdout.strip() == "rc=1", p.stderr
    assert "Not a tty" in p.stderr or "Inappropriate ioctl" in p.stderr, p.stderr


def test_argument_filters(runtime, bundle):
    """chmod to exactly 0777 is refused (EQ); any mode with the world-write bit is refused
    (MASKED_EQ); other modes pass."""
    rules = []
    for name, idx in (("chmod", 1), ("fchmodat", 2)):
        rules.append({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
                      "args": [{"index": idx, "value": 0o777, "op": "SCMP_CMP_EQ"}]})
        rules.append({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM,
                      "args": [{"index": idx, "value": 0o002, "valueTwo": 0o002, "op": "SCMP_CMP_MASKED_EQ"}]})
    p = run(runtime, bundle, "touch /f; for m in 755 777 757 700 640; do chmod $m /f 2>/dev/null; echo $m=$?; done",
            allow_but(*rules))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["755=0", "777=1", "757=1", "700=0", "640=0"]


def test_same_argument_twice_means_either(runtime, bundle):
    """runc's rule: two conditions on one argument become two rules (an OR)."""
    rules = [{"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM,
              "args": [{"index": idx, "value": 0o700, "op": "SCMP_CMP_EQ"},
                       {"index": idx, "value": 0o600, "op": "SCMP_CMP_EQ"}]}
             for name, idx in (("chmod", 1), ("fchmodat", 2))]
    p = run(runtime, bundle, "touch /f; for m in 700 600 644; do chmod $m /f 2>/dev/null; echo $m=$?; done",
            allow_but(*rules))
    assert p.stdout.split() == ["700=1", "600=1", "644=0"], p.stderr


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL", "SCMP_ACT_TRAP"])
def test_killing_actions(runtime, bundle, action):
    # not uname: static busybox calls it at start-up, so the shell itself would die (with runc too)
    p = run(runtime, bundle, "(exec hostname killed); echo status=$?; hostname",
            allow_but({"names": ["sethostname"], "action": action}))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [f"status={128 + 31}", "pyrunc"]  # SIGSYS, hostname unchanged


def test_log_and_allow_actions_let_the_call_through(runtime, bundle):
    prof = allow_but({"names": ["uname"], "action": "SCMP_ACT_LOG"},
                     {"names": MKDIR, "action": "SCMP_ACT_ERRNO"}, flags=["SECCOMP_FILTER_FLAG_LOG"])
    p = run(runtime, bundle, "uname -s", prof)
    assert p.stdout.strip() == "Linux", p.stderr


def test_trace_action_without_tracer_fails_with_enosys(runtime, bundle):
    p = run(runtime, bundle, "mkdir /d; echo $?", allow_but({"names": MKDIR, "action": "SCMP_ACT_TRACE"}))
    assert p.stdout.strip() == "1" and "Function not implemented" in p.stderr


@pytest.mark.parametrize("flags", [["SECCOMP_FILTER_FLAG_TSYNC"], ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                                   ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]])
def test_flags(runtime, bundle, flags):
    p = run(runtime, bundle, "mkdir /d; echo $?", allow_but({"names": MKDIR, "action": "SCMP_ACT_ERRNO"}, flags=flags))
    assert p.stdout.strip() == "1", p.stderr


def test_spec_allow_leaves_speculation_mitigation_off(runtime, bundle):
    p = run(runtime, bundle, "grep Speculation_Store_Bypass /proc/self/status",
            allow_but({"names": MKDIR, "action": "SCMP_ACT_ERRNO"}, flags=["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]))
    assert "thread force mitigated" not in p.stdout, p.stdout


def test_bad_profile_is_a_clear_error(runtime, bundle):
    p = run(runtime, bundle, "true", allow_but({"names": MKDIR, "action": "SCMP_ACT_NOTIFY"}))
    assert p.returncode == 1 and "listenerPath" in p.stderr and "Traceback" not in p.stderr


# --- SCMP_ACT_NOTIFY -------------------------------------------------------------------------
_NOTIF_SIZE = 80  # struct seccomp_notif
_IOCTL_RECV = 0xC0000000 | _NOTIF_SIZE << 16 | ord("!") << 8 | 0
_IOCTL_SEND = 0xC0000000 | 24 << 16 | ord("!") << 8 | 1


class Agent(threading.Thread):
    """A seccomp agent: takes the fd, then makes every notified call "succeed" without running."""

    def __init__(self, path: str):
        super().__init__(daemon=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.server.settimeout(30)
        self.message: dict = {}
        self.answered: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn, _ = self.server.accept()
            with conn:
                conn.settimeout(30)
                data, fds, _, _ = socket.recv_fds(conn, 65536, 1)
            self.message = json.loads(data)
            fd = fds[0]
            while True:
                buf = bytearray(_NOTIF_SIZE)
                try:
                    fcntl.ioctl(fd, _IOCTL_RECV, buf)
                except OSError:
                    break  # the filter's processes are gone
                notif_id, pid, _flags, nr = struct.unpack_from("=QIIi", buf)
                self.answered.append(nr)
                fcntl.ioctl(fd, _IOCTL_SEND, bytearray(struct.pack("=QqiI", notif_id, 0, 0, 0)))
            os.close(fd)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.server.close()


@pytest.mark.parametrize("flags", [[], ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"]])
def test_notify_listener_receives_the_fd_and_answers(runtime, bundle, tmp_path, flags):
    path = str(tmp_path / "agent.sock")
    agent = Agent(path)
    agent.start()
    prof = allow_but({"names": MKDIR, "action": "SCMP_ACT_NOTIFY"}, listenerPath=path,
                     listenerMetadata="hello-agent", flags=flags)
    p = run(runtime, bundle, "mkdir /made && echo mkdir-ok; test -d /made && echo exists || echo absent", prof)
    agent.join(30)
    assert agent.error is None, agent.error
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["mkdir-ok", "absent"]  # the agent said yes but made nothing
    assert len(agent.answered) == 1
    m = agent.message
    assert m["fds"] == ["seccompFd"] and m["metadata"] == "hello-agent"
    assert m["state"]["id"].startswith("spec-test-") and m["state"]["pid"] == m["pid"] > 0
    assert m["state"]["bundle"] == str(bundle.path) and m["ociVersion"]


def test_missing_libseccomp_is_a_clear_error(monkeypatch):
    import cffi

    from pyrunc.errors import PyruncError
    from pyrunc.linux import seccomp

    def no_lib(self, name, *a):
        raise OSError(f"cannot load library {name}")
    monkeypatch.setattr(seccomp, "_lib", None)
    monkeypatch.setattr(cffi.FFI, "dlopen", no_lib)
    with pytest.raises(PyruncError, match="libseccomp"):
        seccomp.compile({"defaultAction": "SCMP_ACT_ALLOW"})


def test_filter_is_loaded_after_start_container_hooks(runtime, bundle):
    """With noNewPrivileges the filter goes in just before execve ("as late as possible"): a
    startContainer hook, which runs in the container before the user's program, is not bound by it."""
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/mkdir", "args": ["mkdir", "/hook-made"]}]}
    prof = allow_but({"names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS})
    p = run(runtime, bundle, "mkdir /ct-made; echo rc=$?", prof, nnp=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["rc=1"]
    assert (bundle.rootfs / "hook-made").is_dir(), "the hook ran under the container's filter"
    assert not (bundle.rootfs / "ct-made").exists()
