"""The command-line contract containerd's go-runc and podman's conmon speak: global flags,
--version, errors as one line (and as JSON in --log), spec."""
from __future__ import annotations

import json
import subprocess

from conftest import PYRUNC


def pyrunc(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([PYRUNC, *args], capture_output=True, text=True, cwd=cwd, timeout=30,
                          stdin=subprocess.DEVNULL)


def test_version_has_runc_shape():
    p = pyrunc("--version")
    lines = p.stdout.splitlines()
    assert p.returncode == 0 and len(lines) == 3
    assert lines[0].startswith("pyrunc version ")
    assert lines[1].startswith("commit: ")
    assert lines[2].startswith("spec: 1.")


def test_unknown_global_flag_and_command(tmp_path):
    for args, words in ((["--bogus", "list"], "--bogus"), (["frobnicate"], "frobnicate"),
                        (["--root", str(tmp_path), "create", "--nope", "x"], "--nope")):
        p = pyrunc(*args)
        assert p.returncode == 1
        assert words in p.stderr
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_missing_container_errors(tmp_path):
    for cmd in ("state", "start", "kill", "delete"):
        p = pyrunc("--root", str(tmp_path), cmd, "nosuch")
        assert p.returncode == 1, cmd
        assert "does not exist" in p.stderr and "Traceback" not in p.stderr
    assert pyrunc("--root", str(tmp_path), "delete", "--force", "nosuch").returncode == 0


def test_hostile_id_is_refused(tmp_path):
    for bad in ("../escape", "a/b", "..", ".", "x" * 2000, "sp ace"):
        p = pyrunc("--root", str(tmp_path / "root"), "create", "--bundle", str(tmp_path), bad)
        assert p.returncode == 1 and "invalid container id" in p.stderr, bad
    assert not (tmp_path / "escape").exists()


def test_log_format_json_writes_error_line(tmp_path):
    log = tmp_path / "log.json"
    p = pyrunc("--root", str(tmp_path), "--log", str(log), "--log-format", "json", "state", "nosuch")
    assert p.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error"
    assert "does not exist" in entry["msg"]
    assert entry["time"].endswith("Z")


def test_debug_shows_traceback(tmp_path):
    p = pyrunc("--debug", "--root", str(tmp_path), "state", "nosuch")
    assert p.returncode == 1 and "Traceback" in p.stderr


def test_bad_bundle_is_one_line(tmp_path, runtime):
    (tmp_path / "file-bundle").write_text("")
    for bundle in (tmp_path / "missing", tmp_path / "file-bundle", tmp_path):
        cid = runtime.new_id()
        p = runtime("create", "--bundle", str(bundle), cid)
        assert p.returncode == 1
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
        assert not (runtime.root / cid).exists()


def test_spec_writes_default_config(tmp_path):
    p = pyrunc("spec", "--bundle", str(tmp_path))
    assert p.returncode == 0, p.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["root"]["path"] == "rootfs"
    assert {n["type"] for n in config["linux"]["namespaces"]} >= {"pid", "mount", "uts", "ipc", "network"}
    again = pyrunc("spec", "--bundle", str(tmp_path))
    assert again.returncode == 1 and "exists" in again.stderr


def test_spec_rootless_maps_the_caller(tmp_path):
    assert pyrunc("spec", "--rootless", "--bundle", str(tmp_path)).returncode == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert {"type": "user"} in config["linux"]["namespaces"]
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 0, "size": 1}]
