"""`spec`: write a default config.json into the bundle, as `runc spec` does."""
from __future__ import annotations

from pyrunc import jsonfast as json
import os

from pyrunc.errors import PyruncError


def main(g, flags: dict, args: list[str]) -> int:
    from pyrunc.spec.default import default_config

    bundle = flags.get("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.lexists(path):
        raise PyruncError(f"file {path} exists: remove it first")
    if not os.path.isdir(bundle):
        raise PyruncError(f"bundle {bundle} is not a directory")
    config = default_config(rootless=flags.get("rootless", False), uid=os.getuid(), gid=os.getgid())
    with open(path, "x") as f:
        f.write(json.dumps(config, indent="\t"))
        f.write("\n")
    return 0
