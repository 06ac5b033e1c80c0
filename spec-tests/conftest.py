"""Fixtures every suite shares: a fresh state root, unique IDs, busybox bundles, and a leak check.

Every test that makes containers goes through `runtime`, whose teardown force-deletes what the test
left and then fails the test if a mount, cgroup or process of its containers is still there.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bundles"))
from build_rootfs import build as build_rootfs  # noqa: E402

from pyrunc.spec.default import default_config  # noqa: E402


def pyrunc_binary() -> str:
    """The installed console script, never the pyenv shim."""
    for cand in (Path(sysconfig.get_path("scripts")) / "pyrunc", Path(sys.executable).parent / "pyrunc"):
        if cand.exists():
            return str(cand)
    found = shutil.which("pyrunc")
    if not found:
        pytest.exit("pyrunc is not installed: pip install .", returncode=2)
    return found


PYRUNC = pyrunc_binary()


@pytest.fixture(scope="session")
def rootfs_cache(tmp_path_factory) -> Path:
    return Path(build_rootfs(str(tmp_path_factory.getbasetemp() / "busybox-rootfs")))


class Bundle:
    """A bundle directory with its own copy of the busybox rootfs; edit .config, then .write()."""

    def __init__(self, path: Path, rootfs_src: Path):
        self.path = path
        shutil.copytree(rootfs_src, path / "rootfs", symlinks=True)
        self.config = default_config()
        self.config["process"]["terminal"] = False
        self.config["process"]["args"] = ["true"]
        self.config["root"]["readonly"] = False
        self.write()

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    def write(self) -> "Bundle":
        (self.path / "config.json").write_text(json.dumps(self.config, indent=1))
        return self

    def set_args(self, *args: str) -> "Bundle":
        self.config["process"]["args"] = list(args)
        return self.write()


@pytest.fixture
def bundle(tmp_path, rootfs_cache) -> Bundle:
    d = tmp_path / "bundle"
    d.mkdir()
    return Bundle(d, rootfs_cache)


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def _cgroup_dirs_named(name: str) -> list[str]:
    """os.walk, not glob: other tests' cgroups vanish while we look, and walk shrugs that off."""
    found = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        if name in dirs:
            found.append(os.path.join(top, name))
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for whoever it was reparented to."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


class Runtime:
    """Drives the pyrunc CLI with this test's own --root and remembers the IDs it made."""

    def __init__(self, root: Path):
        self.root = root
        self.ids: list[str] = []

    def new_id(self, prefix: str = "t") -> str:
        cid = f"spec-test-{prefix}-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def cmd(self, *args: str) -> list[str]:
        return [PYRUNC, "--root", str(self.root), *args]

    def __call__(self, *args: str, check: bool = False, timeout: float = 60, **kw
                 ) -> subprocess.CompletedProcess:
        if "stdin" not in kw and "input" not in kw:
            kw["stdin"] = subprocess.DEVNULL
        if "stdout" in kw or "capture_output" in kw:
            p = subprocess.run(self.cmd(*args), timeout=timeout, **kw)
        else:
            # Files, not pipes: a detached container keeps the stdio create gave it, and a pipe
            # would not reach EOF until the container exits (runc behaves the same).
            import tempfile
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                rc = subprocess.run(self.cmd(*args), timeout=timeout, stdout=out, stderr=err,
                                    **kw).returncode
                out.seek(0)
                err.seek(0)
                p = subprocess.CompletedProcess(self.cmd(*args), rc, out.read().decode(errors="replace"),
                                                err.read().decode(errors="replace"))
        if check and p.returncode != 0:
            raise AssertionError(f"pyrunc {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid, check=True).stdout)


@pytest.fixture
def runtime(tmp_path) -> Runtime:
    root = tmp_path / "state-root"
    before = _mounts()
    rt = Runtime(root)
    yield rt
    leftovers = []
    for cid in rt.ids:
        st = rt("state", cid)
        if st.returncode == 0:
            pid = json.loads(st.stdout).get("pid") or 0
            rt("delete", "--force", cid)
            if pid and _alive(pid):
                leftovers.append(f"process {pid} of {cid}")
        leftovers += [f"cgroup {cg}" for cg in _cgroup_dirs_named(cid)]
    # only this test's tree: other tests (and clients such as podman) mount elsewhere meanwhile
    new_mounts = {m for m in _mounts() - before if str(tmp_path) in m}
    leftovers += [f"mount {m}" for m in sorted(new_mounts)]
    if root.exists():
        leftovers += [f"state dir {p}" for p in root.iterdir()]
    assert not leftovers, f"test left behind: {leftovers}"


def read_pty_until(master: int, marker: bytes, timeout: float = 10) -> bytes:
    """Read a pty master until `marker` shows up, the other side closes, or `timeout` passes."""
    import select
    import time
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and marker not in out:
        if select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out
