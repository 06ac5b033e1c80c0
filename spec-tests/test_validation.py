"""config.json validation: problems()/check() on real configs and crafted bad ones, and `pyrunc validate`.

Every problem is "/json/pointer: message"; these tests pin the exact lines a user sees.
"""
from __future__ import annotations

import copy
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PYRUNC, REPO
from pyrunc.errors import PyruncError
from pyrunc.spec.default import default_config
from pyrunc.spec.validate import check, problems


@pytest.fixture
def bdir(tmp_path) -> str:
    """A bundle directory with an empty rootfs: enough for validation, which never runs anything."""
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


def _runc_spec(tmp_path: Path, *flags: str) -> dict:
    d = tmp_path / ("runc" + "".join(flags).replace("-", "_"))
    d.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(d), *flags], check=True)
    return json.loads((d / "config.json").read_text())


def test_default_configs_are_valid(bdir):
    assert problems(default_config(), bdir) == []
    assert problems(default_config(rootless=True, uid=1000, gid=1000), bdir) == []
    check(default_config(), bdir)


@pytest.mark.parametrize("flags", [(), ("--rootless",)])
def test_runc_spec_output_is_valid(tmp_path, bdir, flags):
    cfg = _runc_spec(tmp_path, *flags)
    assert problems(cfg, bdir) == []


@pytest.mark.parametrize("path", sorted(glob.glob(str(REPO / "bundles" / "*" / "config.json"))) or [None])
def test_example_bundles_are_valid(path):
    if path is None:
        pytest.skip("no example bundles in bundles/")
    bundle = os.path.dirname(path)
    with open(path) as f:
        cfg = json.load(f)
    if not os.path.isdir(os.path.join(bundle, cfg.get("root", {}).get("path", "rootfs"))):
        pytest.skip("bundle's rootfs is not built")
    assert problems(cfg, bundle) == []


def _edit(cfg: dict, dotted: str, value: object) -> None:
    keys = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    for k in keys[:-1]:
        cfg = cfg[k]
    if value is _DEL:
        del cfg[keys[-1]]
    else:
        cfg[keys[-1]] = value


_DEL = object()
_NS_ENUM = '["mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"]'

CASES = [
    # schema
    ("linux.namespaces.2.type", "pidd", f'/linux/namespaces/2/type: "pidd" is not one of {_NS_ENUM}'),
    ("process.cwd", _DEL, "/process/cwd: required property is missing"),
    ("ociVersion", _DEL, "/ociVersion: required property is missing"),
    ("process.user.uid", -1, "/process/user/uid: -1 is less than the minimum 0"),
    ("process.user.uid", 1.0, "/process/user/uid: expected an integer, got a number"),
    ("process.user.gid", 2**32, "/process/user/gid: 4294967296 is more than the maximum 4294967295"),
    ("process.terminal", "yes", "/process/terminal: expected a boolean, got a string"),
    ("process.rlimits.0.type", "NOFILE", '/process/rlimits/0/type: "NOFILE" does not match ^RLIMIT_[A-Z]+$'),
    ("mounts.1.options", "nosuid", "/mounts/1/options: expected an array, got a string"),
    ("linux.resources.pids", {}, "/linux/resources/pids/limit: required property is missing"),
    ("linux.sysctl", {"a/b": 1}, "/linux/sysctl/a~1b: expected a string, got an integer"),
    ("process.user.uid", 10**400, "/process/user/uid: an integer of 1329 bits is more than the maximum 4294967295"),
    # semantics
    ("ociVersion", "2.0.0", '/ociVersion: runtime-spec version "2.0.0" has major version 2: '
                            "pyrunc supports 1.0.0 through 1.3.x"),
    ("ociVersion", "0.5.0", '/ociVersion: runtime-spec version "0.5.0" has major version 0: '
                            "pyrunc supports 1.0.0 through 1.3.x"),
    ("ociVersion", "1.4.0", '/ociVersion: runtime-spec version "1.4.0" is newer than pyrunc supports '
                            "(1.0.0 through 1.3.x)"),
    ("ociVersion", "latest", '/ociVersion: "latest" is not a SemVer version (pyrunc supports 1.0.0 through 1.3.x)'),
    ("root.path", "nope", '/root/path: root filesystem "{bundle}/nope" does not exist'),
    ("root.path", "config.json", '/root/path: root filesystem "{bundle}/config.json" is not a directory'),
    ("root", _DEL, "/root: required property is missing (a Linux container needs a root filesystem)"),
    ("process", _DEL, "/process: required property is missing (the container needs a process to run)"),
    ("process.args", [], "/process/args: must not be empty (the first entry is the program to run)"),
    ("process.args", ["a\0b"], "/process/args/0: contains a NUL byte"),
    ("process.cwd", "tmp", '/process/cwd: "tmp" is not an absolute path'),
    ("process.env", ["NOEQUALS"], "/process/env/0: must have the form KEY=value"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}] * 2,
     "/process/rlimits/1/type: duplicate rlimit type RLIMIT_NOFILE"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 1}],
     "/process/rlimits/0/soft: soft limit 9 is above the hard limit 1"),
    ("process.oomScoreAdj", 1001, "/process/oomScoreAdj: 1001 is outside -1000..1000"),
    ("process.apparmorProfile", "x", "/process/apparmorProfile: AppArmor is not enabled on this host"),
    ("process.selinuxLabel", "x", "/process/selinuxLabel: SELinux is not enabled on this host"),
    ("mounts.0.destination", "", "/mounts/0/destination: must not be empty"),
    ("linux.namespaces", [{"type": "pid"}, {"type": "uts"}, {"type": "pid"}],
     '/linux/namespaces/2/type: duplicate namespace type "pid"'),
    ("linux.namespaces.0.path", "/proc/self/ns/net",
     '/linux/namespaces/0/path: "/proc/self/ns/net" is a network namespace, not the type declared here'),
    ("linux.namespaces.0.path", "proc/1/ns/pid", '/linux/namespaces/0/path: "proc/1/ns/pid" is not an absolute path'),
    ("linux.namespaces.0.path", "/etc/hostname", '/linux/namespaces/0/path: "/etc/hostname" is not a namespace file'),
    ("linux.namespaces.0.path", "/nonexistent/ns",
     '/linux/namespaces/0/path: "/nonexistent/ns" cannot be opened: No such file or directory'),
    ("linux.namespaces.3", {"type": "network"}, "/hostname: unable to set hostname without a private UTS namespace"),
    ("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}],
     "/linux/uidMappings: user namespace mappings are given, but the config has no user namespace"),
    ("linux.namespaces", [{"type": "mount"}, {"type": "user"}],
     "/linux/namespaces: a new user namespace needs uidMappings and gidMappings"),
    ("linux.timeOffsets", {"monotonic": {"secs": 1}},
     "/linux/timeOffsets: time offsets are given, but the config has no time namespace"),
    ("linux.sysctl", {"vm.swappiness": "1"},
     "/linux/sysctl/vm.swappiness: this sysctl is not isolated by any namespace the container has"),
    ("linux.sysctl", {"kernel.hostname": "x"},
     '/linux/sysctl/kernel.hostname: conflicts with the "hostname" field: set that instead'),
    ("linux.maskedPaths.0", "proc/kcore", '/linux/maskedPaths/0: "proc/kcore" is not an absolute path'),
    ("linux.devices", [{"type": "c", "path": "/dev/fuse", "major": 10}],
     "/linux/devices/0/minor: required for a device of type 'c'"),
    ("linux.resources.memory", {"swappiness": 101}, "/linux/resources/memory/swappiness: 101 is outside 0..100"),
    ("linux.resources.memory", {"limit": 100, "swap": 50},
     "/linux/resources/memory/swap: memory+swap limit 50 is below the memory limit 100"),
    ("linux.resources.cpu", {"quota": 100, "burst": 200},
     "/linux/resources/cpu/burst: burst 200 is larger than the quota 100"),
    ("linux.resources.blockIO", {"weightDevice": [{"major": 8, "minor": 0}]},
     "/linux/resources/blockIO/weightDevice/0: needs weight or leafWeight"),
]


@pytest.mark.parametrize("field,value,expected", CASES, ids=[f"{c[0]}={str(c[1])[:20]}" for c in CASES])
def test_bad_config_reports_exact_problem(bdir, field, value, expected):
    cfg = default_config()
    (Path(bdir) / "config.json").write_text("{}")
    _edit(cfg, field, value)
    expected = expected.format(bundle=bdir)
    found = problems(copy.deepcopy(cfg), bdir)
    assert expected in found, found
    with pytest.raises(PyruncError) as exc:
        check(cfg, bdir)
    assert str(exc.value).startswith("invalid config.json: " + found[0])


def test_sysctls_allowed_with_their_namespaces(bdir):
    cfg = default_config()
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.msg_max": "10",
                              "kernel.domainname": "x"}
    assert problems(cfg, bdir) == []
    cfg["linux"]["namespaces"] = [{"type": "mount"}]
    del cfg["hostname"]
    assert problems(cfg, bdir) == [
        "/linux/sysctl/net.ipv4.ip_forward: not allowed in the host's network namespace (add a network namespace)",
        "/linux/sysctl/kernel.shmmax: not allowed in the host's IPC namespace (add an ipc namespace)",
        "/linux/sysctl/fs.mqueue.msg_max: not allowed in the host's IPC namespace (add an ipc namespace)",
        "/linux/sysctl/kernel.domainname: not allowed without a private UTS namespace",
    ]


def test_joining_the_host_netns_does_not_own_net_sysctls(bdir):
    cfg = default_config()
    cfg["linux"]["namespaces"][1] = {"type": "network", "path": "/proc/self/ns/net"}
    cfg["linux"]["sysctl"] = {"net.core.somaxconn": "256"}
    assert problems(cfg, bdir) == [
        "/linux/sysctl/net.core.somaxconn: not allowed in the host's network namespace (add a network namespace)"]


def test_joinable_namespace_paths_accepted(bdir):
    cfg = default_config()
    cfg["linux"]["namespaces"] = [{"type": t, "path": f"/proc/self/ns/{n}"} for t, n in
                                  (("pid", "pid"), ("ipc", "ipc"), ("uts", "uts"), ("mount", "mnt"),
                                   ("cgroup", "cgroup"))]
    assert problems(cfg, bdir) == []


def test_relative_mount_destination_accepted_as_runc_does(bdir):
    cfg = default_config()
    cfg["mounts"].append({"destination": "data", "type": "tmpfs", "source": "tmpfs"})
    assert problems(cfg, bdir) == []


def test_old_and_prerelease_versions_accepted(bdir):
    for v in ("1.0.0", "1.0.0-rc5", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0", "1.3.7+build"):
        cfg = default_config()
        cfg["ociVersion"] = v
        assert problems(cfg, bdir) == [], v


def test_every_problem_at_once_in_stable_order(bdir):
    cfg = default_config()
    cfg["ociVersion"] = "3.0"
    cfg["process"]["user"]["uid"] = "root"
    cfg["linux"]["namespaces"][0]["type"] = "pidd"
    cfg["process"]["cwd"] = "relative"
    first = problems(copy.deepcopy(cfg), bdir)
    assert first == problems(copy.deepcopy(cfg), bdir)
    assert first == [
        "/process/user/uid: expected an integer, got a string",
        f'/linux/namespaces/0/type: "pidd" is not one of {_NS_ENUM}',
        '/ociVersion: "3.0" is not a SemVer version (pyrunc supports 1.0.0 through 1.3.x)',
        '/process/cwd: "relative" is not an absolute path',
    ]


def test_ill_typed_sections_never_crash_semantics(bdir):
    for section in ("process", "linux", "root", "mounts", "hostname"):
        for junk in (None, 1, "x", [], [1, None], {"a": []}, True):
            cfg = default_config()
            cfg[section] = junk
            problems(cfg, bdir)  # must not raise
    cfg = default_config()
    for key in ("namespaces", "sysctl", "resources", "devices", "uidMappings", "timeOffsets", "maskedPaths"):
        for junk in (None, 1, "x", [1, None], {"a": []}):
            cfg["linux"][key] = junk
            problems(cfg, bdir)


def test_check_does_not_import_jsonschema(bdir):
    code = ("import sys; from pyrunc.spec.validate import check; from pyrunc.spec.default import default_config;"
            f"check(default_config(), {bdir!r}); print('jsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_fastcheck_is_up_to_date():
    """_fastcheck.py must be regenerated whenever a schema changes."""
    p = subprocess.run([sys.executable, "-m", "pyrunc.spec.compile_schema", "--check"], capture_output=True,
                       text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr


# --- the CLI --------------------------------------------------------------------------------
def _validate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYRUNC, "validate", *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


def test_cli_validate_good_bundle_is_silent(bdir):
    (Path(bdir) / "config.json").write_text(json.dumps(default_config()))
    p = _validate("--bundle", bdir)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_cli_validate_default_bundle_is_cwd(bdir):
    (Path(bdir) / "config.json").write_text(json.dumps(default_config()))
    p = subprocess.run([PYRUNC, "validate"], capture_output=True, text=True, cwd=bdir, timeout=30)
    assert (p.returncode, p.stderr) == (0, "")


def test_cli_validate_prints_every_problem_on_stderr(bdir):
    cfg = default_config()
    cfg["linux"]["namespaces"][2]["type"] = "pidd"
    cfg["process"]["user"]["uid"] = -5
    cfg["root"]["path"] = "missing"
    (Path(bdir) / "config.json").write_text(json.dumps(cfg))
    p = _validate("-b", bdir)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.splitlines() == [
        "/process/user/uid: -5 is less than the minimum 0",
        f'/linux/namespaces/2/type: "pidd" is not one of {_NS_ENUM}',
        f'/root/path: root filesystem "{bdir}/missing" does not exist',
    ]


def test_cli_validate_unreadable_bundle_one_line(tmp_path):
    p = _validate("--bundle", str(tmp_path / "nope"))
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1 and "does not exist" in p.stderr
    (tmp_path / "config.json").write_text("{not json")
    p = _validate("--bundle", str(tmp_path))
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1 and "malformed JSON" in p.stderr


def test_create_refuses_invalid_config_and_creates_nothing(runtime, bundle):
    bundle.config["linux"]["namespaces"][2]["type"] = "pidd"
    bundle.write()
    cid = runtime.new_id("invalid")
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        f'pyrunc: invalid config.json: /linux/namespaces/2/type: "pidd" is not one of {_NS_ENUM}']
    assert not (runtime.root / cid).exists()
