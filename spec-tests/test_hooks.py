"""config.md "POSIX-platform Hooks": the six kinds run at their points of the lifecycle with the
container's state on stdin; a failing or hanging hook fails the operation cleanly."""
from __future__ import annotations

import json
import time


def recording_hook(out_dir, kind: str) -> dict:
    """A host-side hook that saves its stdin (the state) and its argv[1] as <kind>.json."""
    return {"path": "/bin/sh", "args": ["sh", "-c", f'cat > {out_dir}/{kind}.json', kind],
            "env": ["PATH=/bin:/usr/bin"]}


def test_all_hook_kinds_run_with_the_state(runtime, bundle, tmp_path):
    out = tmp_path / "hooks"
    out.mkdir()
    kinds = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
    bundle.config["hooks"] = {k: [recording_hook(out, k)] for k in kinds}
    # startContainer runs inside the container: its /bin/sh is the rootfs's busybox
    bundle.config["hooks"]["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /start.json"]}]
    bundle.set_args("sleep", "30")
    cid = runtime.new_id()
    runtime("create", "--bundle", str(bundle.path), cid, check=True)
    pid = runtime.state(cid)["pid"]
    for k in ("prestart", "createRuntime", "createContainer"):
        st = json.loads((out / f"{k}.json").read_text())
        assert st["id"] == cid and st["pid"] == pid and st["bundle"] == str(bundle.path), k
        assert st["status"] == "creating", k
    assert not (out / "poststart.json").exists()
    runtime("start", cid, check=True)
    assert json.loads((out / "poststart.json").read_text())["status"] == "running"
    assert json.loads((bundle.rootfs / "start.json").read_text())["id"] == cid
    runtime("delete", "--force", cid, check=True)
    post = json.loads((out / "poststop.json").read_text())
    assert post["id"] == cid and post["status"] == "stopped"


def test_failing_prestart_hook_fails_create_cleanly(runtime, bundle):
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}
    bundle.write()
    cid = runtime.new_id()
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1
    assert "prestart hook /bin/sh exited with status 3: nope" in p.stderr
    assert not (runtime.root / cid).exists()


def test_hook_timeout(runtime, bundle):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}
    bundle.write()
    cid = runtime.new_id()
    t0 = time.monotonic()
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1 and "timed out after 1s" in p.stderr
    assert time.monotonic() - t0 < 15
    assert not (runtime.root / cid).exists()
