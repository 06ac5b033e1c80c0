"""Rootless containers: pyrunc run by an unprivileged user (runc's `--rootless auto`).

The runtime really runs as uid 65534 (nobody), with no capabilities, through setpriv: the user
namespace maps the container's root to that uid, the state lives under $XDG_RUNTIME_DIR/pyrunc,
cgroup hierarchies the user may not write are dropped (a limit that needed one is a clear error),
and exec joins the user namespace before the pid namespace it owns.

The installed pyrunc lives under /root (mode 0700 here), where nobody cannot reach it, so each
test session copies the installed package into a world-readable directory and runs it with
Debian's own python3.11 and its cffi backend (python3-cffi-backend).
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import pyrunc
from conftest import PYRUNC, Runtime, _alive, _cgroup_dirs_named

NOBODY = 65534
SYSTEM_PY = "/usr/bin/python3.11"
DIST = "/usr/lib/python3/dist-packages"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="drops from root to nobody with setpriv"),
    pytest.mark.skipif(not os.path.exists(SYSTEM_PY) or not glob.glob(f"{DIST}/_cffi_backend*")
                       or not shutil.which("setpriv"),
                       reason="needs Debian's python3.11, python3-cffi-backend and setpriv"),
]


@pytest.fixture(scope="module")
def world(rootfs_cache):
    """A directory nobody can read: pyrunc's package and a busybox rootfs in it."""
    top = Path(tempfile.mkdtemp(prefix="pyrunc-rootless-", dir="/tmp"))
    try:
        shutil.copytree(Path(pyrunc.__file__).parent, top / "lib" / "pyrunc")
        shutil.copytree(rootfs_cache, top / "rootfs", symlinks=True)
        subprocess.run(["chmod", "-R", "a+rX", str(top)], check=True)
        yield top
    finally:
        shutil.rmtree(top)


class Rootless(Runtime):
    """Runtime, but every command runs as nobody; with `xdg`, under XDG_RUNTIME_DIR and without
    --root, so that pyrunc picks its state root itself."""

    def __init__(self, world: Path, home: Path, xdg: bool):
        super().__init__(home / "xdg" / "pyrunc" if xdg else home / "state-root")
        self.world, self.home, self.xdg = world, home, xdg

    def cmd(self, *args: str) -> list[str]:
        boot = (f"import sys; sys.path[:0] = [{str(self.world / 'lib')!r}, {DIST!r}]; "
                "from pyrunc.cli import main; sys.exit(main())")
        root = [] if self.xdg else ["--root", str(self.root)]
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                "--inh-caps=-all", "env", f"XDG_RUNTIME_DIR={self.home / 'xdg'}",
                SYSTEM_PY, "-S", "-c", boot, *root, *args]

    def bundle(self, args: list[str], **linux) -> str:
        """A bundle from nobody's own `pyrunc spec --rootless`, on the shared rootfs."""
        b = self.home / f"bundle-{len(list(self.home.glob('bundle-*')))}"
        b.mkdir()
        os.chown(b, NOBODY, NOBODY)
        self("spec", "--rootless", "--bundle", str(b), check=True)
        cfg = json.loads((b / "config.json").read_text())
        cfg["process"].update(terminal=False, args=args)
        cfg["root"] = {"path": str(self.world / "rootfs"), "readonly": True}
        cfg["linux"].update(linux)
        (b / "config.json").write_text(json.dumps(cfg))
        return str(b)


def _cleanup(rt: Rootless) -> list[str]:
    """As root, with the installed pyrunc: delete whatever the test left; report what stays."""
    left = []
    for cid in rt.ids:
        base = [PYRUNC, "--root", str(rt.root)]
        st = subprocess.run([*base, "state", cid], capture_output=True, text=True)
        if st.returncode == 0:
            pid = json.loads(st.stdout).get("pid") or 0
            subprocess.run([*base, "delete", "--force", cid], capture_output=True)
            if pid and _alive(pid):
                left.append(f"process {pid} of {cid}")
        left += [f"cgroup {cg}" for cg in _cgroup_dirs_named(cid)]
    if rt.root.exists():
        left += [f"state dir {p}" for p in rt.root.iterdir()]
    return left


@pytest.fixture(params=[True, False], ids=["xdg-root", "explicit-root"])
def rootless(request, world, tmp_path):
    home = Path(tempfile.mkdtemp(prefix="home-", dir=world))
    (home / "xdg").mkdir()
    for d in (home, home / "xdg"):
        os.chown(d, NOBODY, NOBODY)
    rt = Rootless(world, home, xdg=request.param)
    try:
        yield rt
        left = _cleanup(rt)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert not left, f"test left behind: {left}"


def _wait_stopped(rt: Rootless, cid: str) -> None:
    deadline = time.monotonic() + 10
    while rt.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, f"{cid} did not stop"
        time.sleep(0.05)


def test_root_in_the_container_is_the_user_outside(rootless):
    b = rootless.bundle(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map"])
    p = rootless("run", "--bundle", b, rootless.new_id("rl"), check=True)
    lines = [x.split() for x in p.stdout.splitlines()]
    assert lines[:2] == [["0"], ["0"]], p.stdout
    assert lines[2:] == [["0", str(NOBODY), "1"]] * 2, p.stdout
    assert not any(rootless.root.iterdir()), "run without --keep leaves no state"


def test_state_lives_where_runc_would_put_it(rootless):
    """runc's rule: $XDG_RUNTIME_DIR/<runtime> for a user who is not root, unless --root says."""
    b = rootless.bundle(["sleep", "100"])
    cid = rootless.new_id("rl")
    rootless("create", "--bundle", b, cid, check=True)
    d = rootless.root / cid
    assert d.is_dir() and d.stat().st_uid == NOBODY
    assert json.loads((d / "state.json").read_text())["id"] == cid
    rootless("delete", "--force", cid, check=True)
    assert not d.exists()


def test_lifecycle_exec_ps_and_kill_all_without_any_cgroup(rootless):
    """nobody may write none of this host's hierarchies: the container runs without a cgroup,
    and ps and kill --all find its processes through its pid namespace instead."""
    b = rootless.bundle(["sleep", "100"])
    cid = rootless.new_id("rl")
    rootless("create", "--bundle", b, cid, check=True)
    assert not _cgroup_dirs_named(cid)
    rootless("start", cid, check=True)
    st = rootless.state(cid)
    assert st["status"] == "running"
    init = st["pid"]
    # exec joins the container's user namespace first, then the pid namespace it owns
    p = rootless("exec", cid, "sh", "-c", "id -u; echo $$; readlink /proc/self/ns/pid; "
                 "readlink /proc/1/ns/pid", check=True)
    uid, mypid, my_ns, init_ns = p.stdout.split()
    assert uid == "0" and mypid != "1" and my_ns == init_ns, p.stdout
    assert init_ns == os.readlink(f"/proc/{init}/ns/pid")
    rootless("exec", "-d", cid, "sleep", "77", check=True)
    pids = json.loads(rootless("ps", "--format", "json", cid, check=True).stdout)
    assert init in pids and len(pids) == 2, pids
    other = next(p for p in pids if p != init)
    assert Path(f"/proc/{other}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"77"]
    table = rootless("ps", cid, check=True).stdout
    assert str(init) in table and str(other) in table
    p = rootless("pause", cid)
    assert p.returncode == 1 and "rootless container has no freezer cgroup" in p.stderr, p.stderr
    rootless("kill", "--all", cid, "KILL", check=True)
    _wait_stopped(rootless, cid)
    rootless("delete", cid, check=True)
    assert not (rootless.root / cid).exists()


def test_a_limit_without_a_cgroup_is_one_clear_error_and_leaves_nothing(rootless):
    b = rootless.bundle(["true"], resources={"memory": {"limit": 64 << 20}})
    cid = rootless.new_id("rl")
    p = rootless("run", "--bundle", b, cid)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        "pyrunc: linux.resources.memory is set but this rootless container could not join or "
        "create a memory cgroup"], p.stderr
    assert not any(rootless.root.iterdir()) and not _cgroup_dirs_named(cid)


def test_device_rules_are_ignored_rootless_as_in_runc(rootless):
    """A device cgroup is not expected to work for a rootless runtime: runc skips it."""
    b = rootless.bundle(["echo", "ran"], resources={"devices": [{"allow": False, "access": "rwm"}]})
    p = rootless("run", "--bundle", b, rootless.new_id("rl"), check=True)
    assert p.stdout == "ran\n"


def test_an_explicit_cgroups_path_it_cannot_create_fails(rootless):
    """Only a container without cgroupsPath may run without its cgroup (runc's rule)."""
    cid = rootless.new_id("rl")
    b = rootless.bundle(["true"], cgroupsPath=f"/{cid}")
    p = rootless("run", "--bundle", b, cid)
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1, p.stderr
    assert "cannot create cgroup" in p.stderr and "Permission denied" in p.stderr, p.stderr
    assert not any(rootless.root.iterdir()) and not _cgroup_dirs_named(cid)


def test_rootless_true_as_root_still_makes_the_cgroups_it_may(runtime, bundle):
    """`--rootless true` only gives up hierarchies the runtime has no permission for: as root
    it has them all, and the memory limit is applied."""
    bundle.config["linux"]["resources"] = {"memory": {"limit": 48 << 20}}
    bundle.set_args("sleep", "100")
    cid = runtime.new_id("rl")
    runtime("--rootless", "true", "create", "--bundle", str(bundle.path), cid, check=True)
    limits = glob.glob(f"/sys/fs/cgroup/memory/**/{cid}/memory.limit_in_bytes", recursive=True)
    assert [Path(f).read_text().strip() for f in limits] == [str(48 << 20)], limits
    runtime("delete", "--force", cid, check=True)


@pytest.mark.parametrize("value", ["yes", "", "maybe"])
def test_bad_rootless_value_is_one_clear_error(runtime, value):
    p = runtime(f"--rootless={value}", "list")
    assert p.returncode == 1 and p.stderr.splitlines() == [
        f"pyrunc: invalid value {value!r} for flag --rootless (want true, false or auto)"], p.stderr
