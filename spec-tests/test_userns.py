"""config-linux.md user namespaces (uidMappings, gidMappings, joining by path) and time namespace
offsets, checked from inside the container."""
from __future__ import annotations

import os
import subprocess

import pytest

HOST_BASE = 200000
SIZE = 65536


def chown_tree(root, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            os.lchown(name, uid, gid)


def reachable(path) -> None:
    """The namespace's root is host uid HOST_BASE: like runc, it needs search permission on every
    directory above the rootfs (pytest makes its temporary directories 0700)."""
    p = os.path.abspath(path)
    while p != "/":
        mode = os.stat(p).st_mode
        if not mode & 0o001:
            os.chmod(p, (mode & 0o7777) | 0o001)
        p = os.path.dirname(p)


def userns_bundle(bundle, *, time_offsets: dict | None = None):
    chown_tree(bundle.rootfs, HOST_BASE, HOST_BASE)
    reachable(bundle.path)
    linux = bundle.config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": SIZE}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": SIZE}]
    if time_offsets:
        linux["namespaces"].append({"type": "time"})
        linux["timeOffsets"] = time_offsets
    return bundle


def run(runtime, bundle, script: str) -> str:
    bundle.set_args("sh", "-c", script)
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_container_root_maps_to_the_given_host_ids(runtime, bundle):
    userns_bundle(bundle)
    out = run(runtime, bundle, "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; touch /made")
    lines = [l.split() for l in out.splitlines()]
    assert lines[0] == ["0", str(HOST_BASE), str(SIZE)]
    assert lines[1] == ["0", str(HOST_BASE), str(SIZE)]
    assert lines[2:] == [["0"], ["0"]]
    st = (bundle.rootfs / "made").stat()
    assert (st.st_uid, st.st_gid) == (HOST_BASE, HOST_BASE)


def test_user_and_groups_inside_the_namespace(runtime, bundle):
    userns_bundle(bundle)
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5]}
    out = run(runtime, bundle, "id -u; id -g; id -G; cat /proc/self/setgroups; touch /tmp/f")
    assert out.split() == ["1000", "1000", "1000", "5", "allow"]
    st = (bundle.rootfs / "tmp" / "f").stat()
    assert (st.st_uid, st.st_gid) == (HOST_BASE + 1000, HOST_BASE + 1000)


def test_capabilities_are_the_namespace_root_s(runtime, bundle):
    userns_bundle(bundle)
    bundle.config["process"]["capabilities"] = {k: ["CAP_SYS_ADMIN", "CAP_CHOWN"]
                                                for k in ("bounding", "effective", "permitted")}
    out = run(runtime, bundle, "grep CapEff /proc/self/status; chown 123:123 /tmp && stat -c %u /tmp")
    assert out.split() == ["CapEff:", f"{(1 << 21) | 1:016x}", "123"]


def test_unmapped_user_is_a_clear_error(runtime, bundle):
    userns_bundle(bundle)
    bundle.config["process"]["user"] = {"uid": SIZE + 5, "gid": 0}
    bundle.set_args("true")
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 1 and f"uid {SIZE + 5}" in p.stderr and "Traceback" not in p.stderr


def test_time_offsets(runtime, bundle):
    day = 86400
    userns_bundle(bundle, time_offsets={"boottime": {"secs": 100 * day}, "monotonic": {"secs": 10 * day}})
    out = run(runtime, bundle, "cat /proc/uptime")
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert 100 * day + host - 5 < float(out.split()[0]) < 100 * day + host + 60


def test_time_offsets_without_user_namespace(runtime, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 3 * 86400, "nanosecs": 5}}
    out = run(runtime, bundle, "cat /proc/uptime")
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert 3 * 86400 + host - 5 < float(out.split()[0]) < 3 * 86400 + host + 60


def test_join_an_existing_user_namespace_by_path(runtime, bundle):
    """A holder process owns a user namespace we map ourselves; the container joins it by path
    and pyrunc writes no maps of its own."""
    import time
    holder = subprocess.Popen(["unshare", "--user", "sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{holder.pid}/ns/user") == os.readlink("/proc/self/ns/user"):
            assert time.monotonic() < deadline, "unshare did not make its user namespace"
            time.sleep(0.01)
        for kind in ("uid", "gid"):
            with open(f"/proc/{holder.pid}/{kind}_map", "w") as f:
                f.write(f"0 {HOST_BASE} {SIZE}\n")
        chown_tree(bundle.rootfs, HOST_BASE, HOST_BASE)
        reachable(bundle.path)
        bundle.config["linux"]["namespaces"].append({"type": "user", "path": f"/proc/{holder.pid}/ns/user"})
        out = run(runtime, bundle, "cat /proc/self/uid_map; id -u")
        assert out.split() == ["0", str(HOST_BASE), str(SIZE), "0"]
    finally:
        holder.kill()
        holder.wait()
