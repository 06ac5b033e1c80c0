"""`ps`: the container's processes, as ps(1) shows them (containerd's top) or as a JSON pid list."""
from __future__ import annotations

from pyrunc import jsonfast as json
import subprocess
import sys

from pyrunc.errors import PyruncError
from pyrunc.cgroups.cmd import load, need_id


def main(g, flags: dict, args: list[str]) -> int:
    cid = need_id(args, "ps")
    _, record, _, mgr = load(g.root, cid)
    from pyrunc.processes import container_pids
    pids = container_pids(record, mgr)
    fmt = flags.get("format") or "table"
    if fmt == "json":
        sys.stdout.write(json.dumps(pids) + "\n")
        return 0
    if fmt != "table":
        raise PyruncError(f"invalid format option {fmt!r}: use table or json")
    ps_args = args[1:] or ["-ef"]
    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise PyruncError("ps(1) is not installed on this host") from None
    if out.returncode != 0:
        raise PyruncError(f"ps {' '.join(ps_args)} failed: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise PyruncError("couldn't find PID field in ps output")
    col = header.index("PID")
    keep = set(pids)
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in keep:
            sys.stdout.write(line + "\n")
    return 0
