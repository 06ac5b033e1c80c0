"""config-linux.md "Masked Paths" and "Readonly Paths", checked from inside real containers."""
from __future__ import annotations

import os

from rootfs_helpers import at, parse_mountinfo, run, run_ok


def test_default_masked_paths(runtime, bundle):
    out = run_ok(runtime, bundle, "sh", "-c",
                 "wc -c < /proc/keys; ls -A /proc/acpi | wc -l; ls -A /sys/firmware | wc -l; "
                 "cat /proc/self/mountinfo")
    lines = out.split("\n")
    assert [x.strip() for x in lines[:3]] == ["0", "0", "0"]
    ms = parse_mountinfo(out)
    for f in ("/proc/keys", "/proc/kcore", "/proc/timer_list", "/proc/sched_debug"):
        if os.path.exists(f):  # a path the kernel lacks is skipped, as with runc
            m = at(ms, f)
            assert m.fstype == "tmpfs" and m.root == "/null", f  # a bind of the /dev tmpfs's null
        else:
            assert f not in {m.point for m in ms}
    for d in ("/proc/acpi", "/sys/firmware", "/proc/scsi"):
        if os.path.isdir(d):
            m = at(ms, d)
            assert m.fstype == "tmpfs" and "ro" in m.options and "ro" in m.superopts, d


def test_masked_file_and_dir_in_rootfs(runtime, bundle):
    (bundle.rootfs / "secret").mkdir()
    (bundle.rootfs / "secret" / "key").write_text("hidden\n")
    (bundle.rootfs / "etc" / "token").write_text("hidden\n")
    bundle.config["linux"]["maskedPaths"] = ["/secret", "/etc/token", "/does/not/exist"]
    bundle.write()
    out = run_ok(runtime, bundle, "sh", "-c",
                 "ls -A /secret | wc -l; cat /etc/token | wc -c; touch /secret/x 2>/dev/null && echo WROTE;"
                 "echo data > /etc/token; cat /etc/token | wc -c; stat -c '%t:%T' /etc/token")
    assert out.split() == ["0", "0", "0", "1:3"]
    assert (bundle.rootfs / "etc" / "token").read_text() == "hidden\n"
    assert (bundle.rootfs / "secret" / "key").exists()


def test_masked_symlink_inside_container_masks_its_target(runtime, bundle):
    (bundle.rootfs / "etc" / "real").write_text("hidden\n")
    os.symlink("/etc/real", bundle.rootfs / "etc" / "alias")
    bundle.config["linux"]["maskedPaths"] = ["/etc/alias"]
    bundle.write()
    assert run_ok(runtime, bundle, "sh", "-c", "cat /etc/real | wc -c").strip() == "0"


def test_default_readonly_paths(runtime, bundle):
    out = run_ok(runtime, bundle, "sh", "-c",
                 "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo WROTE; cat /proc/self/mountinfo")
    assert "WROTE" not in out
    ms = parse_mountinfo(out)
    for p in ("/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger"):
        if not os.path.exists(p):
            continue
        m = at(ms, p)
        assert m.fstype == "proc" and "ro" in m.options, p


def test_readonly_path_is_recursive(runtime, bundle):
    (bundle.rootfs / "data" / "sub").mkdir(parents=True)
    bundle.config["mounts"].append({"destination": "/data/sub", "type": "tmpfs", "source": "tmpfs"})
    bundle.config["linux"]["readonlyPaths"] = ["/data", "/not/there"]
    bundle.write()
    out = run_ok(runtime, bundle, "sh", "-c",
                 "touch /data/a 2>/dev/null && echo WROTE1; touch /data/sub/b 2>/dev/null && echo WROTE2;"
                 "cat /proc/self/mountinfo")
    assert "WROTE" not in out
    ms = parse_mountinfo(out)
    assert "ro" in at(ms, "/data").options and "ro" in at(ms, "/data/sub").options


def test_readonly_file_in_rootfs(runtime, bundle):
    (bundle.rootfs / "etc" / "conf").write_text("orig\n")
    bundle.config["linux"]["readonlyPaths"] = ["/etc/conf"]
    bundle.write()
    out = run_ok(runtime, bundle, "sh", "-c", "echo new > /etc/conf 2>/dev/null && echo WROTE; cat /etc/conf")
    assert out == "orig\n"


def test_masked_path_with_root_readonly_and_userns_free(runtime, bundle):
    bundle.config["root"]["readonly"] = True
    bundle.config["linux"]["maskedPaths"] = ["/etc"]
    bundle.write()
    out = run_ok(runtime, bundle, "sh", "-c", "ls -A /etc | wc -l")
    assert out.strip() == "0"


def test_unmasking_is_not_possible_without_caps(runtime, bundle):
    p = run(runtime, bundle, "sh", "-c", "umount /proc/kcore")
    assert p.returncode != 0
