"""config-linux.md "Namespaces", hostname and domainname: new namespaces differ from the host's,
`path` namespaces are joined."""
from __future__ import annotations

import os

KINDS = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
         "cgroup": "cgroup", "time": "time"}


def ns_inodes_inside(runtime, bundle, cid: str) -> dict[str, str]:
    script = "; ".join(f"echo {k}=$(readlink /proc/self/ns/{v})" for k, v in KINDS.items())
    bundle.set_args("sh", "-c", script)
    p = runtime("run", "--bundle", str(bundle.path), cid)
    assert p.returncode == 0, p.stderr
    return dict(line.split("=", 1) for line in p.stdout.split())


def test_every_new_namespace_differs_from_host(runtime, bundle):
    bundle.config["linux"]["namespaces"] = [{"type": t} for t in KINDS]
    inside = ns_inodes_inside(runtime, bundle, runtime.new_id())
    for kind, name in KINDS.items():
        assert inside[kind] != os.readlink(f"/proc/self/ns/{name}"), kind


def test_shared_namespace_is_the_hosts(runtime, bundle):
    bundle.config["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid"}]
    bundle.config.pop("hostname", None)
    inside = ns_inodes_inside(runtime, bundle, runtime.new_id())
    assert inside["network"] == os.readlink("/proc/self/ns/net")
    assert inside["ipc"] == os.readlink("/proc/self/ns/ipc")
    assert inside["pid"] != os.readlink("/proc/self/ns/pid")


def test_join_namespaces_by_path(runtime, bundle, tmp_path):
    bundle.set_args("sleep", "30")
    first = runtime.new_id()
    runtime("run", "-d", "--bundle", str(bundle.path), first, check=True)
    pid = runtime.state(first)["pid"]
    want = {k: os.readlink(f"/proc/{pid}/ns/{KINDS[k]}") for k in ("network", "ipc", "uts")}
    bundle.config["linux"]["namespaces"] = [
        {"type": "mount"}, {"type": "pid"},
        *({"type": k, "path": f"/proc/{pid}/ns/{KINDS[k]}"} for k in want),
    ]
    bundle.config.pop("hostname", None)
    inside = ns_inodes_inside(runtime, bundle, runtime.new_id())
    for kind, inode in want.items():
        assert inside[kind] == inode, kind
    runtime("delete", "--force", first, check=True)


def test_join_missing_namespace_path_fails_cleanly(runtime, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "time", "path": "/proc/999999999/ns/time"})
    bundle.write()
    cid = runtime.new_id()
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "time" in p.stderr
    assert not (runtime.root / cid).exists()


def test_hostname_and_domainname(runtime, bundle):
    bundle.config["hostname"] = "box"
    bundle.config["domainname"] = "example.test"
    bundle.set_args("sh", "-c", "hostname; cat /proc/sys/kernel/domainname")
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.stdout.split() == ["box", "example.test"], p.stderr
    assert os.uname().nodename != "box"
