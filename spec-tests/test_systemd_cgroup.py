"""--systemd-cgroup on this host: the D-Bus wire format pyrunc speaks to systemd, checked against the
reference implementation (Debian's dbus-daemon, which validates every message it routes), and the
unit names, slice paths and unit properties derived from config.json, as runc derives them.

This host has no systemd as pid 1; containers placed by a real systemd are tested in the pure
cgroup-v2 VM (spec-tests/v2vm/guest_tests/guest_systemd_pyrunc.py).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from pyrunc.cgroups import dbus, systemd
from pyrunc.errors import PyruncError

BUS = ("/org/freedesktop/DBus", "org.freedesktop.DBus")


@pytest.fixture
def bus_socket(tmp_path):
    """A private dbus-daemon of this test's own, stopped by pid."""
    if not shutil.which("dbus-daemon"):
        pytest.skip("dbus-daemon is not installed")
    path = tmp_path / "bus.sock"
    proc = subprocess.Popen(["dbus-daemon", "--session", f"--address=unix:path={path}", "--nofork"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.01)
        yield str(path)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def _hello(conn) -> str:
    return conn.call(*BUS, "Hello", destination="org.freedesktop.DBus")[0]


def test_a_start_transient_unit_call_crosses_the_reference_daemon_intact(bus_socket):
    """What systemd would receive: the daemon accepts the message and delivers these values."""
    caller, callee = dbus.Connection(bus_socket), dbus.Connection(bus_socket)
    try:
        _hello(caller)
        name = _hello(callee)
        props = [("Description", ("s", "pyrunc container c")), ("Slice", ("s", "a-b.slice")),
                 ("PIDs", ("au", [4242])), ("Delegate", ("b", True)),
                 ("MemoryMax", ("t", (1 << 64) - 1)), ("AllowedCPUs", ("ay", b"\x05")),
                 ("CPUQuotaPerSecUSec", ("t", 500000))]
        got: dict = {}

        def call():
            try:
                got["reply"] = caller.call(*systemd._MANAGER, "StartTransientUnit",
                                           "ssa(sv)a(sa(sv))", ("p-c.scope", "replace", props, []),
                                           destination=name)
            except PyruncError as e:
                got["error"] = e
        t = threading.Thread(target=call)
        t.start()
        msg = callee.receive(lambda m: m.type == dbus.METHOD_CALL
                             and m.fields.get("member") == "StartTransientUnit", timeout=10)
        assert msg.fields["signature"] == "ssa(sv)a(sa(sv))"
        assert msg.fields["interface"] == "org.freedesktop.systemd1.Manager"
        unit, mode, sent, aux = msg.body
        assert (unit, mode, aux) == ("p-c.scope", "replace", [])
        decoded = dict(sent)
        assert decoded["PIDs"] == ("au", [4242]) and decoded["Delegate"] == ("b", True)
        assert decoded["MemoryMax"] == ("t", (1 << 64) - 1)
        assert decoded["AllowedCPUs"] == ("ay", [5])
        assert decoded["Description"] == ("s", "pyrunc container c")
        # answer as systemd does: the job's object path
        callee.reply(msg, "o", ("/org/freedesktop/systemd1/job/7",))
        t.join(10)
        assert got == {"reply": ("/org/freedesktop/systemd1/job/7",)}
    finally:
        caller.close()
        callee.close()


def test_an_error_reply_names_the_error(bus_socket):
    with dbus.Connection(bus_socket) as c:
        _hello(c)
        with pytest.raises(dbus.DBusError) as e:
            c.call(*BUS, "NoSuchMethod", destination="org.freedesktop.DBus")
        assert e.value.name == "org.freedesktop.DBus.Error.UnknownMethod"
        assert c.call(*BUS, "NameHasOwner", "s", ("org.example.none",),
                      destination="org.freedesktop.DBus") == (False,)


def test_signals_are_waited_for_and_others_kept(bus_socket):
    """JobRemoved arrives as a signal among other traffic: the one asked for is found."""
    a, b = dbus.Connection(bus_socket), dbus.Connection(bus_socket)
    try:
        _hello(a)
        name_b = _hello(b)
        for job, result in (("/job/1", "done"), ("/job/2", "failed")):
            a.signal(name_b, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                     "JobRemoved", "uoss", (1, job, "x.scope", result))
        assert systemd._wait_job(b, "/job/2") == "failed"
        assert systemd._wait_job(b, "/job/1") == "done"
    finally:
        a.close()
        b.close()


def test_an_unreachable_socket_is_one_clear_error(tmp_path):
    with pytest.raises(PyruncError, match="cannot connect to systemd at"):
        dbus.Connection(str(tmp_path / "none.sock"))


@pytest.mark.parametrize("name, path", [
    ("system.slice", "/system.slice"), ("-.slice", "/"),
    ("kubepods-burstable-pod1.slice",
     "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice")])
def test_slice_names_expand_as_systemd_nests_them(name, path):
    assert systemd.expand_slice(name) == path


@pytest.mark.parametrize("name", ["system", ".slice", "a--b.slice", "-a.slice", "a/b.slice"])
def test_bad_slice_names_are_refused(name):
    with pytest.raises(PyruncError, match="invalid slice name"):
        systemd.expand_slice(name)


def test_unit_properties_follow_runc():
    props = dict(systemd.properties({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},
        "cpu": {"shares": 1024, "quota": 12345, "period": 100000, "cpus": "0-2,5"},
        "pids": {"limit": 50}}, v2=True))
    assert props["MemoryMax"] == ("t", 64 << 20) and props["MemoryLow"] == ("t", 32 << 20)
    assert props["MemorySwapMax"] == ("t", 32 << 20)  # v2 counts swap alone
    assert props["CPUWeight"] == ("t", 39)            # runc's shares-to-weight formula
    assert props["CPUQuotaPerSecUSec"] == ("t", 130000)  # 12.345% rounded up to whole percents
    assert props["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert props["AllowedCPUs"] == ("ay", bytes([0b100111]))
    assert props["TasksMax"] == ("t", 50)
    unlimited = dict(systemd.properties({"memory": {"limit": -1}, "pids": {"limit": -1},
                                         "cpu": {"quota": -1, "period": 100000}}, v2=True))
    assert unlimited["MemoryMax"] == unlimited["TasksMax"] == ("t", (1 << 64) - 1)
    assert unlimited["CPUQuotaPerSecUSec"] == ("t", (1 << 64) - 1)
    assert dict(systemd.properties({"memory": {"limit": 1 << 20}}, v2=False)) == {
        "MemoryLimit": ("t", 1 << 20)}


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd runs here")
def test_placement_checks_come_before_systemd(runtime, bundle):
    """The unit's name is checked first; then, with no systemd here, runc's words."""
    for path, words in (("system.slice:p:n.slice", "pyrunc places containers in scopes only"),
                        ("bad:p:n", "invalid slice name"),
                        ("machine.slice:libpod:abc", "systemd support for managing cgroups")):
        bundle.config["linux"]["cgroupsPath"] = path
        bundle.write()
        cid = runtime.new_id("sd")
        p = runtime("--systemd-cgroup", "run", "--bundle", str(bundle.path), cid)
        assert p.returncode == 1 and len(p.stderr.splitlines()) == 1 and words in p.stderr, p.stderr
        assert not (runtime.root / cid).exists()
