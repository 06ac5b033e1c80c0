"""`list`: every container under the state root, as runc's table, JSON, or IDs only."""
from __future__ import annotations

from pyrunc import jsonfast as json
import os
import sys

from pyrunc import state
from pyrunc.errors import PyruncError


def _owner(path: str) -> str:
    uid = os.stat(path).st_uid
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"#{uid}"


def entries(root: str) -> list[dict]:
    out = []
    for cid in state.list_ids(root):
        path = state.container_dir(root, cid)
        try:
            record = state.read(root, cid)
        except PyruncError:
            continue  # deleted meanwhile, or being created
        out.append({**state.oci_state(path, record), "owner": _owner(path)})
    return out


def main(g, flags: dict, args: list[str]) -> int:
    fmt = flags.get("format") or "table"
    if fmt not in ("table", "json"):
        raise PyruncError(f"invalid format option {fmt!r} (want table or json)")
    items = entries(g.root)
    if flags.get("quiet"):
        sys.stdout.write("".join(f"{e['id']}\n" for e in items))
    elif fmt == "json":
        sys.stdout.write(json.dumps(items) + "\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(e["id"], str(e["pid"]), e["status"], e["bundle"], e["created"], e["owner"]) for e in items]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            sys.stdout.write("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
    return 0
