"""config.md "Mounts" and "Root", config-linux.md "Rootfs Mount Propagation": every mount kind is
checked from inside a real container through /proc/self/mountinfo (type, source, flags,
propagation) and by using it."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from rootfs_helpers import at, mountinfo, parse_mountinfo, run, run_ok


def add_mount(bundle, **m) -> None:
    bundle.config["mounts"].append(m)
    bundle.write()


# --- the default mounts -------------------------------------------------------------------------

def test_default_mounts_types_and_flags(runtime, bundle):
    ms = mountinfo(runtime, bundle)
    proc = at(ms, "/proc")
    assert proc.fstype == "proc"
    sys_ = at(ms, "/sys")
    assert sys_.fstype == "sysfs" and {"ro", "nosuid", "nodev", "noexec"} <= sys_.options
    dev = at(ms, "/dev")
    assert dev.fstype == "tmpfs" and "nosuid" in dev.options and "mode=755" in dev.superopts
    assert "size=65536k" in dev.superopts
    pts = at(ms, "/dev/pts")
    assert pts.fstype == "devpts" and {"nosuid", "noexec"} <= pts.options
    assert {"gid=5", "mode=620", "ptmxmode=666"} <= pts.superopts
    shm = at(ms, "/dev/shm")
    assert shm.fstype == "tmpfs" and shm.source == "shm" and {"nosuid", "nodev", "noexec"} <= shm.options
    mq = at(ms, "/dev/mqueue")
    assert mq.fstype == "mqueue" and {"nosuid", "nodev", "noexec"} <= mq.options
    # the root is a private bind (runc makes its parent private): never a peer of the host
    assert at(ms, "/").propagation == "private"


def test_tmpfs_size_mode_uid_gid(runtime, bundle):
    add_mount(bundle, destination="/scratch", type="tmpfs", source="tmpfs",
              options=["size=1m", "mode=1750", "uid=123", "gid=456", "nr_inodes=100"])
    out = run_ok(runtime, bundle, "sh", "-c",
                 "stat -c '%a %u %g' /scratch; grep ' /scratch ' /proc/self/mountinfo")
    perms, line = out.strip().split("\n")
    assert perms == "1750 123 456"
    m = parse_mountinfo(line)[0]
    assert m.fstype == "tmpfs" and {"size=1024k", "nr_inodes=100", "mode=1750", "uid=123",
                                    "gid=456"} <= m.superopts


def test_other_filesystem_types(runtime, bundle):
    add_mount(bundle, destination="/ram", type="ramfs", source="ramfs", options=["mode=700"])
    out = run_ok(runtime, bundle, "sh", "-c",
                 "echo hi > /ram/f && cat /ram/f && grep ' /ram ' /proc/self/mountinfo")
    text, line = out.strip().split("\n")
    assert text == "hi"
    assert parse_mountinfo(line)[0].fstype == "ramfs"


def test_missing_destination_is_created_nested(runtime, bundle):
    add_mount(bundle, destination="/a/b/c", type="tmpfs", source="tmpfs")
    ms = mountinfo(runtime, bundle)
    assert at(ms, "/a/b/c").fstype == "tmpfs"
    assert (bundle.rootfs / "a/b/c").is_dir()


def test_relative_destination_is_made_absolute(runtime, bundle):
    add_mount(bundle, destination="reldest", type="tmpfs", source="tmpfs")
    assert at(mountinfo(runtime, bundle), "/reldest").fstype == "tmpfs"


# --- bind mounts ------------------------------------------------------------------------------

def test_bind_directory_readonly_really_readonly(runtime, bundle, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("from host\n")
    add_mount(bundle, destination="/data", type="bind", source=str(src),
              options=["rbind", "ro", "nosuid", "nodev", "noexec"])
    out = run_ok(runtime, bundle, "sh", "-c",
                 "cat /data/hello; touch /data/x 2>/dev/null && echo WROTE; "
                 "grep ' /data ' /proc/self/mountinfo")
    lines = out.strip().split("\n")
    assert lines[0] == "from host" and "WROTE" not in out
    m = parse_mountinfo(lines[-1])[0]
    assert {"ro", "nosuid", "nodev", "noexec"} <= m.options
    assert not (src / "x").exists()


def test_bind_rw_writes_reach_host(runtime, bundle, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    add_mount(bundle, destination="/data", type="none", source=str(src), options=["bind"])
    run_ok(runtime, bundle, "sh", "-c", "echo written > /data/out")
    assert (src / "out").read_text() == "written\n"


def test_bind_single_file_creates_empty_file_target(runtime, bundle, tmp_path):
    src = tmp_path / "conf"
    src.write_text("file content\n")
    add_mount(bundle, destination="/etc/deep/app.conf", type="bind", source=str(src),
              options=["bind", "ro"])
    out = run_ok(runtime, bundle, "sh", "-c",
                 "cat /etc/deep/app.conf; grep ' /etc/deep/app.conf ' /proc/self/mountinfo")
    text, line = out.strip().split("\n")
    assert text == "file content"
    assert "ro" in parse_mountinfo(line)[0].options
    target = bundle.rootfs / "etc/deep/app.conf"
    assert target.is_file() and target.stat().st_size == 0


def test_bind_relative_source_is_relative_to_bundle(runtime, bundle):
    (bundle.path / "relsrc").mkdir()
    (bundle.path / "relsrc" / "f").write_text("rel\n")
    add_mount(bundle, destination="/rel", type="bind", source="relsrc", options=["bind"])
    assert run_ok(runtime, bundle, "cat", "/rel/f") == "rel\n"


def test_bind_missing_source_fails_cleanly(runtime, bundle, tmp_path):
    add_mount(bundle, destination="/x", type="bind", source=str(tmp_path / "nope"), options=["bind"])
    p = run(runtime, bundle, "true")
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and "nope" in p.stderr


@pytest.fixture
def host_tree_with_submount(tmp_path):
    """src/ with a tmpfs mounted at src/sub: for rbind and the recursive attributes."""
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "subtmp", str(src / "sub")], check=True)
    subprocess.run(["mount", "--make-private", str(src / "sub")], check=True)
    try:
        yield src
    finally:
        subprocess.run(["umount", "-l", str(src / "sub")], check=False)


def test_bind_vs_rbind_submounts(runtime, bundle, host_tree_with_submount):
    src = host_tree_with_submount
    add_mount(bundle, destination="/plain", type="bind", source=str(src), options=["bind"])
    add_mount(bundle, destination="/rec", type="bind", source=str(src), options=["rbind"])
    ms = mountinfo(runtime, bundle)
    points = {m.point for m in ms}
    assert "/rec/sub" in points and "/plain/sub" not in points


def test_rro_makes_submounts_readonly(runtime, bundle, host_tree_with_submount):
    src = host_tree_with_submount
    add_mount(bundle, destination="/rec", type="bind", source=str(src),
              options=["rbind", "rro", "rnosuid", "rnodev", "rnoexec", "rnoatime"])
    out = run_ok(runtime, bundle, "sh", "-c",
                 "touch /rec/sub/x 2>/dev/null && echo WROTE; cat /proc/self/mountinfo")
    assert "WROTE" not in out
    ms = parse_mountinfo(out)
    for point in ("/rec", "/rec/sub"):
        assert {"ro", "nosuid", "nodev", "noexec", "noatime"} <= at(ms, point).options, point


def test_ro_without_rro_leaves_submount_writable(runtime, bundle, host_tree_with_submount):
    src = host_tree_with_submount
    add_mount(bundle, destination="/rec", type="bind", source=str(src), options=["rbind", "ro"])
    ms = mountinfo(runtime, bundle)
    assert "ro" in at(ms, "/rec").options
    assert "rw" in at(ms, "/rec/sub").options


@pytest.fixture
def shared_host_dir(tmp_path):
    """A directory that is a shared mount on the host, so a slave of it has a master."""
    src = tmp_path / "shared"
    src.mkdir()
    subprocess.run(["mount", "--bind", str(src), str(src)], check=True)
    subprocess.run(["mount", "--make-shared", str(src)], check=True)
    try:
        yield src
    finally:
        subprocess.run(["umount", "-R", "-l", str(src)], check=False)


@pytest.mark.parametrize("opt,want", [("private", "private"), ("rprivate", "private"),
                                      ("shared", "shared"), ("rshared", "shared"),
                                      ("slave", "slave"), ("rslave", "slave"),
                                      ("unbindable", "unbindable"), ("runbindable", "unbindable")])
def test_bind_propagation_options(runtime, bundle, shared_host_dir, opt, want):
    src = shared_host_dir
    add_mount(bundle, destination="/prop", type="bind", source=str(src), options=["rbind", opt])
    assert at(mountinfo(runtime, bundle), "/prop").propagation == want


@pytest.mark.parametrize("opts,want,absent", [
    (["noatime"], {"noatime"}, {"relatime"}),
    (["strictatime"], set(), {"relatime", "noatime"}),
    (["relatime", "nodiratime"], {"relatime", "nodiratime"}, set()),
    (["sync", "dirsync"], {"sync", "dirsync"}, set()),
    (["nosymfollow"], {"nosymfollow"}, set()),
])
def test_flag_options_on_tmpfs(runtime, bundle, opts, want, absent):
    add_mount(bundle, destination="/t", type="tmpfs", source="tmpfs", options=opts)
    m = at(mountinfo(runtime, bundle), "/t")
    assert want <= m.options | m.superopts, m
    assert not (absent & m.options), m


def test_unknown_options_are_filesystem_data(runtime, bundle):
    add_mount(bundle, destination="/t", type="tmpfs", source="tmpfs", options=["huge=never", "nr_inodes=77"])
    m = at(mountinfo(runtime, bundle), "/t")
    assert "nr_inodes=77" in m.superopts


def test_bad_filesystem_data_fails_cleanly(runtime, bundle):
    add_mount(bundle, destination="/t", type="tmpfs", source="tmpfs", options=["nosuchoption=1"])
    p = run(runtime, bundle, "true")
    assert p.returncode != 0 and "Traceback" not in p.stderr and "/t" in p.stderr


def test_remount_option_changes_flags_of_existing_mount(runtime, bundle):
    add_mount(bundle, destination="/t", type="tmpfs", source="tmpfs", options=["rw"])
    add_mount(bundle, destination="/t", type="tmpfs", source="tmpfs", options=["remount", "ro"])
    out = run_ok(runtime, bundle, "sh", "-c", "touch /t/x 2>/dev/null && echo WROTE; cat /proc/self/mountinfo")
    assert "WROTE" not in out
    ms = [m for m in parse_mountinfo(out) if m.point == "/t"]
    assert len(ms) == 1 and "ro" in ms[0].options


def test_tmpcopyup_copies_rootfs_contents(runtime, bundle):
    (bundle.rootfs / "etc" / "copied").mkdir(parents=True)
    (bundle.rootfs / "etc" / "copied" / "f").write_text("orig\n")
    os.chmod(bundle.rootfs / "etc" / "copied", 0o710)
    os.symlink("copied/f", bundle.rootfs / "etc" / "link")
    add_mount(bundle, destination="/etc", type="tmpfs", source="tmpfs", options=["tmpcopyup", "mode=755"])
    out = run_ok(runtime, bundle, "sh", "-c",
                 "cat /etc/copied/f /etc/link; stat -c %a /etc/copied; echo new > /etc/copied/f; "
                 "grep ' /etc ' /proc/self/mountinfo")
    lines = out.strip().split("\n")
    assert lines[:3] == ["orig", "orig", "710"]
    assert parse_mountinfo(lines[3])[0].fstype == "tmpfs"
    assert (bundle.rootfs / "etc" / "copied" / "f").read_text() == "orig\n"


# --- overlay ----------------------------------------------------------------------------------

def test_overlay_mount_from_config(runtime, bundle, tmp_path):
    lower1, lower2, upper, work = (tmp_path / n for n in ("lower1", "lower2", "upper", "work"))
    for d in (lower1, lower2, upper, work):
        d.mkdir()
    (lower1 / "a").write_text("lower1-a\n")
    (lower2 / "a").write_text("lower2-a\n")
    (lower2 / "b").write_text("lower2-b\n")
    add_mount(bundle, destination="/merged", type="overlay", source="overlay",
              options=[f"lowerdir={lower1}:{lower2}", f"upperdir={upper}", f"workdir={work}"])
    out = run_ok(runtime, bundle, "sh", "-c",
                 "cat /merged/a /merged/b; echo new > /merged/c; rm /merged/b; "
                 "grep ' /merged ' /proc/self/mountinfo")
    lines = out.strip().split("\n")
    assert lines[:2] == ["lower1-a", "lower2-b"]
    m = parse_mountinfo(lines[2])[0]
    assert m.fstype == "overlay" and f"upperdir={upper}" in m.superopts
    assert (upper / "c").read_text() == "new\n"
    assert (lower2 / "b").exists()  # the lower layers are untouched; a whiteout hides b
    assert (upper / "b").is_char_device()


def test_overlay_readonly_lowers_only(runtime, bundle, tmp_path):
    l1, l2 = tmp_path / "l1", tmp_path / "l2"
    l1.mkdir(), l2.mkdir()
    (l2 / "x").write_text("x\n")
    add_mount(bundle, destination="/ov", type="overlay", source="overlay",
              options=[f"lowerdir={l1}:{l2}"])
    out = run_ok(runtime, bundle, "sh", "-c", "cat /ov/x; touch /ov/y 2>/dev/null && echo WROTE; true")
    assert out == "x\n"


# --- cgroup -----------------------------------------------------------------------------------

def _cgroup_layout() -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == "/sys/fs/cgroup":
                return "v2" if " - cgroup2 " in line else "v1"
    return "none"


@pytest.mark.parametrize("cgroupns", [True, False])
def test_cgroup_mount(runtime, bundle, cgroupns):
    ns = bundle.config["linux"]["namespaces"]
    if not cgroupns:
        bundle.config["linux"]["namespaces"] = [n for n in ns if n["type"] != "cgroup"]
    bundle.write()
    out = run_ok(runtime, bundle, "sh", "-c", "cat /proc/self/mountinfo; echo ==; cat /proc/self/cgroup")
    info, cg = out.split("==\n")
    ms = parse_mountinfo(info)
    top = at(ms, "/sys/fs/cgroup")
    assert {"ro", "nosuid", "nodev", "noexec"} <= top.options
    if _cgroup_layout() == "v1":
        assert top.fstype == "tmpfs"
        subs = {m.point: m for m in ms if m.point.startswith("/sys/fs/cgroup/")}
        for name in ("memory", "pids", "devices", "freezer"):
            hits = [m for p, m in subs.items() if name in p.rsplit("/", 1)[-1].split(",")]
            assert hits, f"no {name} hierarchy in {sorted(subs)}"
            assert hits[0].fstype == "cgroup" and "ro" in hits[0].options
        memory = next(m for p, m in subs.items() if p.endswith("/memory"))
        if cgroupns:
            assert memory.root == "/"
            assert "0::/" in cg or ":/\n" in cg
        else:
            assert memory.root != "/"  # a bind of the container's own cgroup
    else:
        assert top.fstype == "cgroup2"


def test_cgroup_mount_shows_own_cgroup_files(runtime, bundle):
    out = run_ok(runtime, bundle, "sh", "-c", "ls /sys/fs/cgroup/; ls /sys/fs/cgroup/memory/ 2>/dev/null | head -3")
    assert out.strip()


# --- root -------------------------------------------------------------------------------------

def test_root_readonly(runtime, bundle):
    bundle.config["root"]["readonly"] = True
    bundle.write()
    out = run_ok(runtime, bundle, "sh", "-c",
                 "touch /newfile 2>/dev/null && echo WROTE; echo ok > /dev/shm/x && cat /dev/shm/x; "
                 "cat /proc/self/mountinfo")
    lines = out.strip().split("\n")
    assert "WROTE" not in out and lines[0] == "ok"
    assert "ro" in at(parse_mountinfo(out), "/").options
    assert not (bundle.rootfs / "newfile").exists()


# the root is a bind of a privatised parent (as runc does it): slave of nothing is private
@pytest.mark.parametrize("prop,want", [("private", "private"), ("rprivate", "private"),
                                       ("slave", "private"), ("rslave", "private"),
                                       ("shared", "shared"), ("rshared", "shared"),
                                       ("unbindable", "unbindable"), ("runbindable", "unbindable")])
def test_rootfs_propagation(runtime, bundle, prop, want):
    bundle.config["linux"]["rootfsPropagation"] = prop
    bundle.write()
    assert at(mountinfo(runtime, bundle), "/").propagation == want


def test_rootfs_propagation_invalid(runtime, bundle):
    bundle.config["linux"]["rootfsPropagation"] = "sideways"
    bundle.write()
    p = run(runtime, bundle, "true")
    assert p.returncode != 0 and "Traceback" not in p.stderr and "sideways" in p.stderr


def _grant_sys_admin(bundle) -> None:
    for kind in ("bounding", "effective", "permitted"):
        bundle.config["process"]["capabilities"][kind].append("CAP_SYS_ADMIN")


def test_rootfs_propagation_shared_reaches_host_bind(runtime, bundle, shared_host_dir):
    """rshared with a shared bind: a mount the container makes there shows up on the host, which
    is what rootfsPropagation=shared is for."""
    shared = shared_host_dir
    _grant_sys_admin(bundle)
    try:
        bundle.config["linux"]["rootfsPropagation"] = "rshared"
        add_mount(bundle, destination="/shared", type="bind", source=str(shared), options=["rbind", "rshared"])
        cid = runtime.new_id()
        bundle.set_args("sh", "-c", "mkdir -p /shared/m && mount -t tmpfs inner /shared/m")
        p = runtime("run", "--bundle", str(bundle.path), cid)
        assert p.returncode == 0, p.stderr
        with open("/proc/self/mountinfo") as f:
            host = f.read()
        assert f" {shared}/m " in host
    finally:
        subprocess.run(["umount", str(shared / "m")], check=False)


def test_default_propagation_host_to_container_only(runtime, bundle, shared_host_dir, tmp_path):
    """rslave (the default): a mount the host makes under a shared volume reaches the created
    container; a mount the container makes there never reaches the host."""
    vol = shared_host_dir
    (vol / "a").mkdir()
    (vol / "b").mkdir()
    _grant_sys_admin(bundle)
    add_mount(bundle, destination="/vol", type="bind", source=str(vol), options=["rbind"])
    bundle.set_args("sh", "-c", "mount -t tmpfs fromctr /vol/b; grep -c ' /vol/a ' /proc/self/mountinfo")
    cid = runtime.new_id()
    out = tmp_path / "out"
    with open(out, "w") as f:
        runtime("create", "--bundle", str(bundle.path), cid, check=True, capture_output=False,
                stdout=f, stderr=f)
    subprocess.run(["mount", "-t", "tmpfs", "fromhost", str(vol / "a")], check=True)
    try:
        runtime("start", cid, check=True)
        for _ in range(200):
            if runtime.state(cid)["status"] == "stopped":
                break
            time.sleep(0.02)
        with open("/proc/self/mountinfo") as f:
            host = f.read()
        assert f" {vol}/b " not in host
        assert out.read_text().strip() == "1"
    finally:
        subprocess.run(["umount", str(vol / "a")], check=False)


def test_no_pivot(runtime, bundle):
    bundle.set_args("sh", "-c", "ls /; cat /proc/self/mountinfo")
    cid = runtime.new_id()
    p = runtime("run", "--no-pivot", "--bundle", str(bundle.path), cid)
    assert p.returncode == 0, p.stderr
    assert "bin" in p.stdout.split()
    ms = parse_mountinfo(p.stdout)
    assert at(ms, "/proc").fstype == "proc"


def test_mount_label_ignored_without_selinux(runtime, bundle):
    if os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is active here")
    bundle.config["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0:c1,c2"
    bundle.write()
    m = at(mountinfo(runtime, bundle), "/dev/shm")
    assert not any(o.startswith("context=") for o in m.superopts)


# --- idmapped mounts --------------------------------------------------------------------------

def _userns_config(bundle, size: int = 65536, host: int = 100000) -> None:
    linux = bundle.config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]
    linux.pop("resources", None)
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] not in ("cgroup", "sysfs")]
    bundle.config["mounts"].append({"destination": "/sys", "type": "none", "source": "/sys",
                                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] != "devpts"] + [
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}]
    d = bundle.path
    while d != d.parent:  # the mapped root must reach its rootfs through pytest's 0700 dirs
        d.chmod(d.stat().st_mode | 0o005)
        d = d.parent
    for root, dirs, files in os.walk(bundle.rootfs):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), host, host)
    os.lchown(bundle.rootfs, host, host)


def test_idmapped_bind_mount(runtime, bundle, tmp_path):
    _userns_config(bundle)
    src = tmp_path / "idsrc"
    src.mkdir()
    (src / "owned").write_text("x")
    os.chown(src / "owned", 0, 0)
    os.chmod(src, 0o777)
    add_mount(bundle, destination="/idm", type="bind", source=str(src), options=["rbind", "idmap"],
              uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
              gidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}])
    out = run_ok(runtime, bundle, "sh", "-c",
                 "stat -c '%u:%g' /idm/owned; touch /idm/made; stat -c '%u:%g' /idm/made; "
                 "grep ' /idm ' /proc/self/mountinfo")
    lines = out.strip().split("\n")
    assert lines[0] == "0:0" and lines[1] == "0:0"
    assert "idmapped" in parse_mountinfo(lines[2])[0].options
    st = (src / "made").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)  # container root writes as host root through the map


def test_idmapped_mount_without_container_userns(runtime, bundle, tmp_path):
    """runc 1.2 allows mappings on a mount of a container without a user namespace."""
    src = tmp_path / "idsrc"
    src.mkdir()
    (src / "f").write_text("x")
    os.chown(src / "f", 5003, 6004)
    add_mount(bundle, destination="/idm", type="bind", source=str(src), options=["bind"],
              uidMappings=[{"containerID": 5000, "hostID": 1000, "size": 10}],
              gidMappings=[{"containerID": 6000, "hostID": 1000, "size": 10}])
    out = run_ok(runtime, bundle, "stat", "-c", "%u:%g", "/idm/f")
    # as with a user namespace: the on-disk id is the "container" side of the map
    assert out.strip() == "1003:1004"
