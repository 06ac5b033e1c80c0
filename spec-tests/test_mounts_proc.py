"""runc's checkProcMount: nothing may be mounted over the container's /proc but the files lxcfs
emulates, and /proc itself takes only a procfs. Judged where a mount really lands, symlinks in the
rootfs resolved."""
from __future__ import annotations

import os


def _add_mount(bundle, **m) -> None:
    bundle.config["mounts"].append(m)
    bundle.write()


def _refused(runtime, bundle, *needles: str) -> None:
    cid = runtime.new_id("procmnt")
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in p.stderr, p.stderr
    assert runtime("state", cid).returncode != 0


def _run(runtime, bundle, script: str) -> str:
    bundle.set_args("sh", "-c", script)
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id("procmnt"))
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_lxcfs_style_file_over_an_allowed_proc_file(runtime, bundle, tmp_path):
    fake = tmp_path / "uptime"
    fake.write_text("12345.67 890.12\n")
    _add_mount(bundle, destination="/proc/uptime", type="bind", source=str(fake), options=["rbind", "ro"])
    assert _run(runtime, bundle, "cat /proc/uptime") == "12345.67 890.12\n"


def test_host_proc_file_over_an_allowed_proc_file(runtime, bundle):
    _add_mount(bundle, destination="/proc/meminfo", type="bind", source="/proc/meminfo", options=["bind"])
    assert "MemTotal" in _run(runtime, bundle, "cat /proc/meminfo")


def test_bind_over_other_proc_files_refused(runtime, bundle, tmp_path):
    fake = tmp_path / "version"
    fake.write_text("Linux fake\n")
    _add_mount(bundle, destination="/proc/version", type="bind", source=str(fake), options=["bind"])
    _refused(runtime, bundle, "/proc/version", "inside /proc")


def test_tmpfs_under_proc_refused(runtime, bundle):
    _add_mount(bundle, destination="/proc/sys", type="tmpfs", source="tmpfs", options=["nosuid"])
    _refused(runtime, bundle, "/proc/sys", "inside /proc")


def test_proc_under_proc_refused(runtime, bundle):
    _add_mount(bundle, destination="/proc/bus", type="proc", source="proc")
    _refused(runtime, bundle, "inside /proc")


def test_through_a_symlink_in_the_rootfs_refused(runtime, bundle, tmp_path):
    os.symlink("/proc", bundle.rootfs / "innocent")
    fake = tmp_path / "version"
    fake.write_text("Linux fake\n")
    _add_mount(bundle, destination="/innocent/version", type="bind", source=str(fake), options=["bind"])
    _refused(runtime, bundle, "/proc/version", "inside /proc")


def test_non_procfs_bind_over_proc_refused(runtime, bundle, tmp_path):
    d = tmp_path / "notproc"
    d.mkdir()
    _add_mount(bundle, destination="/proc", type="bind", source=str(d), options=["rbind"])
    _refused(runtime, bundle, "only a proc filesystem")


def test_procfs_bind_over_proc_allowed(runtime, bundle):
    _add_mount(bundle, destination="/proc", type="bind", source="/proc", options=["bind"])
    assert _run(runtime, bundle, "test -e /proc/self/status && echo ok") == "ok\n"


def test_a_sibling_named_like_proc_is_not_proc(runtime, bundle, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "f").write_text("x")
    _add_mount(bundle, destination="/procx", type="bind", source=str(d), options=["rbind"])
    assert _run(runtime, bundle, "cat /procx/f") == "x"
