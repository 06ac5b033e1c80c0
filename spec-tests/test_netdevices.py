"""linux.netDevices (runtime-spec 1.3): host interfaces move into the container's network namespace
under their new names, keep their addresses, come up, and go back to the host on delete.

This kernel has no `dummy` link type, so the devices are one end of a veth pair: the other end stays
on the host and proves the device was given back rather than destroyed (a veth dies with its
namespace, taking its peer along).
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

if os.geteuid() != 0:
    pytest.skip("moving network devices needs root", allow_module_level=True)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _link(name: str, netns_pid: int | None = None) -> dict | None:
    pre = ["nsenter", "-t", str(netns_pid), "-n"] if netns_pid else []
    p = subprocess.run([*pre, "ip", "-j", "addr", "show", "dev", name], capture_output=True, text=True)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout)[0]


def _addrs(link: dict) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("scope") != "link"}


@pytest.fixture
def veth():
    """A veth pair `pyrXXXXa` (to lend) / `pyrXXXXb` (stays on the host), with addresses; both gone
    after the test whatever it did."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"pyr{tag}a", f"pyr{tag}b"
    _ip("link", "add", a, "type", "veth", "peer", "name", b)
    try:
        _ip("addr", "add", "10.201.7.1/24", "dev", a)
        _ip("addr", "add", "10.201.8.1/24", "dev", a, "label", f"{a}:s")
        _ip("addr", "add", "fd00:201::1/64", "dev", a, "nodad")
        _ip("link", "set", a, "up")
        _ip("link", "set", b, "up")
        yield a, b
    finally:
        for name in (a, b, f"pyr{tag}c"):
            _ip("link", "del", name, check=False)


HOST_ADDRS = {"10.201.7.1/24", "10.201.8.1/24", "fd00:201::1/64"}


def _lend(bundle, devices: dict, *args: str) -> None:
    bundle.config["linux"]["netDevices"] = devices
    bundle.set_args(*(args or ("sleep", "100")))


def test_moved_renamed_addressed_up_and_given_back(runtime, bundle, veth):
    a, b = veth
    _lend(bundle, {a: {"name": "eth7"}})
    cid = runtime.new_id("netdev")
    runtime("create", "--bundle", str(bundle.path), cid, check=True)
    pid = runtime.state(cid)["pid"]
    assert _link(a) is None, "the device is still on the host"
    inside = _link("eth7", pid)
    assert inside is not None, "the device is not in the container under its new name"
    assert _addrs(inside) == HOST_ADDRS
    assert "UP" in inside["flags"]
    labels = {a_["label"] for a_ in inside["addr_info"] if a_.get("family") == "inet"}
    assert labels == {"eth7", "eth7:s"}  # IPv4 labels follow the rename

    runtime("start", cid, check=True)
    runtime("delete", "--force", cid, check=True)
    back = _link(a)
    assert back is not None, "the device was not given back under its original name"
    assert _addrs(back) == HOST_ADDRS
    assert "UP" in back["flags"]
    assert _link(b) is not None  # the peer lives: the device was moved, not destroyed


def test_container_sees_the_device(runtime, bundle, veth):
    a, _ = veth
    _lend(bundle, {a: {"name": "net0"}}, "sh", "-c", "ip -o addr show dev net0")
    cid = runtime.new_id("netdev")
    p = runtime("run", "--bundle", str(bundle.path), cid)
    assert p.returncode == 0, p.stderr
    assert "10.201.7.1/24" in p.stdout and "fd00:201::1/64" in p.stdout
    # `run` held the namespace: the device comes back even though the container had exited
    assert _link(a) is not None and _addrs(_link(a)) == HOST_ADDRS


def test_name_kept_when_no_new_name(runtime, bundle, veth):
    a, _ = veth
    _lend(bundle, {a: {}})
    cid = runtime.new_id("netdev")
    runtime("create", "--bundle", str(bundle.path), cid, check=True)
    assert _link(a, runtime.state(cid)["pid"]) is not None
    runtime("delete", "--force", cid, check=True)
    assert _link(a) is not None


def test_failed_create_gives_devices_back(runtime, bundle, veth):
    a, _ = veth
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    _lend(bundle, {a: {"name": "eth7"}})
    cid = runtime.new_id("netdev")
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode != 0
    back = _link(a)
    assert back is not None and _addrs(back) == HOST_ADDRS


def test_second_device_failing_gives_first_back(runtime, bundle, veth):
    """'lo' already exists in a new namespace: the second move fails after the first succeeded."""
    a, b = veth
    _lend(bundle, {a: {"name": "eth7"}, b: {"name": "lo"}})
    cid = runtime.new_id("netdev")
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1
    assert b in p.stderr and "lo" in p.stderr and "Traceback" not in p.stderr
    assert _link(a) is not None and _link(b) is not None


def test_joined_namespace_gets_devices_back_after_the_container_stopped(runtime, bundle, veth):
    a, _ = veth
    ns = f"pyrnd-{uuid.uuid4().hex[:8]}"  # no "pyrunc": parallel tests' leak scans would count it
    _ip("netns", "add", ns)
    try:
        for n in bundle.config["linux"]["namespaces"]:
            if n["type"] == "network":
                n["path"] = f"/run/netns/{ns}"
        _lend(bundle, {a: {"name": "eth7"}}, "true")
        cid = runtime.new_id("netdev")
        runtime("create", "--bundle", str(bundle.path), cid, check=True)
        runtime("start", cid, check=True)
        for _ in range(500):
            if runtime.state(cid)["status"] == "stopped":
                break
            import time
            time.sleep(0.01)
        assert runtime.state(cid)["status"] == "stopped"
        assert subprocess.run(["ip", "-n", ns, "link", "show", "eth7"], capture_output=True).returncode == 0
        runtime("delete", cid, check=True)
        assert _link(a) is not None and _addrs(_link(a)) == HOST_ADDRS
        assert subprocess.run(["ip", "-n", ns, "link", "show", "eth7"], capture_output=True).returncode != 0
    finally:
        _ip("netns", "del", ns, check=False)


# -- validation: refused before anything is made -----------------------------------------------
def _refused(runtime, bundle, needle: str) -> None:
    cid = runtime.new_id("netdev")
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1, p.stderr
    assert needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert runtime("state", cid).returncode != 0


def test_refused_without_a_network_namespace(runtime, bundle, veth):
    a, _ = veth
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "network"]
    _lend(bundle, {a: {}})
    _refused(runtime, bundle, "network namespace")
    assert _link(a) is not None


def test_refused_into_the_host_namespace(runtime, bundle, veth):
    a, _ = veth
    for n in bundle.config["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = f"/proc/{os.getpid()}/ns/net"  # the runtime's namespace too
    _lend(bundle, {a: {"name": "eth7"}})
    _refused(runtime, bundle, "runtime's own network namespace")
    assert _link(a) is not None


@pytest.mark.parametrize("name", ["a" * 16, "a/b", "a:b", "a b", ".."])
def test_refused_invalid_new_name(runtime, bundle, veth, name):
    a, _ = veth
    _lend(bundle, {a: {"name": name}})
    _refused(runtime, bundle, "/linux/netDevices/")
    assert _link(a) is not None


def test_refused_duplicate_names(runtime, bundle, veth):
    a, b = veth
    _lend(bundle, {a: {"name": b}, b: {}})
    _refused(runtime, bundle, "would be called")


def test_refused_missing_host_device(runtime, bundle):
    _lend(bundle, {"pyrnosuch0": {}})
    _refused(runtime, bundle, "no network device")


def test_into_a_user_namespaced_container(runtime, bundle, veth):
    """The namespace belongs to the container's user namespace: its root can manage the device."""
    from test_userns import userns_bundle
    a, _ = veth
    userns_bundle(bundle)
    for kind in ("bounding", "effective", "permitted"):
        bundle.config["process"]["capabilities"][kind].append("CAP_NET_ADMIN")
    _lend(bundle, {a: {"name": "eth7"}}, "sh", "-c",
          "ip addr add 10.201.9.1/24 dev eth7 && ip -o addr show dev eth7")
    cid = runtime.new_id("netdev")
    p = runtime("run", "--bundle", str(bundle.path), cid)
    assert p.returncode == 0, p.stderr
    assert "10.201.7.1/24" in p.stdout and "10.201.9.1/24" in p.stdout
    assert _addrs(_link(a)) == HOST_ADDRS  # what the container added stays behind
