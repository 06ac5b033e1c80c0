"""pyrunc under containerd: a private daemon drives pyrunc through `ctr` and the runc v2 shim.

The shim speaks to its runtime through go-runc: `create --pid-file` (read back as the init pid),
`--log FILE --log-format json` (error lines surfaced to the user), `--console-socket` (the pty
master for `-t`), `exec --process FILE --detach --pid-file`, `ps --format json`, `pause`, `resume`,
`kill`, `delete [--force]`. Any mismatch with runc breaks one of the scenarios below. The daemon,
its content store, snapshots (native), runc root, fifos and sockets all live under one private
tmp dir, checked for leftover mounts, cgroups, shims and runtime state after the module.

Not exercised here: `events --stats`, since on this cgroup-v1/hybrid host the shim reads the
container's cgroup files itself for `ctr task metrics` (it calls runc only on pure v2 hosts).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "clients"))
from conftest import PYRUNC, _alive, _cgroup_dirs_named  # noqa: E402
from containerd_env import (IMAGE, NAMESPACE, Containerd, build_oci_archive,  # noqa: E402
                            ensure_installed, run_in_pty)

RUNC = shutil.which("runc") or "/usr/sbin/runc"
# The runtime under test; point it at runc to see what the scenarios expect of a runc-compatible one.
RUNTIME = os.environ.get("PYRUNC_CTR_RUNTIME", PYRUNC)


class Ctr:
    """The daemon plus the runtime flags `ctr run` stores in the container's runtime options."""

    def __init__(self, daemon: Containerd):
        self.d = daemon
        self.cgroups: list[str] = []

    def new(self, prefix: str = "c") -> str:
        return f"ctr-{prefix}-{uuid.uuid4().hex[:8]}"

    def run_args(self, cid: str, binary: str = RUNTIME) -> list[str]:
        self.cgroups.append(cid)
        return ["run", "--snapshotter", "native", "--runc-binary", binary, "--runc-root", str(self.d.runc_root),
                "--cgroup", f"/{cid}", "--fifo-dir", str(self.d.fifo_dir)]

    def exec_args(self, cid: str, exec_id: str) -> list[str]:
        """ctr leaves a detached exec's fifos behind: keep them under our tmp dir."""
        return ["task", "exec", "--fifo-dir", str(self.d.fifo_dir), "--exec-id", exec_id]

    def tasks(self) -> dict[str, tuple[int, str]]:
        out = self.d.ctr("task", "ls").stdout.splitlines()[1:]
        return {f[0]: (int(f[1]), f[2]) for f in (line.split() for line in out) if len(f) == 3}

    def wait_status(self, cid: str, status: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.tasks().get(cid, (0, ""))[1] == status:
                return
            time.sleep(0.1)
        raise AssertionError(f"task {cid} never became {status}: {self.tasks()}")

    def remove_if_left(self, cid: str) -> None:
        """For `finally:`: a scenario that got through has already removed its container."""
        if cid in self.d.ctr("container", "ls", "-q", check=False).stdout.split():
            self.remove(cid)

    def remove(self, cid: str) -> None:
        """Best effort, for cleanup after a failure: kill, delete the task, remove the container."""
        self.d.ctr("task", "kill", "-a", "-s", "KILL", cid, check=False)
        for _ in range(50):  # a plain delete needs the task stopped; -f would kill it (again)
            if self.d.ctr("task", "delete", cid, check=False).returncode == 0 or cid not in self.tasks():
                break
            time.sleep(0.1)
        else:
            self.d.ctr("task", "delete", "-f", cid, check=False)
        self.d.ctr("container", "rm", cid, check=False)


@pytest.fixture(scope="module")
def ctr(rootfs_cache):
    why = ensure_installed()
    if why:
        pytest.skip(why)
    # Not under tmp_path: pytest keeps /tmp/pytest-of-root at 0700, and a user-namespaced container's
    # root (uid 100000) must traverse down to its rootfs. Short, too: sockaddr_un holds 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="ctrd-spec-"))
    base.chmod(0o711)
    daemon = Containerd(base / "d")
    archive = build_oci_archive(Path(rootfs_cache), base / "busybox-oci.tar")
    client = Ctr(daemon)
    try:
        daemon.start(runc_on_path=RUNTIME)
        daemon.ctr("images", "import", "--snapshotter", "native", str(archive), timeout=120)
        yield client
    finally:
        leftovers = _teardown(client)
        shutil.rmtree(base, ignore_errors=True)
    assert not leftovers, f"containerd test left behind: {leftovers}"


def _teardown(client: Ctr) -> list[str]:
    daemon = client.d
    leftovers: list[str] = []
    try:
        if daemon.proc and daemon.proc.poll() is None:
            names = daemon.ctr("container", "ls", "-q", check=False).stdout.split()
            leftovers += [f"container {n}" for n in names]
            for n in names:
                client.remove(n)
            daemon.ctr("images", "rm", IMAGE, check=False)
    except subprocess.TimeoutExpired as e:
        leftovers.append(f"a hung ctr: {e}")
    finally:
        daemon.stop()
    leftovers += [f"mount {m}" for m in daemon.mounts_under_base()]
    daemon.unmount_all()
    ns_root = daemon.runc_root / NAMESPACE
    if ns_root.exists():
        leftovers += [f"runtime state {p}" for p in ns_root.iterdir()]
    for cid in client.cgroups:
        leftovers += [f"cgroup {cg}" for cg in _cgroup_dirs_named(cid)]
    return leftovers


def test_run_to_completion_like_runc(ctr):
    """Output, stderr and exit status reach ctr exactly as with runc."""
    script = 'echo "hello from pid $$"; echo oops >&2; exit 3'
    results = {}
    for name, binary in (("pyrunc", RUNTIME), ("runc", RUNC)):
        cid = ctr.new(name)
        p = ctr.d.ctr(*ctr.run_args(cid, binary), "--rm", IMAGE, cid, "sh", "-c", script, check=False)
        results[name] = (p.returncode, p.stdout.replace(cid, "ID"), p.stderr)
        assert cid not in ctr.tasks()
    assert results["pyrunc"][0] == 3, results
    assert results["pyrunc"][1] == "hello from pid 1\n", results
    assert "oops" in results["pyrunc"][2]
    assert results["pyrunc"][:2] == results["runc"][:2]


# ctr's spec options, each turned into config.json by containerd: pyrunc must make of them what runc makes.
RUN_OPTIONS = {
    "privileged": (["--privileged"], "grep Cap /proc/self/status; ls /dev | wc -l"),
    "read-only": (["--read-only"], "touch /x; echo $?; touch /tmp/x; echo $?"),
    "seccomp-env-cwd": (["--seccomp", "--env", "FOO=bar", "--cwd", "/tmp", "--allow-new-privs"],
                        "echo $FOO; pwd; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"),
    "bind-mount-ro": (["--mount", "type=bind,src=@SRC@,dst=/mnt,options=rbind:ro"],
                      "ls /mnt; touch /mnt/y; echo $?; grep ' /mnt ' /proc/self/mountinfo | grep -c ' ro,'"),
    "net-host": (["--net-host"], "ls /sys/class/net | grep -c lo; hostname | grep -c ."),
}


@pytest.mark.parametrize("case", sorted(RUN_OPTIONS))
def test_run_options_like_runc(ctr, case, tmp_path):
    flags, script = RUN_OPTIONS[case]
    (tmp_path / "shared-file").write_text("x")
    flags = [f.replace("@SRC@", str(tmp_path)) for f in flags]
    results = {}
    for name, binary in (("pyrunc", RUNTIME), ("runc", RUNC)):
        cid = ctr.new(name)
        p = ctr.d.ctr(*ctr.run_args(cid, binary), "--rm", *flags, IMAGE, cid, "sh", "-c", script,
                      check=False)
        results[name] = (p.returncode, p.stdout.replace(cid, "ID"))
        assert cid not in ctr.tasks(), p.stderr
    assert results["runc"][0] == 0, (results, p.stderr)  # the scenario itself must make sense
    assert results["pyrunc"] == results["runc"]


def test_user_namespace_and_no_pivot(ctr):
    """--uidmap (a remapped snapshot, uid/gid maps) and --no-pivot; ctr drops --runc-binary for these,
    so the shim runs the `runc` on the daemon's PATH, which is pyrunc (see write_runc_on_path)."""
    log = ctr.d.base / "runc-on-path.log"
    log.unlink(missing_ok=True)
    cid = ctr.new("userns")
    script = ("cat /proc/self/uid_map /proc/self/gid_map; id -u; ls -ln /bin/busybox | cut -c1-30; "
              "touch /x && echo wrote")
    p = ctr.d.ctr(*ctr.run_args(cid), "--rm", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536",
                  IMAGE, cid, "sh", "-c", script, check=False)
    assert p.returncode == 0, p.stderr
    want = ["0", "100000", "65536"] * 2 + ["0", "-rwxr-xr-x", "1", "0", "0", "wrote"]
    assert p.stdout.split() == want, p.stdout
    assert "create --bundle" in log.read_text(), "the runc on PATH was not called"

    log.unlink()
    cid = ctr.new("nopivot")
    p = ctr.d.ctr(*ctr.run_args(cid), "--rm", "--no-pivot", IMAGE, cid, "sh", "-c",
                  "awk '$5 == \"/\"' /proc/self/mountinfo | wc -l; ls /", check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[0] == "1" and "bin" in p.stdout.split(), p.stdout
    assert "--no-pivot" in log.read_text()


def test_run_with_terminal(ctr):
    """-t: the shim hands pyrunc a console socket and proxies the pty master it gets back."""
    cid = ctr.new("tty")
    out, rc = run_in_pty(["ctr", "-a", str(ctr.d.sock), "-n", NAMESPACE, *ctr.run_args(cid), "-t",
                          "--rm", IMAGE, cid, "sh", "-c", "tty; echo in-a-tty; exit 6"])
    assert rc == 6, out
    assert "/dev/pts/0" in out and "in-a-tty" in out, out
    assert cid not in ctr.tasks()


def test_detached_task_lifecycle(ctr):
    """run -d, exec (plain and -t), ps, pause/resume, metrics, kill, delete: the whole task API."""
    cid = ctr.new("det")
    c = ctr.d.ctr
    try:
        c(*ctr.run_args(cid), "-d", "--memory-limit", str(32 << 20), "--cpu-quota", "50000",
          "--cpu-period", "100000", IMAGE, cid, "sh", "-c", 'trap "exit 7" TERM; sleep 1000 & wait')
        pid, status = ctr.tasks()[cid]
        assert status == "RUNNING" and _alive(pid)
        # The pid the shim read from our --pid-file is the container's init, in the cgroup we were given.
        assert f":/{cid}\n" in Path(f"/proc/{pid}/cgroup").read_text()
        for controller, name, want in (("memory", "memory.limit_in_bytes", str(32 << 20)),
                                       ("cpu", "cpu.cfs_quota_us", "50000")):
            f = Path("/sys/fs/cgroup", controller, cid, name)
            if f.exists():  # a v1/hybrid host; a v2 host has memory.max and cpu.max instead
                assert f.read_text().strip() == want, f
        state = Path(ctr.d.runc_root / NAMESPACE / cid)
        assert state.is_dir(), "pyrunc was not the runtime the shim called"

        p = c(*ctr.exec_args(cid, "plain"), cid, "sh", "-c",
              "echo exec-out; cat /proc/1/cmdline; exit 4", check=False)
        assert p.returncode == 4, p.stderr
        assert p.stdout.startswith("exec-out\nsh\0-c\0"), p.stdout

        out, rc = run_in_pty(["ctr", "-a", str(ctr.d.sock), "-n", NAMESPACE, *ctr.exec_args(cid, "tty"),
                              "-t", cid, "sh", "-c", "tty; exit 5"])
        assert rc == 5, out
        assert "/dev/pts/" in out, out

        # A background exec, then ps lists both it and the init (go-runc parses `ps --format json`).
        c(*ctr.exec_args(cid, "bg"), "-d", cid, "sleep", "300")
        lines = c("task", "ps", cid).stdout.split("\n")[1:]
        pids = {int(line.split()[0]) for line in lines if line.strip()}
        assert pid in pids and len(pids) == 3, lines  # init, its sleep, the background sleep

        c("task", "pause", cid)
        assert ctr.tasks()[cid][1] == "PAUSED"
        freezer = Path(f"/sys/fs/cgroup/freezer/{cid}/freezer.state")
        if freezer.exists():
            assert freezer.read_text().strip() == "FROZEN"
        c("task", "resume", cid)
        assert ctr.tasks()[cid][1] == "RUNNING"

        metrics = c("task", "metrics", cid).stdout
        values = dict(line.split(None, 1) for line in metrics.splitlines() if line.strip())
        assert int(values["pids.current"]) == 3, metrics
        assert int(values["memory.usage_in_bytes"]) > 0, metrics
        assert int(values["memory.limit_in_bytes"]) == 32 << 20, metrics

        # SIGTERM reaches the init's trap; the exit status comes back through the shim.
        c("task", "kill", cid)
        ctr.wait_status(cid, "STOPPED")
        p = c("task", "delete", cid)
        assert "exit code 7" in p.stderr, p.stderr
        c("container", "rm", cid)
        assert not state.exists(), "pyrunc delete left its state dir"
        assert not _alive(pid)
        assert not _cgroup_dirs_named(cid)
    finally:
        ctr.remove_if_left(cid)


def test_kill_all(ctr):
    """kill --all reaches every process, also the ones exec started."""
    cid = ctr.new("all")
    c = ctr.d.ctr
    try:
        c(*ctr.run_args(cid), "-d", IMAGE, cid, "sleep", "300")
        c(*ctr.exec_args(cid, "bg"), "-d", cid, "sleep", "300")
        c("task", "kill", "-a", "-s", "KILL", cid)
        ctr.wait_status(cid, "STOPPED")
        c("task", "delete", cid)
        c("container", "rm", cid)
        assert not _cgroup_dirs_named(cid)
    finally:
        ctr.remove_if_left(cid)


def test_errors_reach_the_user(ctr):
    """Our --log-format json error lines are what ctr prints, for create and for exec."""
    cid = ctr.new("err")
    p = ctr.d.ctr(*ctr.run_args(cid), "--rm", IMAGE, cid, "/nonexistent", check=False)
    assert p.returncode != 0
    assert "OCI runtime create failed" in p.stderr and '"/nonexistent"' in p.stderr, p.stderr
    assert "no such file or directory" in p.stderr, p.stderr
    assert cid not in ctr.d.ctr("container", "ls", "-q").stdout.split()

    cid = ctr.new("err")
    c = ctr.d.ctr
    try:
        c(*ctr.run_args(cid), "-d", IMAGE, cid, "sleep", "300")
        p = c(*ctr.exec_args(cid, "bad"), cid, "/nonexistent", check=False)
        assert p.returncode != 0
        assert "OCI runtime exec failed" in p.stderr and "/nonexistent" in p.stderr, p.stderr
        # The failed exec must not have hurt the container.
        assert c(*ctr.exec_args(cid, "good"), cid, "true", check=False).returncode == 0
    finally:
        ctr.remove(cid)


# The shim decides whether a failed `kill` matters by the words of the error: "container not
# running", "no such process" or "process already finished" mean the task is gone already
# (containerd's checkKillError); anything else aborts the operation. runc 1.1 also lets `kill --all`
# of a stopped container succeed, so the shim can sweep leftovers of an init that has exited.
def test_force_delete_of_exited_task(ctr):
    """`ctr task rm -f` of a task whose init already exited (nerdctl rm -f, kubelet cleanup)."""
    cid = ctr.new("exited")
    c = ctr.d.ctr
    try:
        c(*ctr.run_args(cid), "-d", IMAGE, cid, "true")
        ctr.wait_status(cid, "STOPPED")
        p = c("task", "rm", "-f", cid, check=False)
        assert p.returncode == 0, p.stderr
        c("container", "rm", cid)
    finally:
        ctr.remove_if_left(cid)


def _stopped_container(runtime, bundle) -> str:
    cid = runtime.new_id("kill")
    runtime("run", "--detach", "--bundle", str(bundle.path), cid, check=True)
    deadline = time.monotonic() + 10
    while runtime.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, "true did not exit"
        time.sleep(0.05)
    return cid


def test_kill_stopped_container_says_not_running(runtime, bundle):
    cid = _stopped_container(runtime, bundle)
    p = runtime("kill", cid, "KILL")
    runtime("delete", cid, check=True)
    assert p.returncode == 1
    assert "container not running" in p.stderr, p.stderr


def test_kill_all_of_stopped_container_succeeds(runtime, bundle):
    cid = _stopped_container(runtime, bundle)
    p = runtime("kill", "--all", cid, "KILL")
    runtime("delete", cid, check=True)
    assert p.returncode == 0, p.stderr


def _cgroup_procs(cid: str) -> list[int]:
    """The processes left in a container's cgroup (pids hierarchy on v1/hybrid, the unified one on v2)."""
    for d in (f"/sys/fs/cgroup/pids/{cid}", f"/sys/fs/cgroup/{cid}"):
        try:
            return [int(x) for x in Path(d, "cgroup.procs").read_text().split()]
        except OSError:
            continue
    return []


def test_shared_pid_namespace_leftovers_are_killed_when_init_exits(ctr):
    """A pod-style container joins a sandbox's pid namespace, so its init exiting kills nothing:
    the shim then runs `kill --all <id> KILL` on the stopped container to sweep its cgroup."""
    sandbox, cid = ctr.new("sandbox"), ctr.new("member")
    c = ctr.d.ctr
    try:
        c(*ctr.run_args(sandbox), "-d", IMAGE, sandbox, "sleep", "300")
        spid = ctr.tasks()[sandbox][0]
        c(*ctr.run_args(cid), "-d", "--with-ns", f"pid:/proc/{spid}/ns/pid", IMAGE, cid,
          "sh", "-c", "sleep 300 & exit 0")
        ctr.wait_status(cid, "STOPPED")
        deadline = time.monotonic() + 5
        while _cgroup_procs(cid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _cgroup_procs(cid), "the exited container's background process survived"
    finally:
        for name in (cid, sandbox):
            ctr.remove(name)
