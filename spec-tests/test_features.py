"""`pyrunc features`: runtime-spec's features document (features.md, features-linux.md).

The document must be valid, must cover what runc 1.1.5 claims, and must be true: every mount option
it lists is parsed as an option by a real container (not passed to the filesystem as data), every
namespace it lists is created, and every seccomp flag it calls supported loads on this kernel.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import jsonschema
import pytest

from conftest import PYRUNC
from test_userns import userns_bundle

# features-schema.json and features-linux.json of runtime-spec 1.3, written from their text
_STRINGS = {"type": "array", "items": {"type": "string"}}
_BOOLS = lambda *names: {"type": "object",  # noqa: E731
                         "properties": {n: {"type": "boolean"} for n in names}}
SCHEMA = {
    "type": "object",
    "required": ["ociVersionMin", "ociVersionMax"],
    "properties": {
        "ociVersionMin": {"type": "string", "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+"},
        "ociVersionMax": {"type": "string", "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+"},
        "hooks": _STRINGS, "mountOptions": _STRINGS,
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "potentiallyUnsafeConfigAnnotations": _STRINGS,
        "linux": {"type": "object", "additionalProperties": False, "properties": {
            "namespaces": {"type": "array", "items": {"enum": [
                "mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"]}},
            "capabilities": {"type": "array", "items": {"type": "string", "pattern": "^CAP_[A-Z_]+$"}},
            "cgroup": _BOOLS("v1", "v2", "systemd", "systemdUser", "rdma"),
            "seccomp": {"type": "object", "properties": {
                "enabled": {"type": "boolean"},
                "actions": {"type": "array", "items": {"type": "string", "pattern": "^SCMP_ACT_"}},
                "operators": {"type": "array", "items": {"type": "string", "pattern": "^SCMP_CMP_"}},
                "archs": {"type": "array", "items": {"type": "string", "pattern": "^SCMP_ARCH_"}},
                "knownFlags": {"type": "array", "items": {"pattern": "^SECCOMP_FILTER_FLAG_"}},
                "supportedFlags": {"type": "array", "items": {"pattern": "^SECCOMP_FILTER_FLAG_"}},
            }},
            "apparmor": _BOOLS("enabled"), "selinux": _BOOLS("enabled"),
            "intelRdt": _BOOLS("enabled", "schemata", "monitoring"),
            "mountExtensions": {"type": "object", "properties": {"idmap": _BOOLS("enabled")}},
            "netDevices": _BOOLS("enabled"),
            "memoryPolicy": {"type": "object", "properties": {
                "modes": {"type": "array", "items": {"pattern": "^MPOL_"}},
                "flags": {"type": "array", "items": {"pattern": "^MPOL_F_"}}}},
        }},
    },
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def features() -> dict:
    p = subprocess.run([PYRUNC, "features"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and not p.stderr, p.stderr
    return json.loads(p.stdout)


def test_the_document_is_valid_and_names_what_the_spec_defines(features):
    jsonschema.Draft4Validator(SCHEMA).validate(features)
    assert features["ociVersionMin"] == "1.0.0"
    assert features["ociVersionMax"] == subprocess.run(
        [PYRUNC, "--version"], capture_output=True, text=True).stdout.split("spec: ")[1].strip()
    assert features["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer",
                                 "poststart", "poststop"]
    seccomp = features["linux"]["seccomp"]
    assert set(seccomp["supportedFlags"]) <= set(seccomp["knownFlags"])
    assert features["potentiallyUnsafeConfigAnnotations"] == []


@pytest.mark.skipif(not shutil.which("runc"), reason="runc is not installed")
def test_it_claims_at_least_what_runc_does(features):
    theirs = json.loads(subprocess.run(["runc", "features"], capture_output=True, text=True,
                                       check=True).stdout)
    assert features["hooks"] == theirs["hooks"]
    assert set(theirs["mountOptions"]) <= set(features["mountOptions"])
    mine, ref = features["linux"], theirs["linux"]
    assert set(ref["namespaces"]) | {"time"} == set(mine["namespaces"])
    assert mine["capabilities"] == ref["capabilities"]
    for key in ("actions", "operators", "archs"):
        assert set(ref["seccomp"][key]) <= set(mine["seccomp"][key]), key


def test_every_mount_option_listed_is_parsed_as_an_option(features, runtime, bundle):
    """One tmpfs per option: an option pyrunc did not know would reach tmpfs as data, which
    refuses it (the last mount, an unknown word, proves that). bind, rbind and remount change
    what a mount is, and idmap needs a user namespace: spec-tests/test_mounts.py has them."""
    skip = {"bind", "rbind", "remount", "idmap", "ridmap"}
    opts = [o for o in features["mountOptions"] if o not in skip]
    assert len(opts) > 50
    bundle.config["mounts"] += [{"destination": f"/mnt/{o}", "type": "tmpfs", "source": "tmpfs",
                                 "options": [o]} for o in opts]
    bundle.set_args("sh", "-c", "grep -c ' /mnt/' /proc/self/mountinfo")
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id("feat"))
    assert p.returncode == 0 and p.stdout.strip() == str(len(opts)), p.stderr
    bundle.config["mounts"].append({"destination": "/mnt/x", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["no-such-option"]})
    bundle.write()
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id("feat"))
    assert p.returncode == 1 and "/mnt/x" in p.stderr, p.stderr


def test_every_namespace_listed_is_created(features, runtime, bundle):
    kinds = features["linux"]["namespaces"]
    userns_bundle(bundle)  # the mappings, and a rootfs the namespace's root can reach
    bundle.config["linux"]["namespaces"] = [{"type": k} for k in kinds]
    proc_names = {"mount": "mnt", "network": "net"}
    names = [proc_names.get(k, k) for k in kinds]
    bundle.set_args("sh", "-c", "for n in " + " ".join(names) + "; do readlink /proc/self/ns/$n; done")
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id("feat"))
    assert p.returncode == 0, p.stderr
    inside = p.stdout.split()
    assert len(inside) == len(names)
    for name, link in zip(names, inside):
        assert link != os.readlink(f"/proc/self/ns/{name}"), f"{name} namespace is the host's"


def test_every_supported_seccomp_flag_loads(features, runtime, bundle):
    flags = features["linux"]["seccomp"]["supportedFlags"]
    assert flags, "this kernel takes every flag runc knows"
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "flags": flags,
        "syscalls": [{"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    bundle.set_args("sh", "-c", "grep Seccomp: /proc/self/status; mkdir /x || echo refused")
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id("feat"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["Seccomp:", "2", "refused"], p.stdout


def test_arguments_are_refused(runtime):
    p = runtime("features", "extra")
    assert p.returncode == 1 and p.stderr == "pyrunc: features takes no arguments, got 1\n"
