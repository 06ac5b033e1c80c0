"""What pause, update, events and ps share: the container's state and its cgroup Manager."""
from __future__ import annotations

from pyrunc.errors import PyruncError


def load(root: str, container_id: str):
    """(state dir, state dict, status, Manager) of a container that has a cgroup."""
    from pyrunc import state
    from pyrunc.cgroups import Manager
    path = state.container_dir(root, container_id)
    st = state.read(root, container_id)
    cg = st.get("cgroup")
    if not cg:
        raise PyruncError(f"container {container_id!r} has no cgroup")
    return path, st, state.status(path, st), Manager.from_state(cg)


def need_id(args: list[str], cmd: str) -> str:
    if not args:
        raise PyruncError(f'"{cmd}" requires a container id')
    return args[0]
