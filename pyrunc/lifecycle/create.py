"""`create`: runtime.md's create operation, read top to bottom.

1. load and validate config.json; claim the ID (mkdir of the state dir) and hold its lock;
2. make the exec fifo and the cgroup;
3. fork the first child (pyrunc.init.stage1), place it in the cgroup, write its uid/gid maps when it
   asks, and learn the pid of the container's init it forks into the new pid namespace;
4. let the init build the rootfs; run prestart and createRuntime hooks when it asks;
5. when the init says `ready` (it then blocks on the exec fifo until `start`), record the state.
Any failure undoes every earlier step: no process, cgroup or state dir is left behind.
"""
from __future__ import annotations

import os
import time

from pyrunc import channel, state
from pyrunc.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket


def _now() -> str:
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1_000_000_000)) + f".{t % 1_000_000_000:09d}Z"


def _write_id_maps(pid: int, linux: dict) -> None:
    """Map the new user namespace of `pid` (stage1, waiting on the channel) as the config says.
    Only a runtime without CAP_SETGID over the parent namespace (rootless) must first deny
    setgroups, or the kernel refuses the gid_map; a root runtime leaves setgroups allowed so the
    container may set its additionalGids, as runc does."""
    for kind in ("uid", "gid"):
        maps = linux.get(f"{kind}Mappings") or []
        if not maps:
            continue
        if kind == "gid" and os.geteuid() != 0:
            try:
                with open(f"/proc/{pid}/setgroups", "w") as f:
                    f.write("deny")
            except OSError as e:
                raise PyruncError(f"cannot deny setgroups for the user namespace: {e.strerror}") from None
        text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)
        try:
            with open(f"/proc/{pid}/{kind}_map", "w") as f:
                f.write(text)
        except OSError as e:
            raise PyruncError(f"cannot write {kind}Mappings ({text.strip()!r}): {e.strerror}") from None


def _root_host_id(linux: dict, kind: str) -> int:
    """The host id the container's root maps to (0 without a user namespace)."""
    for m in linux.get(f"{kind}Mappings") or []:
        if m["containerID"] <= 0 < m["containerID"] + m["size"]:
            return m["hostID"] - m["containerID"]
    return 0


def connect_console(path: str) -> "socket.socket":
    import socket  # only with a terminal: the module is slow to import
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise PyruncError(f"cannot connect to console socket {path}: {e.strerror}") from None
    return sock


def create(root: str, container_id: str, bundle: str, *, pid_file: str | None = None,
           console_socket: str | None = None, no_pivot: bool = False,
           no_new_keyring: bool = False, preserve_fds: int = 0, systemd_cgroup: bool = False,
           rootless: bool = False,
           console_sock: socket.socket | None = None, config: dict | None = None) -> dict:
    """Create the container and return its state.json contents. `console_sock`, an already
    connected socket, takes the place of `console_socket` for `run` in the foreground; `config`,
    the bundle's config.json already read by `load_config`, saves reading it twice."""
    from pyrunc.spec.load import load_config
    from pyrunc.spec.validate import check

    state.check_id(container_id)
    bundle = os.path.abspath(bundle)
    if config is None:
        config = load_config(bundle)
    check(config, bundle)
    process = config.get("process")
    if not process:
        raise PyruncError("config.json has no process to run")
    terminal = bool(process.get("terminal"))
    if terminal and console_socket is None and console_sock is None:
        raise PyruncError("cannot allocate tty if pyrunc will detach without setting console socket")
    if not terminal and console_socket is not None:
        raise PyruncError("cannot use console socket if pyrunc will not detach or allocate tty")
    if preserve_fds < 0:
        raise PyruncError("--preserve-fds must not be negative")
    linux = config.get("linux") or {}
    rootfs = os.path.join(bundle, config["root"]["path"])

    path = state.claim(root, container_id)
    lock_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    import fcntl
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    record = {
        "ociVersion": config.get("ociVersion", ""), "id": container_id, "pid": 0,
        "status": "creating", "bundle": bundle, "rootfs": os.path.normpath(rootfs),
        "created": _now(), "owner": "", "annotations": config.get("annotations") or {},
        "config": config,
    }
    mgr = None
    init_pid = 0
    to_close: list = []
    try:
        state.write(path, record)
        fifo = os.path.join(path, state.EXEC_FIFO)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)
        os.chown(fifo, _root_host_id(linux, "uid"), _root_host_id(linux, "gid"))
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        to_close.append(fifo_fd)

        from pyrunc.cgroups import Manager
        mgr = Manager.for_container(container_id, linux.get("cgroupsPath"), linux.get("resources"),
                                    systemd_cgroup, linux_devices=linux.get("devices"),
                                    rootless=rootless)
        mgr.create()
        # recorded at once: if this process is killed from here on, `delete --force` still
        # finds the cgroup (and, below, the init) to remove
        record["cgroup"] = mgr.to_state()
        state.write(path, record)

        if terminal and console_sock is None:
            console_sock = connect_console(console_socket)
            to_close.append(console_sock)

        parent, child = channel.pair()
        to_close += [parent]
        first = os.fork()
        if first == 0:  # the child: never returns
            parent.close()
            os.close(lock_fd)  # an inherited flock would block `start` until the init execs
            from pyrunc.init.stage1 import run
            run(child, config, bundle, container_id, fifo_fd=fifo_fd,
                console=console_sock if terminal else None, no_pivot=no_pivot,
                no_new_keyring=no_new_keyring, preserve_fds=preserve_fds,
                cgroup_paths=mgr.proc_paths())
        child.close()
        try:
            mgr.add(first, defer_memory=True)  # memory is joined last: see Manager.add
            channel.send(parent, "go")
            while True:
                word, arg = channel.recv(parent)
                if word == "maps":
                    _write_id_maps(first, linux)
                    channel.send(parent, "ok")
                elif word == "cgroupns":  # see stage1
                    mgr.add_deferred(first)
                    channel.send(parent, "ok")
                elif word == "unshared":
                    mgr.leave_memory(first)
                    channel.send(parent, "ok")
                elif word == "pid":
                    init_pid = int(arg)
                    break
                elif word == "error":
                    raise PyruncError(arg)
                else:
                    raise PyruncError("container setup exited before the container's init started")
        finally:
            os.waitpid(first, 0)
        record["pid"] = init_pid
        record["cgroup"] = mgr.to_state()  # a rootless runtime may have given up hierarchies
        record["init_start_time"] = state.process_start_time(init_pid)
        if linux.get("netDevices"):  # before the hooks, which may want to see them
            from pyrunc import netdevs
            record["netDevices"] = netdevs.move_in(linux["netDevices"], init_pid)
        if linux.get("intelRdt"):
            from pyrunc import intelrdt
            record["intelRdt"] = intelrdt.apply(linux["intelRdt"], container_id, init_pid)
        state.write(path, record)
        channel.send(parent, "go")
        channel.expect(parent, "hooks")
        from pyrunc import hooks
        oci = {"ociVersion": record["ociVersion"], "id": container_id, "status": "creating",
               "pid": init_pid, "bundle": bundle, "annotations": record["annotations"]}
        hooks.run(config, "prestart", oci)
        hooks.run(config, "createRuntime", oci)
        from pyrunc import jsonfast
        channel.send(parent, "ok", jsonfast.dumps(oci))
        channel.expect(parent, "ready")
        mgr.add_deferred(init_pid)
        record["cgroup"] = mgr.to_state()
        try:  # since Linux 6.2 a task keeps the affinity it inherited from us: its cpuset decides
            os.sched_setaffinity(init_pid, range(os.cpu_count() or 1))
        except OSError:
            pass
        record["status"] = "created"
        state.write(path, record)
        if pid_file:
            write_pid_file(pid_file, init_pid)
        return record
    except BaseException:
        if record.get("netDevices"):  # while the init keeps their namespace alive
            from pyrunc import netdevs
            netdevs.give_back(record)
        if init_pid:
            state.kill_and_wait(init_pid, record.get("init_start_time"))
        if record.get("intelRdt"):
            from pyrunc import intelrdt
            intelrdt.remove(record["intelRdt"])
        if mgr is not None:
            try:
                mgr.destroy()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
        state.remove(path)
        raise
    finally:
        for item in to_close:
            item.close() if hasattr(item, "close") else os.close(item)
        os.close(lock_fd)


def write_pid_file(pid_file: str, pid: int) -> None:
    """Atomically, as runc does: a reader never sees an empty pid file."""
    pid_file = os.path.abspath(pid_file)
    tmp = os.path.join(os.path.dirname(pid_file), f".{os.path.basename(pid_file)}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, pid_file)
    except OSError as e:
        raise PyruncError(f"cannot write pid file {pid_file}: {e.strerror}") from None


def main(g, flags: dict, args: list[str]) -> int:
    if len(args) != 1:
        raise PyruncError(f"create takes exactly one container id, got {len(args)} arguments")
    create(g.root, args[0], flags.get("bundle") or ".", pid_file=flags.get("pid_file"),
           console_socket=flags.get("console_socket"), no_pivot=flags.get("no_pivot", False),
           no_new_keyring=flags.get("no_new_keyring", False),
           preserve_fds=flags.get("preserve_fds", 0), systemd_cgroup=g.systemd_cgroup,
           rootless=g.is_rootless())
    return 0
