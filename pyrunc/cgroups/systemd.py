"""--systemd-cgroup: the slice:prefix:name form, checked and refused clearly without systemd.

Only the check is implemented: placing a container through systemd's D-Bus API needs a running
systemd, which the hosts here do not have.
"""
from __future__ import annotations

import os

from pyrunc.errors import PyruncError


def parse(container_id: str, cgroups_path: str | None) -> tuple[str, str, str]:
    if not cgroups_path:
        return "system.slice", "pyrunc", container_id  # runc's default for an empty path
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise PyruncError(f'expected cgroupsPath to be of format "slice:prefix:name" for systemd '
                          f'cgroups, got {cgroups_path!r} instead')
    return parts[0], parts[1], parts[2]


def check_systemd(container_id: str, cgroups_path: str | None) -> str:
    parse(container_id, cgroups_path)
    if not os.path.isdir("/run/systemd/system"):
        raise PyruncError("systemd cgroup flag passed, but systemd support for managing cgroups "
                          "is not available")
    raise PyruncError("--systemd-cgroup is not supported by pyrunc yet")
