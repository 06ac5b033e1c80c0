"""`state`: the runtime-spec state of one container, as JSON on stdout."""
from __future__ import annotations

from pyrunc import jsonfast as json
import sys

from pyrunc import state


def query(root: str, container_id: str) -> dict:
    record = state.read(root, container_id)
    return state.oci_state(state.container_dir(root, container_id), record)


def main(g, flags: dict, args: list[str]) -> int:
    sys.stdout.write(json.dumps(query(g.root, args[0]), indent=2) + "\n")
    return 0
