"""The container's filesystem: config.md "Root" and "Mounts", config-linux.md "Rootfs Mount
Propagation", "Masked Paths" and "Readonly Paths".

`prepare` runs before pivot_root, with the host's / still visible: every mount target is resolved
inside the rootfs (paths.py) and mounted through its fd. `pivot` switches root. `finalize` runs
after, on the container's own paths.
"""
from __future__ import annotations

import os
import stat

from pyrunc.errors import PyruncError
from pyrunc.init import devices, idmap, mountfd, mountopts, paths
from pyrunc.linux import syscalls as sc

_ST_TO_MS = {  # statvfs f_flag bits -> mount(2) flags, for the flags a remount must keep
    1: sc.MS_RDONLY, 2: sc.MS_NOSUID, 4: sc.MS_NODEV, 8: sc.MS_NOEXEC, 1024: sc.MS_NOATIME,
    2048: sc.MS_NODIRATIME, 4096: sc.MS_RELATIME,
}
_LOCKED = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_RELATIME


def mount_flags_of(path: str) -> int:
    f = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_TO_MS.items() if f & st)


def _bundle_path(bundle: str, source: str) -> str:
    return source if os.path.isabs(source) else os.path.join(bundle, source)


def _remount(target_fd: int, flags: int, source_flags: int) -> None:
    """Apply ro/nosuid/... to a fresh bind: the kernel ignores them on the bind itself. Flags the
    source mount has locked (nosuid, nodev, noexec, atime) must be kept or the remount fails."""
    keep = source_flags & _LOCKED
    want = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    sc.mount(None, paths.fd_path(target_fd), None, sc.MS_BIND | sc.MS_REMOUNT | keep | want)
    # verify, on the mount itself, that the flags took: a bind silently keeps its source's otherwise
    got = mount_flags_of(paths.fd_path(target_fd))
    missing = want & (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC) & ~got
    if missing:
        raise PyruncError(f"a bind mount did not take the flags {missing:#x} it was given")


def _after_mount(root_fd: int, dest: str, opts: mountopts.MountOptions) -> None:
    fd = paths.open_in_root(root_fd, dest)
    try:
        for prop in opts.propagation:
            sc.mount(None, paths.fd_path(fd), None, prop)
        if opts.attr_set or opts.attr_clr:
            sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, opts.attr_set, opts.attr_clr)
    finally:
        os.close(fd)


def mount_bind(root_fd: int, bundle: str, m: dict, opts: mountopts.MountOptions,
               index: int = -1, linux: dict | None = None) -> None:
    source = _bundle_path(bundle, m.get("source") or "")
    if not os.path.exists(source):
        raise PyruncError(f"mount {m['destination']}: source {source} does not exist")
    target = paths.make_target(root_fd, m["destination"], os.path.isdir(source))
    try:
        if idmap.wanted(m):
            tree = idmap.PREPARED.pop(index, None)
            if tree is None:
                tree = idmap.make_tree(m, source, linux or {})
            mountfd.attach(tree, target)
        else:
            sc.mount(source, paths.fd_path(target), None, sc.MS_BIND | (opts.flags & sc.MS_REC))
    finally:
        os.close(target)
    if opts.flags & ~(sc.MS_BIND | sc.MS_REC):
        fd = paths.open_in_root(root_fd, m["destination"])
        try:
            _remount(fd, opts.flags, mount_flags_of(source))
        finally:
            os.close(fd)


def _selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def _with_label(data: list[str], label: str | None) -> list[str]:
    """runc's rule: the mount label becomes a context= option only where SELinux is enabled."""
    if label and _selinux_enabled() and not any(d.startswith("context=") for d in data):
        return data + [f'context="{label}"']
    return data


def mount_fs(root_fd: int, m: dict, opts: mountopts.MountOptions, mount_label: str | None = None) -> None:
    kind = m["type"]
    dest = m["destination"]
    if kind in ("proc", "sysfs") and paths.is_symlink(root_fd, dest):
        # the image would choose where the kernel's view lands: runc refuses as well
        raise PyruncError(f"{kind} must be mounted on an ordinary directory, {dest} is a symlink")
    data = opts.data if kind in ("proc", "sysfs", "mqueue") else _with_label(opts.data, mount_label)
    copy_up = "tmpcopyup" in opts.extensions
    # a read-only tmpfs is made writable first and remounted read-only at the end, as runc does,
    # so that tmpcopyup can fill it
    flags = opts.flags & ~sc.MS_RDONLY if copy_up and not opts.flags & sc.MS_REMOUNT else opts.flags
    target = paths.make_target(root_fd, dest, True)
    under = None
    try:
        if copy_up:
            under = paths.open_in_root(root_fd, dest, os.O_RDONLY | os.O_DIRECTORY)
        sc.mount(m.get("source") or kind, paths.fd_path(target), kind, flags, ",".join(data) or None)
        if copy_up:
            top = paths.open_in_root(root_fd, dest, os.O_RDONLY | os.O_DIRECTORY)
            try:
                paths.copy_tree(under, top)
            finally:
                os.close(top)
            if flags != opts.flags:
                fd = paths.open_in_root(root_fd, dest)
                try:
                    sc.mount(None, paths.fd_path(fd), None, sc.MS_REMOUNT | opts.flags, ",".join(data) or None)
                finally:
                    os.close(fd)
    finally:
        os.close(target)
        if under is not None:
            os.close(under)


def _own_cgroups() -> dict[str, str]:
    """controller list (as /proc/self/cgroup names it) -> our cgroup path in that hierarchy."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            out[ctrls] = path
    return out


def _cgroup_hierarchies() -> list[tuple[str, str, str]]:
    """(mountpoint, fstype, super options) of the host's cgroup mounts."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, superopts = right.split()[:3]
            if fstype in ("cgroup", "cgroup2"):
                out.append((left.split()[4], fstype, superopts))
    return out


def mount_cgroup(root_fd: int, m: dict, opts: mountopts.MountOptions, cgroupns: bool,
                 cgroup_paths: dict[str, str] | None = None) -> None:
    """A cgroup mount shows the container its own cgroups: a fresh cgroup filesystem inside a
    cgroup namespace, a bind of its own directories without one. On v1 and hybrid hosts that is a
    tmpfs with one mount per hierarchy, as runc makes it. The directories are the container's
    (`cgroup_paths`), not ours: we have not joined its memory cgroup yet (see Manager.add)."""
    dest = m["destination"]
    flags = opts.flags & ~sc.MS_RDONLY
    hierarchies = _cgroup_hierarchies()
    own = cgroup_paths if cgroup_paths is not None else _own_cgroups()
    pure_v2 = any(mp == "/sys/fs/cgroup" and t == "cgroup2" for mp, t, _ in hierarchies)

    def one(sub: str, fstype: str, controllers: str, host_mp: str, own_path: str) -> None:
        target = paths.make_target(root_fd, os.path.join(dest, sub), True)
        try:
            if cgroupns:
                sc.mount(fstype, paths.fd_path(target), fstype, flags | opts.flags & sc.MS_RDONLY,
                         controllers or None)
            else:
                src = os.path.join(host_mp, own_path.lstrip("/"))
                sc.mount(src, paths.fd_path(target), None, sc.MS_BIND | sc.MS_REC)
                fd = paths.open_in_root(root_fd, os.path.join(dest, sub))
                try:
                    _remount(fd, opts.flags, mount_flags_of(src))
                finally:
                    os.close(fd)
        finally:
            os.close(target)

    if pure_v2:
        one("", "cgroup2", "", "/sys/fs/cgroup", own.get("", "/"))
        return
    target = paths.make_target(root_fd, dest, True)
    try:
        sc.mount("tmpfs", paths.fd_path(target), "tmpfs", flags, "mode=755")
    finally:
        os.close(target)
    for mp, fstype, superopts in hierarchies:
        if not mp.startswith("/sys/fs/cgroup/"):
            continue
        sub = mp[len("/sys/fs/cgroup/"):]
        if fstype == "cgroup2":
            one(sub, "cgroup2", "", mp, own.get("", "/"))
            continue
        ctrls = [o for o in superopts.split(",") if o not in ("rw", "ro") and not o.startswith(("release_agent", "clone_children", "xattr", "noprefix"))]
        key = ",".join(c for c in ctrls)
        own_path = own.get(key) or own.get(",".join(sorted(ctrls))) or "/"
        one(sub, "cgroup", key, mp, own_path)
    if opts.flags & sc.MS_RDONLY:
        fd = paths.open_in_root(root_fd, dest)
        try:
            sc.mount(None, paths.fd_path(fd), None, sc.MS_REMOUNT | sc.MS_RDONLY | flags, "mode=755")
        finally:
            os.close(fd)


def _parent_mount(path: str) -> str:
    """The mount point `path` lives on: the longest mount point that prefixes it."""
    best = "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
                best = mp
    return best


def _root_propagation(linux: dict) -> int:
    name = linux.get("rootfsPropagation") or ""
    if not name:
        return 0
    prop = mountopts.PROPAGATION.get(name)
    if prop is None:
        raise PyruncError(f"unknown rootfsPropagation {name!r} (want [r]private, [r]shared, "
                          "[r]slave or [r]unbindable)")
    return prop


def prepare(config: dict, bundle: str, rootfs: str, cgroup_paths: dict[str, str] | None = None) -> None:
    """`cgroup_paths`: the container's cgroups as /proc/PID/cgroup will name them (see
    Manager.proc_paths): without a cgroup namespace the cgroup mount binds those."""
    linux = config.get("linux") or {}
    kinds = {n.get("type") for n in linux.get("namespaces") or [] if not n.get("path")}
    prop = _root_propagation(linux)
    # the default (rslave) lets host mounts reach us and never ours the host; shared means
    # sharing with the host. Unbindable would forbid the binds below: it is applied after pivot.
    early = prop if prop and not prop & sc.MS_UNBINDABLE else sc.MS_SLAVE | sc.MS_REC
    sc.mount(None, "/", None, early)
    # a private parent keeps the self-bind below out of every other namespace, and pivot_root
    # refuses a shared parent
    sc.mount(None, _parent_mount(rootfs), None, sc.MS_PRIVATE)
    sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)  # pivot_root needs a mount point
    os.chdir(bundle)  # relative sources and fs data (overlay dirs) are the bundle's, as with runc
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    in_userns = "user" in {n.get("type") for n in linux.get("namespaces") or []}
    try:
        for i, m in enumerate(config.get("mounts") or []):
            try:
                _mount_one(root_fd, bundle, m, "cgroup" in kinds, linux, i, cgroup_paths)
            except OSError as e:
                raise PyruncError(f"cannot mount {m.get('type') or 'bind'} on "
                                  f"{m.get('destination')}: {e.strerror}") from None
        if devices.needs_setup(config.get("mounts") or []):
            devices.setup(root_fd, linux, in_userns)
        cwd = (config.get("process") or {}).get("cwd") or "/"
        os.close(paths.mkdir_all(root_fd, cwd))
    finally:
        os.close(root_fd)


def _mount_one(root_fd: int, bundle: str, m: dict, cgroupns: bool, linux: dict, index: int,
               cgroup_paths: dict[str, str] | None = None) -> None:
    dest = m.get("destination") or ""
    if not dest.startswith("/"):
        dest = "/" + dest  # runc's rule for old configs with relative destinations
    m = {**m, "destination": dest}
    opts = mountopts.parse(m.get("options"))
    if m.get("type") == "bind":
        opts.flags |= sc.MS_BIND
    check_proc_mount(root_fd, bundle, m, opts.is_bind)
    if opts.is_bind or idmap.wanted(m):
        mount_bind(root_fd, bundle, m, opts, index, linux)
    elif m.get("type") == "cgroup":
        mount_cgroup(root_fd, m, opts, cgroupns, cgroup_paths)
        return
    else:
        if not m.get("type"):
            raise PyruncError(f"mount {dest}: no type given")
        mount_fs(root_fd, m, opts, linux.get("mountLabel"))
    _after_mount(root_fd, dest, opts)


# The files under /proc a mount may cover: the ones lxcfs emulates (runc's list).
_PROC_MOUNTABLE = frozenset({
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
    "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
})


def check_proc_mount(root_fd: int, bundle: str, m: dict, is_bind: bool) -> None:
    """runc's checkProcMount. A mount over something under the container's /proc could hide what
    masked and readonly paths protect or fake what the kernel reports, so nothing may land there
    but a file lxcfs emulates; /proc itself may only get a procfs (a new one, or a bind of one).
    The destination is judged where it really lands: symlinks resolved inside the rootfs (proc
    and sysfs are never mounted through symlinks, so for them it is the path as written)."""
    dest = m["destination"]
    kind = m.get("type") or ""
    where = os.path.normpath(dest) if kind in ("proc", "sysfs") and not is_bind else _landing(root_fd, dest)
    if where != "/proc" and not where.startswith("/proc/"):
        return
    if where == "/proc":
        if is_bind:
            if _on_procfs(_bundle_path(bundle, m.get("source") or "")):
                return
        elif kind == "proc":
            return
        raise PyruncError(f"mount {dest}: only a proc filesystem may be mounted on /proc")
    if where not in _PROC_MOUNTABLE:
        raise PyruncError(f"mount {dest}: {where} is inside /proc, where only "
                          f"{', '.join(sorted(_PROC_MOUNTABLE))} may be mounted over")


def _landing(root_fd: int, dest: str) -> str:
    """`dest` as a path inside the rootfs with every symlink of its existing part resolved
    there, the missing rest taken as written."""
    parts = [p for p in dest.split("/") if p and p != "."]
    root = os.readlink(paths.fd_path(root_fd))
    tail: list[str] = []
    while True:
        try:
            fd = paths.open_in_root(root_fd, "/".join(parts))
        except OSError:
            if not parts:
                raise
            tail.insert(0, parts.pop())
            continue
        try:
            real = os.readlink(paths.fd_path(fd))
        finally:
            os.close(fd)
        inside = "/" + real[len(root):].lstrip("/") if real.startswith(root) else real
        return os.path.normpath(os.path.join(inside, *tail))


def _on_procfs(path: str) -> bool:
    """Whether `path` is on a proc filesystem: its device is that of a proc mount (os.statvfs
    does not report a filesystem type, mountinfo does)."""
    try:
        dev = os.stat(path).st_dev
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    want = f"{os.major(dev)}:{os.minor(dev)}"
    for line in lines:
        fields = line.split()
        post = line.partition(" - ")[2].split()
        if len(fields) > 2 and fields[2] == want and post and post[0] == "proc":
            return True
    return False


def pivot(rootfs: str, no_pivot: bool) -> None:
    if no_pivot:
        os.chdir(rootfs)
        sc.mount(rootfs, "/", None, sc.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
    else:
        _pivot_root(rootfs)


def _pivot_root(rootfs: str) -> None:
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        sc.pivot_root(".", ".")  # the old root now sits under the new one, at the same place
        os.fchdir(old)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)  # our unmount must not reach the host
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def _open_existing(root_fd: int, path: str) -> int | None:
    """O_PATH fd of `path` resolved inside the container's root, or None when it is absent."""
    try:
        return paths.open_in_root(root_fd, path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _mask(root_fd: int, path: str, null: list[int]) -> None:
    """A read-only empty tmpfs over a directory, the verified /dev/null over anything else."""
    fd = _open_existing(root_fd, path)
    if fd is None:
        return  # runc skips masked paths the container does not have
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            tree = mountfd.new_fs("tmpfs", {"source": "tmpfs", "ro": None}, sc.MOUNT_ATTR_RDONLY)
        else:
            if not null:
                null.append(mountfd.open_null(root_fd))
            tree = mountfd.clone_tree(null[0], recursive=False)
        mountfd.attach(tree, fd)
    except OSError as e:
        raise PyruncError(f"cannot mask {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def _readonly(root_fd: int, path: str) -> None:
    """A recursive read-only bind of the path on itself, made and attached through fds."""
    fd = _open_existing(root_fd, path)
    if fd is None:
        return
    try:
        tree = mountfd.clone_tree(fd, recursive=True)
        try:
            mountfd.set_attrs(tree, sc.MOUNT_ATTR_RDONLY, recursive=True)
        except OSError:
            os.close(tree)
            raise
        mountfd.attach(tree, fd)
    except OSError as e:
        raise PyruncError(f"cannot make {path} read-only: {e.strerror}") from None
    finally:
        os.close(fd)


def finalize(config: dict) -> None:
    """After pivot_root: readonly and masked paths, the read-only root, the root's propagation.
    Every target is resolved inside the new root and mounted on through its fd."""
    linux = config.get("linux") or {}
    root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    null: list[int] = []
    try:
        for p in linux.get("readonlyPaths") or []:
            _readonly(root_fd, p)
        for p in linux.get("maskedPaths") or []:
            _mask(root_fd, p, null)
        if (config.get("root") or {}).get("readonly"):
            sc.mount_setattr(root_fd, "", sc.AT_EMPTY_PATH, sc.MOUNT_ATTR_RDONLY)
    finally:
        for fd in null + [root_fd]:
            os.close(fd)
    # the propagation asked for applies to the new root itself, which pivot_root does not keep;
    # last, as unbindable would forbid the binds above. Private it already is.
    prop = _root_propagation(linux)
    if prop and not prop & sc.MS_PRIVATE:
        sc.mount(None, "/", None, prop)


def bind_console(slave_fd: int) -> None:
    """Bind the pty slave onto /dev/console through fds (CVE-2025-52565 class): the slave is the
    fd we opened, never a path the container could swap, and /dev/console must be a plain file or
    a device node, never a symlink or directory that would redirect the bind."""
    st = os.fstat(slave_fd)
    if not stat.S_ISCHR(st.st_mode) or not 136 <= os.major(st.st_rdev) <= 143:
        raise PyruncError("the console is not a pty slave")
    resolve = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            dev = sc.openat2(root, "dev", os.O_PATH | os.O_DIRECTORY, 0, resolve)
        except OSError:
            return  # no /dev (or not ours): the pty still works, as with runc
        try:
            try:
                os.close(os.open("console", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o600, dir_fd=dev))
            except FileExistsError:
                pass
            except OSError:
                return  # a read-only /dev: as with runc
            target = sc.openat2(dev, "console", os.O_PATH | os.O_NOFOLLOW, 0, resolve)
        except OSError as e:
            raise PyruncError(f"/dev/console in the container: {e.strerror}") from None
        finally:
            os.close(dev)
        try:
            mode = os.fstat(target).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
                raise PyruncError("/dev/console in the container is neither a file nor a device")
            mountfd.attach(mountfd.clone_tree(slave_fd, recursive=False), target)
        finally:
            os.close(target)
    finally:
        os.close(root)
