"""`exec` (runc's): a new process in a running (or created) container, in all of the init's
namespaces and its cgroup, with the config's process settings (caps, seccomp, rlimits...)
overridden by flags or a whole process.json; exit codes, --detach/--pid-file, ttys,
execCPUAffinity, --cgroup sub-cgroups, and clean one-line failures."""
from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path

import pytest

from conftest import read_pty_until


def started(runtime, bundle, *args: str) -> str:
    """A detached container running `args` (default: sleep 30)."""
    bundle.set_args(*(args or ("sleep", "30")))
    cid = runtime.new_id()
    p = runtime("run", "-d", "--bundle", str(bundle.path), cid)
    assert p.returncode == 0, p.stderr
    return cid


def ex(runtime, cid: str, *argv: str, flags: tuple = (), **kw):
    return runtime("exec", *flags, cid, *argv, **kw)


def status_field(pid: int | str, name: str, procfs: str = "/proc") -> str:
    for line in Path(f"{procfs}/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def one_line_failure(p) -> None:
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.startswith("pyrunc: ") and p.stderr.count("\n") == 1, p.stderr
    assert "Traceback" not in p.stderr


def cgroup_procs(runtime, cid: str) -> set[int]:
    """Every pid in the container's cgroup (the pids hierarchy, whatever the host layout)."""
    st = json.loads((runtime.root / cid / "state.json").read_text())
    pids: set[int] = set()
    for d in st["cgroup"]["paths"].values():
        try:
            pids |= {int(x) for x in Path(d, "cgroup.procs").read_text().split()}
        except OSError:
            pass
    return pids


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
        if stat and stat[stat.rindex(")") + 2] == "Z":
            return
        assert time.monotonic() < deadline, f"process {pid} is still there"
        time.sleep(0.02)


# ---- namespaces and cgroup --------------------------------------------------------------------

def test_exec_sees_the_containers_pid_uts_and_mount_namespaces(runtime, bundle):
    bundle.config["hostname"] = "exec-host"
    cid = started(runtime, bundle)
    (bundle.rootfs / "marker").write_text("in-rootfs\n")
    p = ex(runtime, cid, "sh", "-c", "echo pid=$$; tr '\\0' ' ' < /proc/1/cmdline; echo; hostname; "
                                     "cat /marker; ls /proc | grep -c '^[0-9]'")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    # the init is pid 1; we are a small pid in the same namespace, not the host's
    assert lines[0].startswith("pid=") and 1 < int(lines[0][4:]) < 100
    assert lines[1].strip() == "sleep 30"
    assert lines[2] == "exec-host"
    assert lines[3] == "in-rootfs"
    assert int(lines[4]) <= 4  # sleep, sh, ls, grep: not the host's processes
    init = runtime.state(cid)["pid"]
    for name in ("mnt", "uts", "ipc", "net", "pid", "cgroup"):
        # our own exec'd process: its namespaces are the init's
        q = ex(runtime, cid, "readlink", f"/proc/self/ns/{name}")
        assert q.stdout.strip() == os.readlink(f"/proc/{init}/ns/{name}"), name


def test_exec_joins_the_containers_cgroup(runtime, bundle, tmp_path):
    cid = started(runtime, bundle)
    p = ex(runtime, cid, "sh", "-c", "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup")
    assert p.returncode == 0, p.stderr
    mine, init = p.stdout.split("--\n")
    assert mine.strip() == init.strip()
    # and from the host: every hierarchy, memory included, is the init's
    pidfile = tmp_path / "exec.pid"
    q = ex(runtime, cid, "sleep", "10", flags=("-d", "--pid-file", str(pidfile)))
    assert q.returncode == 0, q.stderr
    pid = int(pidfile.read_text())
    host_init = runtime.state(cid)["pid"]
    assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{host_init}/cgroup").read_text()
    assert pid in cgroup_procs(runtime, cid)


def test_exec_into_a_created_container(runtime, bundle):
    bundle.set_args("sh", "-c", "echo started")
    cid = runtime.new_id()
    assert runtime("create", "--bundle", str(bundle.path), cid).returncode == 0
    p = ex(runtime, cid, "sh", "-c", "echo hello from $$")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("hello from ")
    assert runtime.state(cid)["status"] == "created"


# ---- the process ------------------------------------------------------------------------------

def test_env_cwd_user_and_additional_gids_flags(runtime, bundle):
    bundle.config["process"]["env"].append("FROM_CONFIG=1")
    cid = started(runtime, bundle)
    p = ex(runtime, cid, "sh", "-c", "id -u; id -g; id -G; pwd; echo $FROM_CONFIG $FOO $HOME",
           flags=("--cwd", "/tmp", "-e", "FOO=bar", "-u", "1000:1001", "-g", "5", "-g", "6"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:5] == ["1000", "1001", "1001 5 6", "/tmp", "1 bar /"]


def test_defaults_come_from_the_config_process(runtime, bundle):
    bundle.config["process"]["cwd"] = "/etc"
    bundle.config["process"]["user"] = {"uid": 65534, "gid": 65534}
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 777, "hard": 888}]
    cid = started(runtime, bundle)
    p = ex(runtime, cid, "sh", "-c", "id -u; pwd; ulimit -n; ulimit -Hn; echo $HOME")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["65534", "/etc", "777", "888", "/"]


def test_process_json(runtime, bundle, tmp_path):
    cid = started(runtime, bundle)
    proc = {"args": ["sh", "-c", "echo $ONLY; id -u; pwd"], "cwd": "/bin", "env": ["ONLY=json"],
            "user": {"uid": 123, "gid": 456}}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(proc))
    p = runtime("exec", "-p", str(path), cid)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["json", "123", "/bin"]


def test_bad_process_json_is_one_line(runtime, bundle, tmp_path):
    cid = started(runtime, bundle)
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["true"], "cwd": "relative"}))
    one_line_failure(runtime("exec", "-p", str(path), cid))
    path.write_text("{not json")
    one_line_failure(runtime("exec", "-p", str(path), cid))


def test_exit_code_passthrough(runtime, bundle):
    cid = started(runtime, bundle)
    assert ex(runtime, cid, "sh", "-c", "exit 7").returncode == 7
    assert ex(runtime, cid, "sh", "-c", "kill -TERM $$").returncode == 128 + 15
    assert ex(runtime, cid, "true").returncode == 0


def test_signals_are_forwarded_in_the_foreground(runtime, bundle):
    import signal
    import subprocess
    cid = started(runtime, bundle)
    (bundle.rootfs / "trapped").unlink(missing_ok=True)
    proc = subprocess.Popen(runtime.cmd("exec", cid, "sh", "-c",
                                        "trap 'exit 42' USR1; touch /trapped; while true; do sleep 0.05; done"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while not (bundle.rootfs / "trapped").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
        time.sleep(0.01)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=10) == 42


def test_detach_and_pid_file(runtime, bundle, tmp_path):
    cid = started(runtime, bundle)
    pidfile = tmp_path / "p.pid"
    p = ex(runtime, cid, "sh", "-c", "echo $$ > /detached; sleep 30", flags=("-d", "--pid-file", str(pidfile)))
    assert p.returncode == 0, p.stderr
    pid = int(pidfile.read_text())
    init = runtime.state(cid)["pid"]
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    deadline = time.monotonic() + 10
    while not (bundle.rootfs / "detached").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    inner = int((bundle.rootfs / "detached").read_text() or 0) if (bundle.rootfs / "detached").read_text().strip() else None
    # the pid file holds the host's pid; inside it has the container's numbering
    ns_pid = status_field(pid, "NSpid").split()
    assert ns_pid[0] == str(pid) and (inner is None or ns_pid[-1] == str(inner))
    assert pid in cgroup_procs(runtime, cid)


def test_tty_with_console_socket(runtime, bundle, tmp_path):
    cid = started(runtime, bundle)
    sock_path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    p = ex(runtime, cid, "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-tty; sleep 0.5",
           flags=("-t", "-d", "--console-socket", sock_path))
    assert p.returncode == 0, p.stderr
    conn, _ = server.accept()
    msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    conn.close()
    server.close()
    assert len(fds) == 1 and msg.startswith(b"/dev/pts/")
    master = fds[0]
    out = read_pty_until(master, b"stdin-is-tty")
    os.close(master)
    assert b"/dev/pts/" in out and b"stdin-is-tty" in out


def test_tty_in_the_foreground_is_proxied(runtime, bundle):
    cid = started(runtime, bundle)
    p = ex(runtime, cid, "sh", "-c", "tty; [ -t 1 ] && echo out-is-tty; exit 3", flags=("-t",))
    assert p.returncode == 3, p.stderr
    assert "/dev/pts/" in p.stdout and "out-is-tty" in p.stdout


def test_tty_flag_checks(runtime, bundle, tmp_path):
    cid = started(runtime, bundle)
    one_line_failure(ex(runtime, cid, "true", flags=("-t", "-d")))
    one_line_failure(ex(runtime, cid, "true", flags=("--console-socket", str(tmp_path / "s"))))


def test_preserve_fds(runtime, bundle):
    cid = started(runtime, bundle)
    r, w = os.pipe()
    os.write(w, b"through-fd-3\n")
    os.close(w)

    def at_fd3():
        os.dup2(r, 3)
    p = ex(runtime, cid, "sh", "-c", "cat <&3; for f in /proc/$$/fd/*; do readlink $f; done; true",
           flags=("--preserve-fds", "1"), preexec_fn=at_fd3, pass_fds=(3,))
    os.close(r)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "through-fd-3"
    # stdio and the preserved pipe: none of pyrunc's sockets or namespace fds reached the process
    assert not [l for l in lines[1:] if l.startswith(("socket:", "mnt:", "pid:", "net:", "user:"))], lines


# ---- security settings ------------------------------------------------------------------------

def test_capabilities_match_the_config(runtime, bundle):
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    bundle.config["process"]["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    cid = started(runtime, bundle)
    p = ex(runtime, cid, "sh", "-c", "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; echo --; "
                                     "grep -E '^Cap(Eff|Prm|Bnd)' /proc/1/status")
    assert p.returncode == 0, p.stderr
    mine, init = p.stdout.split("--\n")
    assert mine == init
    assert "CapEff:\t0000000000000421" in mine
    q = ex(runtime, cid, "grep", "CapEff", "/proc/self/status", flags=("--cap", "CAP_SYS_ADMIN"))
    assert q.stdout.split() == ["CapEff:", f"{0x421 | 1 << 21:016x}"]


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_profile_applies_to_exec(runtime, bundle, nnp):
    bundle.config["process"]["noNewPrivileges"] = nnp
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS}]}
    cid = started(runtime, bundle)
    p = ex(runtime, cid, "sh", "-c", "mkdir /d; echo rc=$?; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
    assert p.returncode == 0, p.stderr
    assert "Read-only file system" in p.stderr
    assert p.stdout.split() == ["rc=1", "NoNewPrivs:", "1" if nnp else "0", "Seccomp:", "2"]
    assert not (bundle.rootfs / "d").exists()


def test_no_new_privs_flag(runtime, bundle):
    cid = started(runtime, bundle)
    p = ex(runtime, cid, "grep", "NoNewPrivs", "/proc/self/status", flags=("--no-new-privs",))
    assert p.stdout.split() == ["NoNewPrivs:", "1"]


# ---- execCPUAffinity --------------------------------------------------------------------------

@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs CPUs 0 and 1")
@pytest.mark.parametrize("affinity,want", [
    ({"final": "1"}, "1"),
    ({"initial": "0", "final": "1"}, "1"),
    ({"initial": "1", "final": "0"}, "0"),
    ({"initial": "1"}, None),  # after the cgroup move: every CPU of the container's cpuset
    ({}, None),
])
def test_exec_cpu_affinity(runtime, bundle, tmp_path, affinity, want):
    cid = started(runtime, bundle)
    path = tmp_path / "process.json"
    proc = {"args": ["grep", "Cpus_allowed_list", "/proc/self/status"], "cwd": "/",
            "env": ["PATH=/bin"], "execCPUAffinity": affinity}
    path.write_text(json.dumps(proc))
    p = runtime("exec", "-p", str(path), cid)
    assert p.returncode == 0, p.stderr
    got = p.stdout.split()[1]
    if want is None:
        assert got == status_field(runtime.state(cid)["pid"], "Cpus_allowed_list")
    else:
        assert got == want


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs CPUs 0 and 1")
def test_callers_affinity_does_not_leak_into_the_container(runtime, bundle):
    """Started from a process pinned to CPU 1 (systemd's CPUAffinity=, taskset), the exec'd
    process still gets the container's CPUs, on kernels that keep a requested affinity too."""
    cid = started(runtime, bundle)
    p = runtime("exec", cid, "grep", "Cpus_allowed_list", "/proc/self/status",
                preexec_fn=lambda: os.sched_setaffinity(0, {1}))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[1] == status_field(runtime.state(cid)["pid"], "Cpus_allowed_list")


def test_bad_exec_cpu_affinity_is_one_line(runtime, bundle, tmp_path):
    cid = started(runtime, bundle)
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["true"], "cwd": "/", "execCPUAffinity": {"final": "4096"}}))
    before = cgroup_procs(runtime, cid)
    one_line_failure(runtime("exec", "-p", str(path), cid))
    assert cgroup_procs(runtime, cid) == before


# ---- cgroups ----------------------------------------------------------------------------------

def test_exec_into_a_sub_cgroup(runtime, bundle, tmp_path):
    cid = started(runtime, bundle)
    st = json.loads((runtime.root / cid / "state.json").read_text())
    pids_dir = next((d for k, d in st["cgroup"]["paths"].items() if "pids" in k.split(",")), None)
    if pids_dir is None:
        pytest.skip("no v1 pids hierarchy")
    os.mkdir(os.path.join(pids_dir, "sub"))
    pidfile = tmp_path / "p.pid"
    p = ex(runtime, cid, "sleep", "10", flags=("-d", "--pid-file", str(pidfile), "--cgroup", "pids:sub"))
    assert p.returncode == 0, p.stderr
    pid = int(pidfile.read_text())
    procs = Path(pids_dir, "sub", "cgroup.procs").read_text().split()
    assert str(pid) in procs
    one_line_failure(ex(runtime, cid, "true", flags=("--cgroup", "pids:missing")))
    one_line_failure(ex(runtime, cid, "true", flags=("--cgroup", "pids:../../escape")))


# ---- refusals ---------------------------------------------------------------------------------

def test_exec_into_a_stopped_container_fails(runtime, bundle):
    cid = started(runtime, bundle, "true")
    deadline = time.monotonic() + 10
    while runtime.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    p = ex(runtime, cid, "true")
    one_line_failure(p)
    assert "stopped" in p.stderr


def test_exec_into_a_missing_container_fails(runtime):
    one_line_failure(runtime("exec", "no-such-container", "true"))


def test_exec_without_a_command_fails(runtime, bundle):
    cid = started(runtime, bundle)
    one_line_failure(runtime("exec", cid))


def test_bad_command_is_one_line_and_leaves_nothing(runtime, bundle):
    cid = started(runtime, bundle)
    before = cgroup_procs(runtime, cid)
    p = ex(runtime, cid, "no-such-program")
    one_line_failure(p)
    assert "no-such-program" in p.stderr
    assert cgroup_procs(runtime, cid) == before
    p = ex(runtime, cid, "true", flags=("--cwd", "/does/not/exist"))
    one_line_failure(p)
    assert cgroup_procs(runtime, cid) == before


def test_paused_container_needs_ignore_paused(runtime, bundle, tmp_path):
    cid = started(runtime, bundle)
    assert runtime("pause", cid).returncode == 0
    try:
        p = ex(runtime, cid, "true")
        one_line_failure(p)
        assert "paused" in p.stderr
        # with --ignore-paused it joins the frozen cgroup and runs once resumed
        import subprocess
        proc = subprocess.Popen(runtime.cmd("exec", "--ignore-paused", cid, "sh", "-c", "echo ran"),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        assert proc.poll() is None
    finally:
        assert runtime("resume", cid).returncode == 0
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert out == b"ran\n"


def test_userns_container(runtime, bundle):
    from test_userns import userns_bundle
    userns_bundle(bundle)
    cid = started(runtime, bundle)
    p = ex(runtime, cid, "sh", "-c", "cat /proc/self/uid_map; id -u; touch /by-exec")
    assert p.returncode == 0, p.stderr
    lines = [line.split() for line in p.stdout.splitlines()]
    assert lines[0] == ["0", "200000", "65536"] and lines[1] == ["0"]
    st = (bundle.rootfs / "by-exec").stat()
    assert (st.st_uid, st.st_gid) == (200000, 200000)


def test_api_exec(runtime, bundle):
    from pyrunc.api import Container
    cid = started(runtime, bundle)
    c = Container(cid, root=str(runtime.root))
    before = os.readlink("/proc/self/ns/pid_for_children")
    assert c.exec(["sh", "-c", "exit 5"]) == 5
    assert os.readlink("/proc/self/ns/pid_for_children") == before  # the caller is left as it was


def test_time_namespace_is_joined(runtime, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 10_000_000, "nanosecs": 0}}
    cid = started(runtime, bundle)
    p = ex(runtime, cid, "sh", "-c", "cut -d' ' -f1 /proc/uptime; readlink /proc/self/ns/time")
    assert p.returncode == 0, p.stderr
    uptime, ns = p.stdout.split()
    assert float(uptime) > 10_000_000
    assert ns == os.readlink(f"/proc/{runtime.state(cid)['pid']}/ns/time")
