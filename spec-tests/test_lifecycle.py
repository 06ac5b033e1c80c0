"""runtime.md "Operations" and "Lifecycle": create, start, state, kill, delete, run, list."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest


def wait_status(runtime, cid: str, want: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = runtime.state(cid)
        if st["status"] == want or time.monotonic() > deadline:
            return st
        time.sleep(0.02)


def test_run_prints_pid1_and_hostname(runtime, bundle):
    bundle.config["hostname"] = "spec-host"
    bundle.set_args("sh", "-c", "echo pid=$$ host=$(hostname)")
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "pid=1 host=spec-host"


# pid 1 of a pid namespace ignores signals it has no handler for: the marker file says the trap
# is in place, so a test never signals before it is (see trapped())
LOOP = "trap 'exit 3' TERM; touch /trapped; while true; do sleep 0.05; done"


def trapped(bundle, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not (bundle.rootfs / "trapped").exists():
        assert time.monotonic() < deadline, "the container never installed its TERM trap"
        time.sleep(0.01)
    (bundle.rootfs / "trapped").unlink()


def test_create_blocks_until_start(runtime, bundle):
    bundle.set_args("sh", "-c", "echo ran > /ran")
    cid = runtime.new_id()
    pidfile = bundle.path / "pid"
    p = runtime("create", "--bundle", str(bundle.path), "--pid-file", str(pidfile), cid)
    assert p.returncode == 0, p.stderr
    st = runtime.state(cid)
    assert st["status"] == "created"
    assert int(pidfile.read_text()) == st["pid"] > 0
    assert os.path.exists(f"/proc/{st['pid']}")
    time.sleep(0.2)
    assert not (bundle.rootfs / "ran").exists(), "the user's program ran before start"
    assert runtime("start", cid).returncode == 0
    wait_status(runtime, cid, "stopped")
    assert (bundle.rootfs / "ran").read_text() == "ran\n"
    assert runtime("delete", cid).returncode == 0
    assert runtime("state", cid).returncode == 1


def test_state_fields(runtime, bundle):
    bundle.config["annotations"] = {"org.example.key": "value"}
    bundle.set_args("sleep", "10")
    cid = runtime.new_id()
    runtime("create", "--bundle", str(bundle.path), cid, check=True)
    st = runtime.state(cid)
    assert st["ociVersion"] == bundle.config["ociVersion"]
    assert st["id"] == cid
    assert st["status"] == "created"
    assert st["bundle"] == str(bundle.path)
    assert st["rootfs"] == str(bundle.rootfs)
    assert st["annotations"] == {"org.example.key": "value"}
    assert st["created"].endswith("Z") and "T" in st["created"]
    assert "owner" in st
    runtime("delete", cid, check=True)


def test_start_only_from_created(runtime, bundle):
    bundle.set_args("sleep", "10")
    cid = runtime.new_id()
    runtime("create", "--bundle", str(bundle.path), cid, check=True)
    runtime("start", cid, check=True)
    assert runtime.state(cid)["status"] == "running"
    again = runtime("start", cid)
    assert again.returncode == 1 and "running" in again.stderr
    runtime("delete", "--force", cid, check=True)
    assert runtime("start", cid).returncode == 1


def test_kill_signals_by_name_and_number(runtime, bundle):
    bundle.set_args("sh", "-c", LOOP)
    for sig in ("TERM", "SIGTERM", "15"):
        cid = runtime.new_id()
        runtime("run", "-d", "--bundle", str(bundle.path), cid, check=True)
        assert runtime.state(cid)["status"] == "running"
        trapped(bundle)
        assert runtime("kill", cid, sig).returncode == 0
        assert wait_status(runtime, cid, "stopped")["status"] == "stopped"
        k = runtime("kill", cid, "KILL")
        assert k.returncode == 1, "kill of a stopped container must fail, as in runc"
        runtime("delete", cid, check=True)


def test_kill_default_is_sigterm_and_bad_signal_fails(runtime, bundle):
    bundle.set_args("sh", "-c", LOOP)
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", str(bundle.path), cid, check=True)
    trapped(bundle)
    bad = runtime("kill", cid, "SIGNOPE")
    assert bad.returncode == 1 and "SIGNOPE" in bad.stderr
    assert runtime("kill", cid, "0").returncode == 0, "signal 0 probes, as in runc"
    assert runtime.state(cid)["status"] == "running"
    runtime("kill", cid, check=True)
    assert wait_status(runtime, cid, "stopped")["status"] == "stopped"
    runtime("delete", cid, check=True)


def test_delete_running_needs_force(runtime, bundle):
    bundle.set_args("sleep", "30")
    cid = runtime.new_id()
    runtime("run", "-d", "--bundle", str(bundle.path), cid, check=True)
    pid = runtime.state(cid)["pid"]
    d = runtime("delete", cid)
    assert d.returncode == 1 and "running" in d.stderr
    assert runtime.state(cid)["status"] == "running"
    runtime("delete", "--force", cid, check=True)
    assert not os.path.exists(f"/proc/{pid}/status") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]
    assert runtime("state", cid).returncode == 1


def test_delete_created_without_force(runtime, bundle):
    cid = runtime.new_id()
    runtime("create", "--bundle", str(bundle.path), cid, check=True)
    pid = runtime.state(cid)["pid"]
    runtime("delete", cid, check=True)
    assert runtime("state", cid).returncode == 1
    time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}/cmdline") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_run_exit_code(runtime, bundle):
    bundle.set_args("sh", "-c", "exit 7")
    assert runtime("run", "--bundle", str(bundle.path), runtime.new_id()).returncode == 7


def test_run_killed_by_signal_exits_128_plus_n(runtime, bundle):
    bundle.set_args("sleep", "30")
    cid = runtime.new_id()
    proc = subprocess_popen(runtime, "run", "--bundle", str(bundle.path), cid)
    wait_running(runtime, cid)
    runtime("kill", cid, "KILL", check=True)
    assert proc.wait(20) == 137


def test_run_forwards_signals(runtime, bundle):
    bundle.set_args("sh", "-c", LOOP)
    cid = runtime.new_id()
    proc = subprocess_popen(runtime, "run", "--bundle", str(bundle.path), cid)
    wait_running(runtime, cid)
    trapped(bundle)
    proc.send_signal(signal.SIGTERM)  # to the pyrunc we started, which passes it on
    assert proc.wait(20) == 3
    assert runtime("state", cid).returncode == 1, "run without --keep deletes the container"


def test_run_keep(runtime, bundle):
    bundle.set_args("true")
    cid = runtime.new_id()
    runtime("run", "--keep", "--bundle", str(bundle.path), cid, check=True)
    assert runtime.state(cid)["status"] == "stopped"
    runtime("delete", cid, check=True)


def test_create_existing_id_fails_and_changes_nothing(runtime, bundle):
    bundle.set_args("sleep", "10")
    cid = runtime.new_id()
    runtime("create", "--bundle", str(bundle.path), cid, check=True)
    before = runtime.state(cid)
    again = runtime("create", "--bundle", str(bundle.path), cid)
    assert again.returncode == 1 and "exists" in again.stderr
    assert runtime.state(cid) == before
    runtime("delete", cid, check=True)


def test_concurrent_create_exactly_one_wins(runtime, bundle):
    bundle.set_args("sleep", "10")
    cid = runtime.new_id()
    procs = [subprocess_popen(runtime, "create", "--bundle", str(bundle.path), cid) for _ in range(4)]
    codes = [p.wait(30) for p in procs]
    assert sorted(codes) == [0, 1, 1, 1]
    assert runtime.state(cid)["status"] == "created"
    runtime("delete", cid, check=True)


def test_failed_create_leaves_nothing(runtime, bundle):
    bundle.set_args("/no/such/program")
    cid = runtime.new_id()
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "/no/such/program" in p.stderr
    assert runtime("state", cid).returncode == 1
    assert not (runtime.root / cid).exists()
    # the runtime fixture also fails this test if a mount, cgroup or process is left


def test_list_formats(runtime, bundle):
    bundle.set_args("sleep", "10")
    ids = [runtime.new_id(), runtime.new_id()]
    for cid in ids:
        runtime("create", "--bundle", str(bundle.path), cid, check=True)
    quiet = runtime("list", "-q", check=True).stdout.split()
    assert sorted(quiet) == sorted(ids)
    items = json.loads(runtime("list", "--format", "json", check=True).stdout)
    assert {i["id"]: i["status"] for i in items} == {cid: "created" for cid in ids}
    table = runtime("list", check=True).stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert len(table) == 3 and all("created" in row for row in table[1:])
    for cid in ids:
        runtime("delete", cid, check=True)
    assert runtime("list", "-q", check=True).stdout == ""


def subprocess_popen(runtime, *args):
    import subprocess
    return subprocess.Popen(runtime.cmd(*args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_running(runtime, cid: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = runtime("state", cid)
        if p.returncode == 0 and json.loads(p.stdout)["status"] == "running":
            return
        time.sleep(0.02)
    raise AssertionError(f"{cid} never became running")
