"""config.md "Process" basics of the walking skeleton: args, env, cwd, user, and the rootfs
(root.path, root.readonly, --no-pivot, default mounts and /dev)."""
from __future__ import annotations


def run(runtime, bundle, *args: str, extra: tuple[str, ...] = ()) -> str:
    bundle.set_args(*args)
    p = runtime("run", *extra, "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_env_cwd_and_args(runtime, bundle):
    bundle.config["process"]["env"] = ["PATH=/bin", "GREETING=hello world"]
    bundle.config["process"]["cwd"] = "/work/dir"
    out = run(runtime, bundle, "sh", "-c", 'echo "$GREETING|$(pwd)|$0"', "arg0")
    assert out.strip() == "hello world|/work/dir|arg0"


def test_user_uid_gid_additional_gids(runtime, bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20]}
    out = run(runtime, bundle, "sh", "-c", "id -u; id -g; id -G")
    uid, gid, groups = out.split("\n")[:3]
    assert (uid, gid) == ("1000", "1001")
    assert sorted(groups.split()) == ["10", "1001", "20"]


def test_readonly_root(runtime, bundle):
    bundle.config["root"]["readonly"] = True
    out = run(runtime, bundle, "sh", "-c", "touch /x 2>/dev/null && echo writable || echo readonly; "
                                           "touch /dev/shm/ok && echo shm-ok")
    assert out.split() == ["readonly", "shm-ok"]
    assert not (bundle.rootfs / "x").exists()


def test_no_pivot(runtime, bundle):
    out = run(runtime, bundle, "sh", "-c", "echo $$; ls /", extra=("--no-pivot",))
    lines = out.split()
    assert lines[0] == "1" and "bin" in lines


def test_default_mounts_and_devices(runtime, bundle):
    out = run(runtime, bundle, "sh", "-c",
              "cat /proc/self/mountinfo; ls -l /dev/null /dev/zero /dev/full /dev/random "
              "/dev/urandom /dev/tty; for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done")
    mounts = {}
    for line in out.splitlines():
        if " - " in line:
            left, right = line.split(" - ")
            mounts[left.split()[4]] = right.split()[0]
    assert mounts["/proc"] == "proc"
    assert mounts["/sys"] == "sysfs"
    assert mounts["/dev"] == "tmpfs"
    assert mounts["/dev/pts"] == "devpts"
    assert mounts["/dev/shm"] == "tmpfs"
    assert mounts["/dev/mqueue"] == "mqueue"
    for dev, numbers in {"null": "1, 3", "zero": "1, 5", "full": "1, 7", "random": "1, 8",
                         "urandom": "1, 9", "tty": "5, 0"}.items():
        line = next(l for l in out.splitlines() if l.endswith(f"/dev/{dev}"))
        major, minor = numbers.split(", ")
        assert line.startswith("crw-rw-rw-") and f" {major}, " in line and line.split()[5] == minor, line
    assert ["pts/ptmx", "/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1",
            "/proc/self/fd/2"] == out.split()[-5:]


def test_bind_mount_of_a_host_directory(runtime, bundle, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "from-host").write_text("hi\n")
    bundle.config["mounts"].append({"destination": "/mnt/shared", "type": "bind",
                                    "source": str(shared), "options": ["rbind", "rw"]})
    out = run(runtime, bundle, "sh", "-c", "cat /mnt/shared/from-host; echo back > /mnt/shared/from-ct")
    assert out == "hi\n"
    assert (shared / "from-ct").read_text() == "back\n"


def test_exec_lookup_uses_container_path(runtime, bundle):
    bundle.config["process"]["env"] = ["PATH=/nowhere"]
    bundle.set_args("true")
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 1
    assert 'executable file not found in $PATH' in p.stderr


def test_init_does_not_inherit_the_runtimes_cpu_affinity(runtime, bundle):
    import os
    import subprocess
    if (os.cpu_count() or 1) < 2:
        import pytest
        pytest.skip("needs two CPUs")
    bundle.set_args("sh", "-c", "grep Cpus_allowed_list /proc/self/status")
    out = bundle.path / "out"
    with open(out, "w") as f:
        code = subprocess.run(runtime.cmd("run", "--bundle", str(bundle.path), runtime.new_id()),
                              stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60,
                              preexec_fn=lambda: os.sched_setaffinity(0, {1})).returncode
    assert code == 0, out.read_text()
    assert out.read_text().split()[-1] == f"0-{os.cpu_count() - 1}"


def test_preserve_fds_passes_extra_fds_and_nothing_else(runtime, bundle, tmp_path):
    """--preserve-fds N hands fds 3..3+N-1 to the container; any other fd of ours is closed."""
    import os
    import subprocess
    data = tmp_path / "data"
    data.write_text("through fd 3\n")
    bundle.set_args("sh", "-c", "cat <&3; [ -e /proc/1/fd/4 ] && echo fd4-leaked; echo end")
    out = tmp_path / "out"
    fd3 = os.open(data, os.O_RDONLY)
    fd4 = os.open(data, os.O_RDONLY)  # inherited by pyrunc but not preserved: must not get in
    try:
        with open(out, "w") as f:
            code = subprocess.run(runtime.cmd("run", "--preserve-fds", "1", "--bundle", str(bundle.path),
                                              runtime.new_id()),
                                  stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  pass_fds=(3, 4), timeout=60,
                                  preexec_fn=lambda: (os.dup2(fd3, 3), os.dup2(fd4, 4))).returncode
    finally:
        os.close(fd3)
        os.close(fd4)
    text = out.read_text()
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0] == "through fd 3"
    assert lines[1:] == ["end"], text
