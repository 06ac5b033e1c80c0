"""The container's cgroup, on v1, v2 and hybrid hosts, behind one small interface.

`pyrunc state` imports this module for `is_frozen`, so only `os` is imported at the top; the
hierarchy discovery, resource writers, stats and the eBPF device filter live in submodules that are
imported when a method needs them.

Placement matches runc 1.1.5 as measured on the hybrid hosts here: an empty cgroupsPath means the
relative path <container id>; a relative path is placed under the cgroup of the runtime process
itself in each hierarchy; an absolute path is taken from the root of each hierarchy's mount. Every
mounted hierarchy gets the directory, name=systemd and the cgroup2 mount of a hybrid host included.
"""
from __future__ import annotations

import errno
import os

_NO_PERMISSION = (errno.EPERM, errno.EACCES, errno.EROFS)


def is_frozen(state: dict) -> bool:
    """Cheap: one small read of the freezer file recorded at create time."""
    path = state.get("freezer")
    if not path:
        return False
    try:
        with open(path) as f:
            data = f.read()
    except OSError:
        return False
    if path.endswith("freezer.state"):
        return data.strip() in ("FROZEN", "FREEZING")
    return data.strip() == "1"  # cgroup.freeze


class Manager:
    """The cgroup directories of one container, one per hierarchy.

    `paths` maps a hierarchy key ("cpu", "cpu,cpuacct", "name=systemd"; "" for cgroup2) to the
    container's directory in it. `created` lists the directories create made, parents first, so that
    destroy removes exactly those (plus the leaf, as runc does) and nothing a neighbour owns.
    """

    def __init__(self, paths: dict[str, str], kind: str, resources: dict | None = None,
                 created: list[str] | None = None, preexisting: bool = False,
                 linux_devices: list | None = None, rootless: bool = False,
                 droppable: bool = False, systemd: dict | None = None):
        self.paths = paths
        # --systemd-cgroup: {"unit", "slice", "started"}; see pyrunc.cgroups.systemd
        self.systemd = systemd
        self.rootless = rootless
        # runc's rootless rule: without a cgroupsPath, a hierarchy the runtime has no permission
        # for is dropped (the container runs without it) instead of failing the create; a limit
        # that needed it still fails, clearly, in _apply
        self.droppable = droppable
        self.linux_devices = linux_devices or []
        self.kind = kind
        self.resources = resources or {}
        self.created = created or []
        self.preexisting = preexisting

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def for_container(cls, container_id: str, cgroups_path: str | None, resources: dict | None,
                      systemd: bool = False, linux_devices: list | None = None,
                      rootless: bool = False) -> "Manager":
        """`linux_devices` (config linux.devices) are allowed rwm in the device cgroup, as runc
        allows them; leave it None if the caller does not have them at hand."""
        from pyrunc.errors import PyruncError
        unit = None
        if systemd:
            from pyrunc.cgroups.systemd import placement
            unit, slice_name, cgroups_path = placement(container_id, cgroups_path, rootless)
        from pyrunc.cgroups import hierarchy
        hs = hierarchy.mounted()
        kind = hierarchy.host_kind(hs)
        if kind == "none":
            raise PyruncError("no cgroup hierarchy is mounted on this host (see /proc/self/mountinfo)")
        inner = cgroups_path or container_id
        own = hierarchy.own_paths() if not inner.startswith("/") else {}
        paths: dict[str, str] = {}
        for h in hs:
            if inner.startswith("/"):
                d = os.path.join(h.mountpoint, inner.lstrip("/"))
            else:
                d = os.path.join(h.host_dir(own.get(h.key, "/")), inner)
            d = os.path.normpath(d)
            if d != h.mountpoint and not d.startswith(h.mountpoint.rstrip("/") + "/"):
                raise PyruncError(f"cgroupsPath {cgroups_path!r} leaves the cgroup mount {h.mountpoint}")
            if d == h.mountpoint:
                raise PyruncError(f"cgroupsPath {cgroups_path!r} names the root cgroup")
            paths[h.key] = d
        return cls(paths, kind, resources, linux_devices=linux_devices, rootless=rootless,
                   droppable=rootless and not cgroups_path,
                   systemd={"unit": unit, "slice": slice_name, "started": False} if unit else None)

    def to_state(self) -> dict:
        return {"kind": self.kind, "paths": self.paths, "created": self.created,
                "preexisting": self.preexisting, "freezer": self._freezer_file(),
                "resources": self.resources, "linux_devices": self.linux_devices,
                "rootless": self.rootless, "droppable": self.droppable, "systemd": self.systemd}

    @classmethod
    def from_state(cls, d: dict) -> "Manager":
        return cls(dict(d.get("paths") or {}), d.get("kind", "v1"), d.get("resources"),
                   list(d.get("created") or []), bool(d.get("preexisting")),
                   d.get("linux_devices"), bool(d.get("rootless")), bool(d.get("droppable")),
                   d.get("systemd"))

    # ---- helpers ------------------------------------------------------------------------
    def path_of(self, controller: str) -> str | None:
        """The directory of the hierarchy that carries `controller` ("" for cgroup2 itself)."""
        if controller == "":
            return self.paths.get("")
        if self.kind == "v2":  # one hierarchy; its freezer is cgroup.freeze, not a controller
            return None if controller == "freezer" else self.paths.get("")
        for key, d in self.paths.items():
            if key and controller in key.split(","):
                return d
        return None

    def proc_paths(self) -> dict[str, str]:
        """The container's cgroup in each hierarchy as /proc/PID/cgroup will name it once the init
        has joined, keyed like Manager.paths ("" for cgroup2, "cpu,cpuacct", "name=systemd").

        The init needs this to bind-mount its own cgroups when there is no cgroup namespace: it
        cannot read them from /proc/self/cgroup, because the memory join is deferred until just
        before exec (see add), so at mount time that file still names the runtime's own memory
        cgroup (and, on pure v2, the runtime's cgroup for everything). Host side, before fork.
        """
        from pyrunc.cgroups import hierarchy
        out: dict[str, str] = {}
        for h in hierarchy.mounted():
            d = self.paths.get(h.key)
            if d is None:
                continue
            rel = os.path.relpath(d, h.mountpoint)
            root = h.mount_root if h.mount_root != "/" else ""
            out[h.key] = root + "/" + ("" if rel == "." else rel)
        return out

    def unified(self) -> str | None:
        return self.paths.get("")

    def _freezer_file(self) -> str | None:
        d = self.path_of("freezer")
        if d:
            return os.path.join(d, "freezer.state")
        u = self.unified()
        if u:
            return os.path.join(u, "cgroup.freeze")
        return None

    def _main_dir(self) -> str:
        """The hierarchy whose cgroup.procs lists the container's processes most reliably."""
        if self.kind == "v2":
            return self.paths[""]
        for c in ("freezer", "pids", "memory", "cpu", "devices"):
            d = self.path_of(c)
            if d:
                return d
        return next(iter(self.paths.values()))

    def _start_unit(self, pid: int) -> None:
        """systemd makes the scope with `pid` in it; then, as without systemd, the hierarchies it
        does not manage get their directory and the pid, and pyrunc writes the limits."""
        from pyrunc.cgroups import fs, hierarchy, place, systemd
        sd = self.systemd
        systemd.start_unit(sd["unit"], sd["slice"], pid,
                           systemd.properties(self.resources, v2=self.kind == "v2"))
        sd["started"] = True
        # where systemd really put it: its own cgroup may not be the root (systemd in a container)
        own = hierarchy.own_paths(str(pid))
        ref = own.get("") if "" in self.paths else own.get("name=systemd")
        if ref and ref.endswith("/" + sd["unit"]):
            for h in hierarchy.mounted():
                if h.key in self.paths:
                    self.paths[h.key] = h.host_dir(ref)
        missing = {k: d for k, d in self.paths.items() if not os.path.isdir(d)}
        if missing:
            made, _ = place.make_dirs(missing, self.kind)
            self.created += made
            for d in missing.values():
                fs.write(d, "cgroup.procs", pid)
        if self.resources:
            self._apply(self.resources, creating=True)

    def _drop(self, key: str) -> None:
        """Give up hierarchy `key` (see `droppable`), removing the directories made in it."""
        from pyrunc.cgroups import place
        self.paths.pop(key)
        top = place.mountpoints().get(key, "/").rstrip("/") + "/"
        place.rmdirs([d for d in self.created if d.startswith(top)])
        self.created = [d for d in self.created if os.path.isdir(d)]

    def _join(self, key: str, pid: int) -> None:
        from pyrunc.cgroups import fs
        from pyrunc.errors import PyruncError
        try:
            fs.write(self.paths[key], "cgroup.procs", pid)
        except PyruncError as e:
            if not (self.droppable and e.errno in _NO_PERMISSION):
                raise
            self._drop(key)

    # ---- lifecycle ----------------------------------------------------------------------
    def create(self) -> None:
        from pyrunc.cgroups import place
        from pyrunc.errors import PyruncError
        if self.systemd:  # systemd makes the cgroup when the init joins (_start_unit)
            from pyrunc.cgroups import systemd
            systemd.connect()  # unreachable: say so before anything is made
            return
        try:
            self.created, self.preexisting = place.make_dirs(
                self.paths, self.kind, droppable=self.droppable)
            if self.resources:
                self._apply(self.resources, creating=True)
        except BaseException as e:
            try:
                self.destroy()
            except Exception:
                pass
            if isinstance(e, OSError):
                raise PyruncError(f"cannot create cgroup: {e}") from None
            raise

    def add(self, pid: int, defer_memory: bool = False) -> None:
        """Move `pid` into every hierarchy; with `defer_memory`, into all but the memory one.

        Memory is charged to the cgroup a page is faulted in from, and charges never follow a
        moved process. A Python init that joins the memory cgroup early charges the pages it
        copies-on-write while building the rootfs (several MiB), so a container with a 2 MiB limit
        is OOM-killed before its program runs. Joining memory last, with `add_deferred` just
        before the user's program is exec'd, leaves those charges with the runtime's own cgroup
        and the container's limit covers only what the container's program uses (crun's side).
        On pure v2 memory shares the one hierarchy, so deferring defers the whole join. Do not
        defer for a container with a cgroup namespace: its root is fixed when it is unshared.
        """
        if self.systemd and not self.systemd["started"]:
            # systemd moves a pid into every controller of its scope at once, and the init needs
            # the scope's cgroup to exist as it builds the rootfs: no deferring (as in runc)
            self._start_unit(pid)
            return
        mem = self.path_of("memory") if defer_memory else None
        for key, d in list(self.paths.items()):
            if d != mem:
                self._join(key, pid)

    def add_deferred(self, pid: int) -> None:
        """The second half of add(pid, defer_memory=True): join the memory hierarchy now."""
        if self.systemd and not self.systemd["started"]:
            self._start_unit(pid)
            return
        mem = self.path_of("memory")
        for key, d in list(self.paths.items()):
            if d == mem:
                self._join(key, pid)

    def leave_memory(self, pid: int) -> None:
        """Undo add_deferred: move `pid` back to the runtime's own memory cgroup. Used around the
        unshare of a cgroup namespace, whose root must be the container's cgroup everywhere.
        Not with systemd: a scope whose cgroup empties is stopped (memory stays charged here)."""
        from pyrunc.cgroups import fs, hierarchy
        mem = self.path_of("memory")
        if not mem or self.systemd:
            return
        own = hierarchy.own_paths()
        for h in hierarchy.mounted():
            if self.paths.get(h.key) == mem:
                fs.write(h.host_dir(own.get(h.key, "/")), "cgroup.procs", pid)
                return

    def pids(self) -> list[int]:
        from pyrunc.cgroups import fs
        if not self.paths:  # a rootless container that could make no cgroup at all
            return []
        try:
            return fs.procs(self._main_dir())
        except OSError:
            return []

    def signal_all(self, sig: int) -> None:
        from pyrunc.cgroups import freezer
        freezer.signal_all(self, sig)

    def destroy(self) -> None:
        from pyrunc.cgroups import place
        if self.systemd and self.systemd["started"]:
            from pyrunc.cgroups import systemd
            systemd.stop_unit(self.systemd["unit"])
        place.remove_dirs(self)

    def freeze(self) -> None:
        from pyrunc.cgroups import freezer
        freezer.freeze(self)

    def thaw(self) -> None:
        from pyrunc.cgroups import freezer
        freezer.thaw(self)

    def update(self, resources: dict) -> None:
        from pyrunc.cgroups import merge
        self._apply(resources, creating=False)
        self.resources = merge.merge(self.resources, resources)
        if self.systemd and self.systemd["started"]:
            from pyrunc.cgroups import systemd
            systemd.set_properties(self.systemd["unit"],
                                   systemd.properties(resources, v2=self.kind == "v2"))

    def _apply(self, resources: dict, creating: bool) -> None:
        if self.rootless:  # runc: a rootless runtime's device cgroup is not expected to work
            resources = {k: v for k, v in resources.items() if k != "devices"}
        if self.kind == "v2":
            if "" not in self.paths:
                from pyrunc.cgroups import v2
                from pyrunc.errors import PyruncError
                if v2.convert(resources, has_bfq=False):
                    raise PyruncError("linux.resources is set but this rootless container could "
                                      "not join or create its cgroup")
                return
            from pyrunc.cgroups import v2
            v2.apply(self.paths[""], resources, creating=creating,
                     linux_devices=self.linux_devices)
        else:
            from pyrunc.cgroups import v1
            v1.apply(self, resources, creating=creating)

    def stats(self) -> dict:
        from pyrunc.cgroups import stats
        return stats.collect(self)
