"""A hostile rootfs must not make pyrunc touch anything outside it (config.md "Mounts": the
destination is inside the container; CVE-2021-30465, CVE-2025-31133 class).

Each test plants symlinks in the rootfs pointing at `/`, `../../..`, `/proc/self/root/...` or host
paths, uses them as mount destinations, masked or readonly paths or device paths, and then checks
that the container either failed cleanly or got the mount inside its rootfs, and that no host file
(canaries under tmp_path, and the top of /, /etc, /root, /dev, /tmp) changed.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from rootfs_helpers import at, fingerprint, host_changes, host_snapshot, parse_mountinfo


@pytest.fixture
def canary(tmp_path) -> Path:
    d = tmp_path / "canary"
    d.mkdir()
    (d / "file").write_text("untouched\n")
    return d


@pytest.fixture
def watch(canary):
    """Snapshot the host before the test; after it, assert nothing outside the rootfs changed."""
    before = host_snapshot()
    canary_before = fingerprint(canary, 3)
    mounts_before = _host_mountpoints()
    yield
    assert host_changes(before, host_snapshot()) == []
    assert fingerprint(canary, 3) == canary_before
    assert (canary / "file").read_text() == "untouched\n"
    # mounts made meanwhile by tests running in parallel (named netns of the netDevices tests,
    # podman/containerd overlays under their own temp dirs) are not this test's doing
    others = ("/run/netns/", "/tmp/pm-client-", "/run/containerd", "/var/lib/containers")
    ours = str(canary.parent)  # this test's tmp_path: anything mounted there is this test's
    new = {m for m in _host_mountpoints() - mounts_before
           if m.startswith(ours) or not (m.startswith(others) or "/pytest-of-" in m)}
    assert not new, f"mounts appeared on the host: {new}"


def _host_mountpoints() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def _targets(canary: Path) -> list[str]:
    depth = "../" * 12
    return ["/", depth, depth + str(canary).lstrip("/"), str(canary), "/proc/self/root" + str(canary),
            "/proc/1/root/", "/proc/self/cwd"]


def _run(runtime, bundle, *argv):
    bundle.set_args(*argv)
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert "Traceback" not in p.stderr, p.stderr
    return p


def _clean_failure(p) -> None:
    assert p.returncode != 0
    assert p.stderr.startswith("pyrunc:") and len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.parametrize("idx", range(7))
def test_mount_destination_through_symlink_stays_inside(runtime, bundle, canary, watch, idx):
    target = _targets(canary)[idx]
    os.symlink(target, bundle.rootfs / "evil")
    bundle.config["mounts"].append({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"})
    bundle.write()
    p = _run(runtime, bundle, "cat", "/proc/self/mountinfo")
    if p.returncode != 0:
        _clean_failure(p)
        return
    ms = parse_mountinfo(p.stdout)
    tmpfs = [m for m in ms if m.fstype == "tmpfs" and m.point.endswith("/x")]
    assert tmpfs, "the mount vanished"
    # whatever the symlink said, the mount is a path inside the container's own tree
    assert not (Path("/x").exists() and os.path.ismount("/x"))


@pytest.mark.parametrize("idx", range(4))
def test_bind_file_destination_symlink_to_host_file(runtime, bundle, canary, tmp_path, watch, idx):
    """A file bind whose destination is a symlink to a host file must not cover that file."""
    host_file = canary / "file"
    target = [str(host_file), "../" * 12 + str(host_file).lstrip("/"), "/etc/passwd",
              "/proc/self/root/etc/passwd"][idx]
    src = tmp_path / "payload"
    src.write_text("payload\n")
    os.symlink(target, bundle.rootfs / "etc" / "evil.conf")
    bundle.config["mounts"].append({"destination": "/etc/evil.conf", "type": "bind",
                                    "source": str(src), "options": ["bind"]})
    bundle.write()
    p = _run(runtime, bundle, "cat", "/etc/evil.conf")
    if p.returncode != 0:
        _clean_failure(p)
    else:
        assert p.stdout == "payload\n"
    assert Path("/etc/passwd").read_text().startswith("root:")


def test_symlink_brought_in_by_earlier_mount(runtime, bundle, canary, tmp_path, watch):
    """A symlink that appears only once an earlier mount is in place (a bind of a directory the
    container controls) is resolved inside the root as well."""
    vol = tmp_path / "vol"
    vol.mkdir()
    os.symlink("/", vol / "up")
    os.symlink("../../../../../../..", vol / "rel")
    bundle.config["mounts"] += [
        {"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind"]},
        {"destination": "/vol/up/escaped-abs", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/vol/rel/escaped-rel", "type": "tmpfs", "source": "tmpfs"},
    ]
    bundle.write()
    p = _run(runtime, bundle, "cat", "/proc/self/mountinfo")
    assert p.returncode == 0, p.stderr
    ms = parse_mountinfo(p.stdout)
    assert at(ms, "/escaped-abs").fstype == "tmpfs"
    assert at(ms, "/escaped-rel").fstype == "tmpfs"
    assert (bundle.rootfs / "escaped-abs").is_dir() and (bundle.rootfs / "escaped-rel").is_dir()
    assert not Path("/escaped-abs").exists() and not Path("/escaped-rel").exists()


def test_proc_on_symlink_is_refused(runtime, bundle, canary, watch):
    """procfs on a symlink would give the container a /proc of the host's choosing: runc refuses."""
    os.rmdir(bundle.rootfs / "proc")
    os.symlink(str(canary), bundle.rootfs / "proc")
    p = _run(runtime, bundle, "true")
    _clean_failure(p)
    assert "proc" in p.stderr


@pytest.mark.parametrize("kind", ["masked", "readonly"])
@pytest.mark.parametrize("idx", range(4))
def test_masked_and_readonly_paths_through_symlinks(runtime, bundle, canary, watch, kind, idx):
    target = [str(canary / "file"), "../" * 12 + str(canary / "file").lstrip("/"), "/",
              "/proc/self/root" + str(canary / "file")][idx]
    os.symlink(target, bundle.rootfs / "evil")
    key = "maskedPaths" if kind == "masked" else "readonlyPaths"
    bundle.config["linux"][key] = ["/evil"]
    bundle.write()
    p = _run(runtime, bundle, "sh", "-c", "cat /proc/self/mountinfo")
    if p.returncode != 0:
        _clean_failure(p)


def _hostile_dev(bundle, tmp_path: Path, null_kind: str, canary: Path) -> None:
    """/dev is a user bind of a directory whose `null` is not the null device."""
    fake = tmp_path / "fakedev"
    fake.mkdir()
    if null_kind == "symlink-host":
        os.symlink(str(canary / "file"), fake / "null")
    elif null_kind == "symlink-proc":
        os.symlink("/proc/sys/kernel/core_pattern", fake / "null")
    elif null_kind == "file":
        (fake / "null").write_text("")
    elif null_kind == "zero":
        os.mknod(fake / "null", 0o666 | 0o020000, os.makedev(1, 5))
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if not m["destination"].startswith("/dev")]
    bundle.config["mounts"].append({"destination": "/dev", "type": "bind", "source": str(fake),
                                    "options": ["rbind"]})
    bundle.config["linux"]["maskedPaths"] = ["/proc/kcore", "/etc/hostname"]
    (bundle.rootfs / "etc" / "hostname").write_text("secret\n")
    bundle.write()


@pytest.mark.parametrize("null_kind", ["symlink-host", "symlink-proc", "file", "zero"])
def test_masking_refuses_a_fake_dev_null(runtime, bundle, tmp_path, canary, watch, null_kind):
    with open("/proc/sys/kernel/core_pattern") as f:
        core_pattern = f.read()
    _hostile_dev(bundle, tmp_path, null_kind, canary)
    p = _run(runtime, bundle, "cat", "/etc/hostname")
    _clean_failure(p)
    assert "null" in p.stderr
    with open("/proc/sys/kernel/core_pattern") as f:
        assert f.read() == core_pattern


@pytest.mark.parametrize("idx", range(4))
def test_device_path_through_symlink(runtime, bundle, canary, watch, idx):
    """Without a /dev tmpfs the image's own /dev is used: a symlink there must not place a
    device node on the host."""
    target = [str(canary), "../" * 12 + str(canary).lstrip("/"), "/", "/proc/self/root" + str(canary)][idx]
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if not m["destination"].startswith("/dev")]
    os.symlink(target, bundle.rootfs / "dev" / "evil")
    bundle.config["linux"]["devices"] = [{"path": "/dev/evil/mynull", "type": "c", "major": 1,
                                          "minor": 3, "fileMode": 0o666}]
    bundle.write()
    p = _run(runtime, bundle, "true")
    if p.returncode != 0:
        _clean_failure(p)
    assert not Path("/mynull").exists()


def test_dev_itself_a_symlink_to_host_dev(runtime, bundle, canary, watch):
    """An image whose /dev is a symlink to the host's /dev (or to a canary) gets its nodes
    inside the rootfs."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if not m["destination"].startswith("/dev")]
    os.rmdir(bundle.rootfs / "dev") if (bundle.rootfs / "dev").is_dir() else None
    os.symlink(str(canary), bundle.rootfs / "dev")
    bundle.config["linux"]["devices"] = [{"path": "/dev/pyrunc-escape-test", "type": "c",
                                          "major": 1, "minor": 3}]
    bundle.write()
    p = _run(runtime, bundle, "true")
    if p.returncode != 0:
        _clean_failure(p)
    assert not Path("/dev/pyrunc-escape-test").exists()


def _create_with_console(runtime, bundle, tmp_path):
    import socket
    sock_path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    server.settimeout(10)
    bundle.config["process"]["terminal"] = True
    bundle.set_args("sh", "-c", "grep ' /dev/console ' /proc/self/mountinfo")
    cid = runtime.new_id()
    p = runtime("create", "--bundle", str(bundle.path), "--console-socket", sock_path, cid)
    fds = []
    if p.returncode == 0:
        conn, _ = server.accept()
        _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        conn.close()
    server.close()
    for fd in fds:
        os.close(fd)
    return p, cid


@pytest.mark.parametrize("idx", range(3))
def test_dev_console_symlink_does_not_redirect_the_pty_bind(runtime, bundle, tmp_path, canary, watch, idx):
    """CVE-2025-52565 class: /dev/console planted as a symlink must not steer the pty bind."""
    target = [str(canary / "file"), "/proc/sys/kernel/core_pattern", "../" * 12 + str(canary / "file").lstrip("/")][idx]
    with open("/proc/sys/kernel/core_pattern") as f:
        core_pattern = f.read()
    fake = tmp_path / "fakedev"
    fake.mkdir()
    os.mknod(fake / "null", 0o666 | 0o020000, os.makedev(1, 3))
    os.symlink("pts/ptmx", fake / "ptmx")
    (fake / "pts").mkdir()
    os.symlink(target, fake / "console")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/dev"]
    bundle.config["mounts"].insert(1, {"destination": "/dev", "type": "bind", "source": str(fake),
                                       "options": ["rbind"]})
    bundle.write()
    p, cid = _create_with_console(runtime, bundle, tmp_path)
    if p.returncode != 0:
        _clean_failure(p)
    else:
        runtime("delete", "--force", cid)
    assert os.path.islink(fake / "console")
    with open("/proc/sys/kernel/core_pattern") as f:
        assert f.read() == core_pattern
