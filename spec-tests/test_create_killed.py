"""A `create` killed half-way leaves a state dir that `delete --force` fully cleans up (cgroup,
init process, state), so a crashed runtime never strands resources."""
from __future__ import annotations

import os
import signal
import subprocess
import time

from conftest import _alive, _cgroup_dirs_named


def test_delete_force_cleans_up_after_a_killed_create(runtime, bundle):
    # a createRuntime hook that blocks keeps create mid-way, with its cgroup made and init forked;
    # it writes its pid so the test can end it
    hook_pid = bundle.path / "hook.pid"
    bundle.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo $$ > {hook_pid}; exec sleep 60"]}]}
    bundle.set_args("sleep", "60")
    cid = runtime.new_id()
    proc = subprocess.Popen(runtime.cmd("create", "--bundle", str(bundle.path), cid),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = runtime("state", cid)
        if st.returncode == 0 and '"pid": 0' not in st.stdout and hook_pid.exists():
            break
        time.sleep(0.02)
    st = runtime.state(cid)
    assert st["status"] == "creating" and st["pid"] > 0
    assert _cgroup_dirs_named(cid)
    os.kill(proc.pid, signal.SIGKILL)  # the create we started, by its pid
    proc.wait(10)
    while not hook_pid.exists() or not hook_pid.read_text().strip():
        time.sleep(0.01)
    os.kill(int(hook_pid.read_text()), signal.SIGKILL)  # the orphaned hook we made it start
    assert runtime("delete", "--force", cid).returncode == 0
    assert not _alive(st["pid"])
    assert not _cgroup_dirs_named(cid)
    assert runtime("state", cid).returncode == 1
