"""Shared by the filesystem suites (test_mounts, test_devices, test_masked_readonly,
test_rootfs_escape): run a container and read what it sees, and fingerprint host trees so a test can
prove that nothing outside the rootfs changed."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Mount:
    mount_id: int
    parent_id: int
    root: str
    point: str
    options: set[str]
    optional: list[str]
    fstype: str
    source: str
    superopts: set[str]

    @property
    def propagation(self) -> str:
        """'shared', 'slave', 'unbindable' or 'private', as the optional fields say."""
        kinds = [o.split(":")[0] for o in self.optional]
        if "unbindable" in kinds:
            return "unbindable"
        if "shared" in kinds:
            return "shared"
        if "master" in kinds:
            return "slave"
        return "private"


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def parse_mountinfo(text: str) -> list[Mount]:
    out = []
    for line in text.splitlines():
        if " - " not in line:
            continue
        left, _, right = line.partition(" - ")
        f = left.split()
        r = right.split()
        out.append(Mount(int(f[0]), int(f[1]), _unescape(f[3]), _unescape(f[4]), set(f[5].split(",")),
                         f[6:], r[0], _unescape(r[1]), set(r[2].split(",")) if len(r) > 2 else set()))
    return out


def at(mounts: list[Mount], point: str) -> Mount:
    """The top-most mount at `point` (the last one listed there)."""
    found = [m for m in mounts if m.point == point]
    assert found, f"nothing mounted at {point}: {[m.point for m in mounts]}"
    return found[-1]


def run_ok(runtime, bundle, *argv: str) -> str:
    """Run argv in a fresh container from `bundle`; return its stdout, failing on a non-zero exit."""
    bundle.set_args(*argv)
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr}{p.stdout}"
    return p.stdout


def run(runtime, bundle, *argv: str):
    bundle.set_args(*argv)
    return runtime("run", "--bundle", str(bundle.path), runtime.new_id())


def mountinfo(runtime, bundle) -> list[Mount]:
    return parse_mountinfo(run_ok(runtime, bundle, "cat", "/proc/self/mountinfo"))


def fingerprint(root: Path, depth: int = 1) -> dict[str, tuple]:
    """Names, types, sizes and mtimes under `root` (not following symlinks), `depth` levels deep."""
    out: dict[str, tuple] = {}

    def walk(d: Path, level: int) -> None:
        try:
            entries = list(os.scandir(d))
        except OSError:
            return
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            out[e.path] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)
            if level > 1 and e.is_dir(follow_symlinks=False):
                walk(Path(e.path), level - 1)

    walk(root, depth)
    return out


# not /tmp: other test runs churn there; the canaries under tmp_path cover it
HOST_WATCH = [Path("/"), Path("/etc"), Path("/dev"), Path("/root")]


def host_snapshot() -> dict[str, tuple]:
    snap: dict[str, tuple] = {}
    for d in HOST_WATCH:
        snap.update(fingerprint(d, 1))
    # /dev/pts, /dev/shm and /tmp churn on their own; only new or vanished names count there
    return snap


def host_changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    changes = [f"new {p}" for p in after.keys() - before.keys()]
    changes += [f"gone {p}" for p in before.keys() - after.keys()]
    for p in before.keys() & after.keys():
        if p.startswith(("/tmp/", "/dev/")):
            continue  # other processes (pytest itself) write there
        if before[p][:2] != after[p][:2] or before[p][3] != after[p][3]:
            changes.append(f"changed {p}")
    ignore = ("/tmp/pytest-of-", "/dev/pts", "/tmp/.", "/dev/shm/")
    return sorted(c for c in changes if not c.split(" ", 1)[1].startswith(ignore))
