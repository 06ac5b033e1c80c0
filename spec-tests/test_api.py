"""pyrunc is a library too: create/start/state/kill/delete without a subprocess per operation.
(The script runs in a fresh interpreter so that create's fork happens in a single-threaded process.)"""
from __future__ import annotations

import subprocess
import sys
import textwrap


def test_library_lifecycle(runtime, bundle):
    # the marker says the TERM trap is in place: pid 1 ignores signals it has no handler for
    bundle.set_args("sh", "-c", "trap 'exit 0' TERM; touch /trapped; while true; do sleep 0.05; done")
    marker = bundle.rootfs / "trapped"
    cid = runtime.new_id()
    script = textwrap.dedent(f"""
        import os, time
        from pyrunc.api import Container, list_containers, PyruncError
        c = Container.create({cid!r}, bundle={str(bundle.path)!r}, root={str(runtime.root)!r})
        assert c.state()["status"] == "created"
        c.start()
        assert c.state()["status"] == "running"
        assert [e["id"] for e in list_containers({str(runtime.root)!r})] == [{cid!r}]
        for _ in range(1500):
            if os.path.exists({str(marker)!r}):
                break
            time.sleep(0.01)
        c.kill("TERM")
        for _ in range(500):
            if c.state()["status"] == "stopped":
                break
            time.sleep(0.01)
        assert c.state()["status"] == "stopped"
        c.delete()
        try:
            c.state()
        except PyruncError as e:
            print("gone:", e)
    """)
    out, err = runtime.root.parent / "api.out", runtime.root.parent / "api.err"
    with open(out, "w") as o, open(err, "w") as e:  # files: the container inherits our stdio
        # -P and another cwd: import pyrunc as installed, not from a checkout in the cwd
        code = subprocess.run([sys.executable, "-P", "-c", script], stdout=o, stderr=e, timeout=60,
                              stdin=subprocess.DEVNULL, cwd=runtime.root.parent).returncode
    assert code == 0, err.read_text()
    assert "gone:" in out.read_text() and "does not exist" in out.read_text()
