"""`features`: the runtime-spec features document (features.md, features-linux.md), as runc has.

Every list is read from the tables the runtime itself works from (mount options, capabilities,
namespaces, seccomp, memory policies), so the document cannot claim what pyrunc does not parse.
"""
from __future__ import annotations

import sys

from pyrunc import jsonfast as json


def document() -> dict:
    from pyrunc import SPEC_VERSION, __version__, hooks
    from pyrunc.cli import _commit
    from pyrunc.init import mountopts
    from pyrunc.linux import capabilities, namespaces, sched, seccomp
    options = (set(mountopts.FLAGS) | set(mountopts.PROPAGATION) | set(mountopts.RECURSIVE)
               | set(mountopts.RECURSIVE_ATIME) | mountopts.EXTENSIONS)
    annotations = {"io.github.pyrunc.version": __version__,
                   "io.github.pyrunc.commit": _commit()}
    try:
        annotations["io.github.seccomp.libseccomp.version"] = ".".join(
            map(str, seccomp.library_version()))
    except Exception:  # noqa: BLE001 - no libseccomp here: the document still stands
        pass
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(hooks.KINDS),
        "mountOptions": sorted(options),
        "linux": {
            "namespaces": sorted(namespaces.KINDS),
            "capabilities": list(capabilities.NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False,
                       "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": sorted(seccomp.ACTIONS),
                "operators": sorted(seccomp.OPS),
                "archs": sorted(seccomp.ARCHS),
                "knownFlags": list(seccomp.FLAGS),
                "supportedFlags": seccomp.supported_flags(),
            },
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
            "intelRdt": {"enabled": True, "schemata": True, "monitoring": True},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
            "memoryPolicy": {"modes": list(sched.MPOL_MODES), "flags": list(sched.MPOL_FLAGS)},
        },
        "annotations": annotations,
        # pyrunc reads no config annotation at all, so none can weaken a container
        "potentiallyUnsafeConfigAnnotations": [],
    }


def main(g, flags: dict, args: list[str]) -> int:
    if args:
        from pyrunc.errors import PyruncError
        raise PyruncError(f"features takes no arguments, got {len(args)}")
    sys.stdout.write(json.dumps(document(), indent="    ") + "\n")
    return 0
