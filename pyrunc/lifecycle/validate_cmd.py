"""`pyrunc validate [--bundle DIR]`: every problem in the bundle's config.json at once.

runc has no such command; it stops at the first problem. Here each problem is one line on stderr
("/json/pointer: message") and the exit status is 1, or nothing is printed and the status is 0, so
the command drops into scripts and CI like any linter.
"""
from __future__ import annotations

import sys


def main(g, flags: dict, args: list[str]) -> int:
    from pyrunc.errors import PyruncError
    from pyrunc.spec.load import load_config
    from pyrunc.spec.validate import problems

    if args:
        raise PyruncError(f"validate takes no arguments (got {args[0]!r}); use --bundle DIR")
    bundle = str(flags.get("bundle") or ".")
    config = load_config(bundle)
    found = problems(config, bundle)
    if found:
        sys.stderr.write("".join(f"{p}\n" for p in found))
        return 1
    return 0
