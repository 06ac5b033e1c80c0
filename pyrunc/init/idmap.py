"""idmapped mounts (config.md "Mounts": uidMappings/gidMappings): open_tree(OPEN_TREE_CLONE), then
mount_setattr(MOUNT_ATTR_IDMAP) with a user namespace holding the mount's mapping, then
move_mount onto the target.

Setting MOUNT_ATTR_IDMAP needs CAP_SYS_ADMIN over the filesystem's own user namespace, which a
process inside the container's user namespace lacks. So, like runc 1.2, the detached trees are
made while still in the host's namespaces (`prepare`, called by the stage before it unshares),
kept as fds that the init inherits across fork, and attached by the init (`attach_prepared`).
Without a container user namespace the init can make them itself.
"""
from __future__ import annotations

import os

from pyrunc.errors import PyruncError
from pyrunc.init import mountopts
from pyrunc.linux import syscalls as sc

# mount index in config["mounts"] -> detached, idmapped tree fd
PREPARED: dict[int, int] = {}


def wanted(m: dict) -> bool:
    opts = set(m.get("options") or [])
    return bool(m.get("uidMappings") or m.get("gidMappings") or opts & {"idmap", "ridmap"})


def _map_text(maps: list[dict]) -> str:
    return "".join(f"{x['containerID']} {x['hostID']} {x['size']}\n" for x in maps)


def userns_fd(uid_maps: list[dict], gid_maps: list[dict]) -> int:
    """A user namespace with these maps, held by an fd: a child unshares one, we write its maps
    (we have CAP_SETUID over it, it has nothing over us), keep its ns fd and let it exit."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            sc.unshare(sc.CLONE_NEWUSER)
            # the pid as the (host's) procfs mounted at /proc knows it, which may not be ours
            os.write(ready_w, os.readlink("/proc/self").encode())
            os.close(ready_w)
            os.read(done_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        host_pid = os.read(ready_r, 32).decode()
        if not host_pid:
            raise PyruncError("cannot make a user namespace for an idmapped mount")
        for kind, maps in (("uid", uid_maps), ("gid", gid_maps)):
            try:
                with open(f"/proc/{host_pid}/{kind}_map", "w") as f:
                    f.write(_map_text(maps))
            except OSError as e:
                raise PyruncError(f"cannot write the {kind} map of an idmapped mount: {e.strerror}"
                                  " (idmapped mounts in a user namespace are made before entering"
                                  " it)") from None
        return os.open(f"/proc/{host_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def make_tree(m: dict, source: str, linux: dict) -> int:
    """The detached, idmapped copy of `source` for mount `m`."""
    opts = mountopts.parse(m.get("options"))
    recursive = bool(opts.flags & sc.MS_REC) or "ridmap" in opts.extensions
    uid_maps = m.get("uidMappings") or linux.get("uidMappings") or []
    gid_maps = m.get("gidMappings") or linux.get("gidMappings") or []
    if not uid_maps or not gid_maps:
        raise PyruncError(f"mount {m.get('destination')}: an idmapped mount needs uidMappings and "
                          "gidMappings (on the mount or the container)")
    if not os.path.exists(source):
        raise PyruncError(f"mount {m.get('destination')}: source {source} does not exist")
    ns = userns_fd(uid_maps, gid_maps)
    try:
        tree = sc.open_tree(-100, source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC
                            | (sc.AT_RECURSIVE if recursive else 0))
        try:
            sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if recursive else 0),
                             sc.MOUNT_ATTR_IDMAP, 0, 0, ns)
        except OSError as e:
            os.close(tree)
            raise PyruncError(f"mount {m.get('destination')}: cannot idmap {source}: {e.strerror}"
                              " (the filesystem may not support idmapped mounts)") from None
        return tree
    finally:
        os.close(ns)


def prepare(config: dict, bundle: str) -> None:
    """Make every idmapped tree now, in the host's namespaces. Call before unsharing the user
    namespace; the fds survive the fork into the init (they are close-on-exec only)."""
    linux = config.get("linux") or {}
    for i, m in enumerate(config.get("mounts") or []):
        if wanted(m):
            src = m.get("source") or ""
            PREPARED[i] = make_tree(m, src if os.path.isabs(src) else os.path.join(bundle, src), linux)
