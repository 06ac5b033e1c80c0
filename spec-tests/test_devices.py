"""config-linux.md "Devices" and "Default Devices": the nodes every container gets, the /dev
symlinks, `linux.devices` with type, numbers, mode and owner, and clear errors for bad entries."""
from __future__ import annotations

import os

import pytest

from rootfs_helpers import run, run_ok

STAT = "stat -c '%n %F %t:%T %a %u:%g' "


def _stat_lines(out: str) -> dict[str, str]:
    res = {}
    for line in out.strip().splitlines():
        name, rest = line.split(" ", 1)
        res[name] = rest
    return res


def test_default_devices(runtime, bundle):
    names = ["null", "zero", "full", "random", "urandom", "tty"]
    out = run_ok(runtime, bundle, "sh", "-c", STAT + " ".join(f"/dev/{n}" for n in names))
    got = _stat_lines(out)
    want = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9", "tty": "5:0"}
    for n, nums in want.items():
        major, minor = nums.split(":")
        assert got[f"/dev/{n}"] == f"character special file {int(major):x}:{int(minor):x} 666 0:0", n


def test_default_devices_work(runtime, bundle):
    out = run_ok(runtime, bundle, "sh", "-c",
                 "echo x > /dev/null && head -c 4 /dev/zero | od -An -tx1 && head -c 8 /dev/urandom | wc -c")
    assert out.split() == ["00", "00", "00", "00", "8"]


def test_dev_symlinks(runtime, bundle):
    out = run_ok(runtime, bundle, "sh", "-c",
                 "for l in fd stdin stdout stderr ptmx core; do echo $l=$(readlink /dev/$l); done")
    links = dict(line.split("=", 1) for line in out.strip().splitlines())
    assert links["fd"] == "/proc/self/fd"
    assert links["stdin"] == "/proc/self/fd/0"
    assert links["stdout"] == "/proc/self/fd/1"
    assert links["stderr"] == "/proc/self/fd/2"
    assert links["ptmx"] == "pts/ptmx"
    assert links["core"] == ("/proc/kcore" if os.path.exists("/proc/kcore") else "")


def test_dev_shm_and_pts_present(runtime, bundle):
    out = run_ok(runtime, bundle, "sh", "-c", "echo hi > /dev/shm/f && cat /dev/shm/f && test -e /dev/pts/ptmx && echo pts")
    assert out.split() == ["hi", "pts"]


def test_linux_devices_created_with_mode_and_owner(runtime, bundle):
    bundle.config["linux"]["devices"] = [
        {"path": "/dev/mychar", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 12, "gid": 34},
        {"path": "/dev/sub/dir/myblk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620, "uid": 1, "gid": 2},
        {"path": "/dev/myu", "type": "u", "major": 1, "minor": 7},
    ]
    bundle.write()
    out = run_ok(runtime, bundle, "sh", "-c",
                 STAT + "/dev/mychar /dev/sub/dir/myblk /dev/myfifo /dev/myu")
    got = _stat_lines(out)
    assert got["/dev/mychar"] == "character special file 1:5 640 12:34"
    assert got["/dev/sub/dir/myblk"] == "block special file 7:c8 600 0:0"
    assert got["/dev/myfifo"] == "fifo 0:0 620 1:2"
    assert got["/dev/myu"].startswith("character special file 1:7")


def test_linux_devices_overrides_default(runtime, bundle):
    bundle.config["linux"]["devices"] = [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3,
                                          "fileMode": 0o600, "uid": 5, "gid": 6}]
    bundle.write()
    out = run_ok(runtime, bundle, "sh", "-c", STAT + "/dev/null")
    assert _stat_lines(out)["/dev/null"] == "character special file 1:3 600 5:6"


@pytest.mark.parametrize("dev,words", [
    ({"path": "/dev/bad", "type": "x", "major": 1, "minor": 3}, ["type"]),
    ({"path": "/dev/bad", "type": "c"}, ["major"]),
    ({"path": "relative/dev", "type": "c", "major": 1, "minor": 3}, ["absolute"]),
    ({"path": "/", "type": "c", "major": 1, "minor": 3}, ["/"]),
    ({"path": "/dev/bad", "type": "c", "major": -1, "minor": 3}, ["major"]),
    ({"type": "c", "major": 1, "minor": 3}, ["path"]),
])
def test_bad_device_entries_fail_clearly(runtime, bundle, dev, words):
    bundle.config["linux"]["devices"] = [dev]
    bundle.write()
    p = run(runtime, bundle, "true")
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


def test_device_over_a_directory_fails_clearly(runtime, bundle):
    bundle.config["linux"]["devices"] = [{"path": "/dev/pts", "type": "c", "major": 1, "minor": 3}]
    bundle.write()
    p = run(runtime, bundle, "true")
    assert p.returncode != 0 and "Traceback" not in p.stderr and "/dev/pts" in p.stderr


def test_bind_dev_from_host_skips_device_setup(runtime, bundle, tmp_path):
    """runc's rule: a user bind of /dev means the runtime leaves /dev alone."""
    fake = tmp_path / "mydev"
    fake.mkdir()
    os.mknod(fake / "null", 0o666 | 0o020000, os.makedev(1, 3))
    (fake / "marker").write_text("mine\n")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if not m["destination"].startswith("/dev")]
    bundle.config["mounts"].append({"destination": "/dev", "type": "bind", "source": str(fake), "options": ["rbind"]})
    bundle.write()
    out = run_ok(runtime, bundle, "sh", "-c", "cat /dev/marker; test -e /dev/zero && echo ZERO; true")
    assert out == "mine\n"
    assert sorted(os.listdir(fake)) == ["marker", "null"]


def test_devices_in_user_namespace_are_host_binds(runtime, bundle):
    linux = bundle.config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    linux.pop("resources", None)
    linux["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] not in ("cgroup", "sysfs")]
    bundle.write()
    p = run(runtime, bundle, "sh", "-c", STAT + "/dev/null /dev/kmsg; grep -c ' /dev/kmsg ' /proc/self/mountinfo")
    assert p.returncode == 0, p.stderr
    got = p.stdout.strip().splitlines()
    assert "character special file 1:3" in got[0] and "character special file 1:b" in got[1]
    assert got[2] == "1"  # a bind of the host's node, not mknod


def test_device_missing_on_host_in_user_namespace(runtime, bundle):
    linux = bundle.config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    linux.pop("resources", None)
    linux["devices"] = [{"path": "/dev/pyrunc-no-such-node", "type": "c", "major": 1, "minor": 7}]
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] not in ("cgroup", "sysfs")]
    bundle.write()
    p = run(runtime, bundle, "true")
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "/dev/pyrunc-no-such-node" in p.stderr
