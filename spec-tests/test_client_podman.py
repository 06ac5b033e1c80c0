"""podman (Debian's 4.x, with conmon) driving pyrunc as its OCI runtime, offline.

What a podman user does every day: run in the foreground and detached, exec (plain, -t, -i),
stop/kill, pause/unpause, top/ps, rm -f, run -t through conmon's console socket, exit codes and
the error podman shows when the command cannot run. Where behaviour is checked against runc, runc
runs through the same podman with the same configuration.

The image is the busybox rootfs imported with `podman import`; see clients/podman_env.py for why
each piece of configuration is there.
"""
from __future__ import annotations

import difflib
import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import tempfile
import termios
import time
from pathlib import Path

import pytest

from clients.podman_env import IMAGE, STATE_ROOT, Podman, ensure_installed
from conftest import PYRUNC

RUNC = shutil.which("runc")


@pytest.fixture(scope="module")
def podman_env(rootfs_cache):
    reason = ensure_installed()
    if reason:
        pytest.skip(reason)
    # Not under tmp_path: podman refuses a runroot longer than 50 characters (socket paths);
    # no "pyrunc" in the name, which the runtime fixture's leak check looks for in mounts.
    pm = Podman(Path(tempfile.mkdtemp(prefix="pm-client-", dir="/tmp")), PYRUNC)
    try:
        pm.import_rootfs(rootfs_cache)
        yield pm
    finally:
        problems = pm.destroy()
        assert not problems, f"podman tests left behind: {problems}"


@pytest.fixture
def podman(podman_env):
    """The module's podman; after each test no container, state dir, conmon or mount of it is left."""
    yield podman_env
    podman_env.remove_containers()
    deadline = time.monotonic() + 10
    while podman_env.leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)  # conmon's exit command runs `podman container cleanup` asynchronously
    assert not podman_env.leftovers(), f"test left behind: {podman_env.leftovers()}"


def _detached(podman: Podman, *cmd: str, name: str | None = None) -> str:
    args = ["-d"] + (["--name", name] if name else []) + [IMAGE, *cmd]
    p = podman.run(*args)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


LOOP = ["sh", "-c", 'trap "exit 7" TERM; trap "echo got-usr1" USR1; echo started; '
        "while :; do sleep 0.1; done"]


def test_run_foreground_output_cmdline_hostname(podman):
    p = podman.run("--rm", IMAGE, "sh", "-c", "echo hi; cat /proc/1/cmdline; echo; hostname")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "hi"
    assert lines[1] == "sh\0-c\0echo hi; cat /proc/1/cmdline; echo; hostname\0"
    assert len(lines[2]) == 12 and all(c in "0123456789abcdef" for c in lines[2])  # the short ID
    assert p.stderr == ""


def test_exit_code_propagates(podman):
    assert podman.run("--rm", IMAGE, "sh", "-c", "exit 3").returncode == 3
    p = podman.run("--name", "exited3", IMAGE, "sh", "-c", "exit 3")
    assert p.returncode == 3
    assert podman.ok("inspect", "exited3", "--format", "{{.State.ExitCode}} {{.State.Status}}"
                     ).split() == ["3", "exited"]


@pytest.mark.parametrize("cmd,code,words", [
    ("/nonexistent", 127, ['exec: "/nonexistent"', "no such file or directory"]),
    ("nosuchcommand", 127, ['exec: "nosuchcommand"', "executable file not found in $PATH"]),
])
def test_failing_command_error(podman, cmd, code, words):
    p = podman.run("--rm", IMAGE, cmd)
    assert p.returncode == code, (p.stdout, p.stderr)
    assert all(w in p.stderr for w in words), p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert p.stdout == ""


@pytest.mark.parametrize("cmd", ["/etc/passwd", "/etc"])
def test_not_executable_fails_at_create_like_runc(podman, cmd):
    """runc checks the program is executable before create returns, so podman says "permission
    denied" and exits 126; starting it and failing in the container gives 127 and no error."""
    p = podman.run("--rm", IMAGE, cmd)
    assert p.returncode == 126, (p.returncode, p.stdout, p.stderr)
    assert f'exec: "{cmd}": permission denied' in p.stderr, p.stderr
    _detached(podman, "sleep", "1000", name="d-noexec")
    p = podman("exec", "d-noexec", cmd)
    assert p.returncode == 126, (p.returncode, p.stdout, p.stderr)
    assert f'exec: "{cmd}": permission denied' in p.stderr, p.stderr


def test_pyrunc_create_refuses_what_it_cannot_exec(runtime, bundle):
    """The same check without podman: create fails, so nothing is left to start."""
    bundle.set_args("/etc/passwd")
    cid = runtime.new_id("noexec")
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert 'exec: "/etc/passwd": permission denied' in p.stderr, p.stderr
    assert runtime("state", cid).returncode != 0


def test_detached_exec_plain_tty_stdin(podman):
    cid = _detached(podman, *LOOP, name="d-exec")
    p = podman("exec", "d-exec", "sh", "-c", "echo exec-out; id -u; cat /proc/1/cmdline")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[:2] == ["exec-out", "0"]
    assert p.stdout.splitlines()[2].startswith("sh\0-c\0trap")
    assert podman("exec", "d-exec", "sh", "-c", "exit 5").returncode == 5
    p = podman("exec", "-u", "1000:1000", "-w", "/tmp", "-e", "X=y", "d-exec",
               "sh", "-c", "id -u; id -g; pwd; echo $X")
    assert p.stdout.split() == ["1000", "1000", "/tmp", "y"], p.stderr
    p = podman("exec", "-t", "d-exec", "sh", "-c", "tty; echo hi")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("/dev/pts/") and p.stdout.endswith("hi\r\n"), repr(p.stdout)
    p = podman("exec", "-i", "d-exec", "cat", input="from stdin\n")
    assert p.stdout == "from stdin\n", p.stderr
    p = podman("exec", "d-exec", "/nope")
    assert p.returncode == 127 and 'exec: "/nope"' in p.stderr, p.stderr
    podman.ok("exec", "-d", "d-exec", "sh", "-c", "echo detached > /tmp/d")
    deadline = time.monotonic() + 5
    while podman("exec", "d-exec", "cat", "/tmp/d").stdout != "detached\n":
        assert time.monotonic() < deadline, "exec -d never ran"
        time.sleep(0.1)
    assert cid.startswith(podman.ok("inspect", "d-exec", "--format", "{{.Id}}").strip())


def test_stop_kill_signal_start(podman):
    _detached(podman, *LOOP, name="d-stop")
    podman.ok("stop", "-t", "5", "d-stop")
    assert podman.ok("inspect", "d-stop", "--format", "{{.State.ExitCode}} {{.State.Status}}"
                     ).split() == ["7", "exited"]  # SIGTERM reached the trap
    podman.ok("start", "d-stop")
    podman.ok("kill", "-s", "USR1", "d-stop")
    deadline = time.monotonic() + 5
    while "got-usr1" not in podman.ok("logs", "d-stop"):
        assert time.monotonic() < deadline, "USR1 never reached the container"
        time.sleep(0.1)
    podman.ok("kill", "d-stop")  # SIGKILL by default
    podman.ok("wait", "d-stop")
    assert podman.ok("inspect", "d-stop", "--format", "{{.State.ExitCode}}").strip() == "137"


def test_pause_unpause(podman):
    _detached(podman, "sleep", "1000", name="d-pause")
    podman.ok("pause", "d-pause")
    assert podman.ok("inspect", "d-pause", "--format", "{{.State.Status}}").strip() == "paused"
    pid = int(podman.ok("inspect", "d-pause", "--format", "{{.State.Pid}}"))
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert state in ("D", "S", "T", "t")  # frozen tasks sleep in the freezer
    assert podman("exec", "d-pause", "true").returncode != 0  # podman refuses, as with runc
    podman.ok("unpause", "d-pause")
    assert podman.ok("inspect", "d-pause", "--format", "{{.State.Status}}").strip() == "running"
    assert podman.ok("exec", "d-pause", "echo", "thawed") == "thawed\n"


def test_top_and_ps(podman):
    cid = _detached(podman, "sleep", "1000", name="d-top")
    podman.ok("exec", "d-top", "sh", "-c", "sleep 1000 & true")
    out = podman.ok("top", "d-top", "pid", "comm", "args")
    rows = [line.strip().split(None, 2) for line in out.splitlines()[1:]]
    assert ["1", "sleep", "sleep 1000"] in rows, out
    assert sum(r[1] == "sleep" for r in rows) == 2, out
    ps = podman.ok("ps", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}}")
    assert f"{cid} d-top Up" in ps, ps
    assert podman.ok("ps", "-a", "-q", "--no-trunc").split() == [cid]


def test_rm_force_running(podman):
    cid = _detached(podman, "sleep", "1000", name="d-rm")
    pid = int(podman.ok("inspect", "d-rm", "--format", "{{.State.Pid}}"))
    assert (STATE_ROOT / cid).is_dir()  # pyrunc really is the runtime
    podman.ok("rm", "-f", "-t", "0", "d-rm")
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert not (STATE_ROOT / cid).exists()
    assert podman.ok("ps", "-a", "-q") == ""


def test_run_tty_through_console_socket(podman):
    p = podman.run("--rm", "-t", IMAGE, "sh", "-c", "tty; echo term=$TERM; exit 4")
    assert p.returncode == 4, p.stderr
    assert p.stdout == "/dev/pts/0\r\nterm=xterm\r\n", repr(p.stdout)


def test_run_it_on_a_terminal_gets_its_size(podman):
    """podman on a real terminal: conmon resizes the container's pty to podman's window."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        podman.argv("run", "--rm", "-it", "--cgroup-parent", podman.cgroup_parent, IMAGE,
                    "sh", "-c", "stty size; tty; exit 6"),
        env=podman.env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    out = b""
    try:
        while select.select([master], [], [], 30)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every writer of the pty is gone
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=30) == 6, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert out == b"30 100\r\n/dev/pts/0\r\n", out


def test_user_namespace_uidmap(podman):
    p = podman.run("--rm", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536", IMAGE,
                   "sh", "-c", "id -u; cat /proc/self/uid_map; touch /x && stat -c %u /x")
    assert p.returncode == 0, p.stderr
    out = p.stdout.split()
    assert out == ["0", "0", "100000", "65536", "0"], out


def test_run_interactive_stdin(podman):
    p = podman.run("--rm", "-i", IMAGE, "sh", "-c", "cat; echo done", input="piped\n")
    assert (p.returncode, p.stdout) == (0, "piped\ndone\n"), p.stderr


def test_resources_and_user_options(podman):
    p = podman.run("--rm", "--memory", "64m", "--pids-limit", "50", "--read-only", "--user", "1000",
                   "--cap-drop", "all", "--hostname", "h1", "-e", "FOO=bar", "-w", "/tmp", IMAGE,
                   "sh", "-c", "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat "
                   "/sys/fs/cgroup/pids.max; id -u; hostname; echo $FOO; pwd; "
                   "grep CapEff /proc/self/status; touch /x 2>&1 || true")
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[:5] == ["50", "1000", "h1", "bar", "/tmp"], out
    assert out[5].split() == ["CapEff:", "0000000000000000"], out
    assert "Read-only file system" in out[6], out


PROBE = ("grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status; cat /proc/self/oom_score_adj; "
         "umask; ulimit -a; id; ls -ln /dev | sed 's/ [A-Z][a-z][a-z] .* [0-9:]* / /'; env | sort; "
         "awk '{for (i = 7; $i != \"-\"; i++); print $5, $6, $(i + 1)}' /proc/self/mountinfo"
         " | grep -v '^/sys/fs/cgroup' | sort")  # podman orders mounts at random


@pytest.mark.skipif(not RUNC, reason="runc is not installed")
def test_same_container_as_runc(podman):
    """The process and filesystem podman's config produces are runc's. /sys/fs/cgroup is left out:
    pyrunc also mounts the hybrid host's v2 hierarchy and keeps the tmpfs under it read-only, where
    runc 1.1.5 leaves that tmpfs writable and drops the v2 hierarchy."""
    outs = []
    for rt in (RUNC, PYRUNC):
        p = podman.run("--rm", "--hostname", "same", "-v", f"{podman.base}/vol:/data", IMAGE,
                       "sh", "-c", PROBE, runtime=rt)
        assert p.returncode == 0, (rt, p.stderr)
        outs.append(p.stdout.replace(f"{podman.base}", "BASE"))
    if outs[0] != outs[1]:
        diff = "\n".join(difflib.unified_diff(outs[0].splitlines(), outs[1].splitlines(),
                                              "runc", "pyrunc", lineterm=""))
        pytest.fail(f"podman containers differ between runc and pyrunc:\n{diff}")
