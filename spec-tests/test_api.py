"""pyrunc is a library too: create/start/state/kill/delete without a subprocess per operation.
(The script runs in a fresh interpreter so that create's fork happens in a single-threaded process.)"""
from __future__ import annotations

import subprocess
import sys
import textwrap


def test_library_lifecycle(runtime, bundle):
    bundle.set_args("sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.05; done")
    cid = runtime.new_id()
    script = textwrap.dedent(f"""
        import time
        from pyrunc.api import Container, list_containers, PyruncError
        c = Container.create({cid!r}, bundle={str(bundle.path)!r}, root={str(runtime.root)!r})
        assert c.state()["status"] == "created"
        c.start()
        assert c.state()["status"] == "running"
        assert [e["id"] for e in list_containers({str(runtime.root)!r})] == [{cid!r}]
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
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "gone:" in p.stdout and "does not exist" in p.stdout
