"""`exec`: run a new process in a created or running container, as runc exec does.

1. read the state; refuse a stopped container (and a paused one, unless --ignore-paused);
2. build the process: the config's process (env, cwd, user, capabilities, rlimits,
   noNewPrivileges, LSM labels...) with the flags applied over it, or a whole process.json (-p);
3. open the init's namespaces; join its pid and time namespaces for our children only, with the
   initial execCPUAffinity set, and fork (pyrunc.init.exec_stage takes over the child);
4. put the child in the container's cgroup (or --cgroup sub-cgroups), memory last, then set the
   final execCPUAffinity; the child joins the other namespaces and applies the process settings;
5. the channel closing without an error means execve happened: write --pid-file, then either
   return (--detach) or stay with the process: signals forwarded, the pty proxied, and its exit
   status becomes ours.
Every failure before execve is one line, and the child is killed and reaped: nothing is left.
"""
from __future__ import annotations

import os
import _signal as signal  # not `signal`: it imports enum (~5 ms) for its Signals class

from pyrunc import channel, state
from pyrunc.errors import PyruncError


# ---- the process ------------------------------------------------------------------------------

def _copy_process(proc: dict) -> dict:
    """Deep enough that the flags never change the recorded config."""
    out = dict(proc)
    out["env"] = list(proc.get("env") or [])
    user = dict(proc.get("user") or {})
    user["additionalGids"] = list(user.get("additionalGids") or [])
    out["user"] = user
    if proc.get("capabilities") is not None:
        out["capabilities"] = {k: list(v or []) for k, v in proc["capabilities"].items()}
    return out


def _parse_user(text: str, user: dict) -> None:
    uid, colon, gid = text.partition(":")
    try:
        user["uid"] = int(uid)
        if colon:
            user["gid"] = int(gid)
    except ValueError:
        raise PyruncError(f"invalid --user {text!r}: want <uid>[:<gid>] as numbers") from None
    if user["uid"] < 0 or user.get("gid", 0) < 0:
        raise PyruncError(f"invalid --user {text!r}: ids must not be negative")


def process_from_flags(config_process: dict, flags: dict, args: list[str]) -> dict:
    """runc's rules: args replace the config's; cwd, apparmor, label and user override; env and
    additional gids are appended; each --cap is added to the bounding, effective and permitted
    sets (and ambient if the config lists inheritable ones, as runc 1.1 does); terminal is off unless --tty; noNewPrivileges changes only when
    --no-new-privs is given."""
    p = _copy_process(config_process)
    p["args"] = list(args)
    if flags.get("cwd"):
        p["cwd"] = flags["cwd"]
    if flags.get("apparmor"):
        p["apparmorProfile"] = flags["apparmor"]
    if flags.get("process_label"):
        p["selinuxLabel"] = flags["process_label"]
    if flags.get("cap"):
        c = p.setdefault("capabilities", {})
        # ambient needs inheritable, which --cap leaves alone: only where the config has one
        kinds = ("bounding", "effective", "permitted") + (("ambient",) if c.get("inheritable") is not None else ())
        for kind in kinds:
            c[kind] = list(c.get(kind) or []) + list(flags["cap"])
    p["env"] += flags.get("env") or []
    p["terminal"] = bool(flags.get("tty"))
    if "no_new_privs" in flags:
        p["noNewPrivileges"] = bool(flags["no_new_privs"])
    if flags.get("user"):
        _parse_user(flags["user"], p["user"])
    for g in flags.get("additional_gids") or []:
        try:
            gid = int(g)
        except ValueError:
            raise PyruncError(f"invalid --additional-gids {g!r}: not a number") from None
        if gid < 0:
            raise PyruncError(f"additional-gids must be a positive number {gid}")
        p["user"]["additionalGids"].append(gid)
    return p


def load_process(path: str) -> dict:
    from pyrunc import jsonfast
    try:
        with open(path, "rb") as f:
            proc = jsonfast.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise PyruncError(f"cannot read process file {path}: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise PyruncError(f"process file {path}: malformed JSON: {e}") from None
    if not isinstance(proc, dict):
        raise PyruncError(f"process file {path}: the top level must be a JSON object")
    return proc


def check_process(p: dict) -> None:
    """What runc checks before exec, plus the types the rest of exec relies on."""
    args = p.get("args")
    if not args or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise PyruncError("process args must be a non-empty list of strings")
    cwd = p.get("cwd")
    if not cwd:
        raise PyruncError("process cwd must not be empty")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise PyruncError(f"process cwd must be an absolute path, not {cwd!r}")
    for kv in p.get("env") or []:
        if not isinstance(kv, str) or "=" not in kv:
            raise PyruncError(f"process env entry {kv!r} must have the form KEY=value")
    for key in ("user", "capabilities", "execCPUAffinity", "consoleSize"):
        if p.get(key) is not None and not isinstance(p[key], dict):
            raise PyruncError(f"process {key} must be an object")
    if p.get("rlimits") is not None and not isinstance(p["rlimits"], list):
        raise PyruncError("process rlimits must be a list")


# ---- the cgroup -------------------------------------------------------------------------------

def sub_cgroups(specs: list[str], mgr):
    """A Manager for the --cgroup sub-cgroups (`[<controller>[,<controller>]:]<path>`, existing
    directories below the container's cgroup), or `mgr` itself without --cgroup."""
    if not specs:
        return mgr
    from pyrunc.cgroups import Manager
    subs: dict[str, str] = {}
    for spec in specs:
        parts = spec.split(":")
        if len(parts) > 2:
            raise PyruncError(f"invalid --cgroup argument: {spec}")
        if len(parts) == 1:
            if len(specs) != 1:
                raise PyruncError(f"invalid --cgroup argument: {spec} (missing <controller>: prefix)")
            subs[""] = spec
        else:
            for ctrl in parts[0].split(","):
                subs[ctrl] = parts[1]
    paths = dict(mgr.paths)
    if "" in subs and len(subs) == 1:
        targets = {key: subs[""] for key in paths}
    else:
        if mgr.kind == "v2":
            raise PyruncError("--cgroup: a controller cannot be named on cgroup v2 (give only a path)")
        targets = {}
        for ctrl, sub in subs.items():
            keys = [k for k in paths if k and ctrl in k.split(",")]
            if not keys:
                raise PyruncError(f"--cgroup: controller {ctrl!r} has no cgroup for this container")
            for k in keys:
                if targets.get(k, sub) != sub:
                    raise PyruncError(f"--cgroup: conflicting sub-cgroups for {k}")
                targets[k] = sub
    for key, sub in targets.items():
        base = paths[key]
        d = os.path.normpath(os.path.join(base, sub.lstrip("/")))
        if d != base and not d.startswith(base + "/"):
            raise PyruncError(f"--cgroup: {sub!r} leaves the container's cgroup")
        if not os.path.isdir(d):
            raise PyruncError(f"--cgroup: sub-cgroup {d} does not exist")
        paths[key] = d
    return Manager(paths, mgr.kind, preexisting=True)


# ---- namespaces -------------------------------------------------------------------------------

def _open_namespaces(pid: int) -> list[tuple[str, int]]:
    """The init's namespaces that differ from ours, in join order. A namespace we are already in
    is skipped: setns into one's own user namespace is refused, the others would be no-ops."""
    from pyrunc.linux.namespaces import KINDS
    fds: list[tuple[str, int]] = []
    try:
        for kind, (_, name) in KINDS.items():
            try:
                theirs = os.stat(f"/proc/{pid}/ns/{name}")
                ours = os.stat(f"/proc/self/ns/{name}_for_children" if kind in ("pid", "time")
                               else f"/proc/self/ns/{name}")
            except FileNotFoundError:
                continue  # a namespace kind this kernel does not have
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                continue
            fds.append((kind, os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
    except OSError as e:
        for _, fd in fds:
            os.close(fd)
        raise PyruncError(f"cannot open the namespaces of the container's init: {e.strerror}") from None
    return fds


class _ForChildren:
    """Join the pid and time namespaces for our next fork only: they apply to children, and
    `Container.exec` must leave a long-lived caller as it found it."""

    def __init__(self, fds: list[tuple[str, int]]):
        self.fds = fds
        self.saved: list[tuple[str, int]] = []

    def __enter__(self) -> None:
        from pyrunc.linux import namespaces as ns
        from pyrunc.linux import syscalls as sc
        for kind, fd in self.fds:
            name = ns.KINDS[kind][1]
            self.saved.append((kind, os.open(f"/proc/self/ns/{name}_for_children",
                                             os.O_RDONLY | os.O_CLOEXEC)))
            try:
                sc.setns(fd, ns.KINDS[kind][0])
            except OSError as e:
                self.__exit__()
                raise PyruncError(f"cannot join the container's {kind} namespace: {e.strerror}") from None

    def __exit__(self, *exc) -> None:
        from pyrunc.linux import namespaces as ns
        from pyrunc.linux import syscalls as sc
        for kind, fd in self.saved:
            try:
                sc.setns(fd, ns.KINDS[kind][0])
            finally:
                os.close(fd)
        self.saved = []


class _Affinity:
    """execCPUAffinity.initial for this process while it forks (the child inherits it); ours is
    restored afterwards."""

    def __init__(self, cpus: str | None):
        self.cpus = cpus
        self.saved = None

    def __enter__(self) -> None:
        if self.cpus:
            from pyrunc.linux.sched import set_affinity
            self.saved = os.sched_getaffinity(0)
            set_affinity(self.cpus, "initial")

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            os.sched_setaffinity(0, self.saved)


def _final_affinity(cpus: str | None, pid: int) -> None:
    """After every cgroup move. Without `final` the process gets all the CPUs of the container's
    cpuset: kernels before 6.2 did that on the move, later ones keep the affinity it inherited
    from us (from `initial`, or from whoever started pyrunc), so we ask for every CPU and the
    kernel narrows it to the cpuset, as runc does."""
    if cpus:
        from pyrunc.linux.sched import set_affinity
        set_affinity(cpus, "final", pid=pid)
        return
    try:
        os.sched_setaffinity(pid, range(max(os.cpu_count() or 1, 1024)))
    except OSError:
        pass  # nothing better to offer: the kernel's choice stands


# ---- exec -------------------------------------------------------------------------------------

def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def exec_process(root: str, container_id: str, proc: dict, *, detach: bool = False,
                 console_socket: str | None = None, pid_file: str | None = None,
                 preserve_fds: int = 0, cgroup: list[str] | None = None,
                 ignore_paused: bool = False) -> int:
    """Run `proc` (a runtime-spec Process) in the container. Returns its exit code in the
    foreground, 0 once it runs with `detach`."""
    check_process(proc)
    if preserve_fds < 0:
        raise PyruncError("--preserve-fds must not be negative")
    terminal = bool(proc.get("terminal"))
    if terminal and detach and console_socket is None:
        raise PyruncError("cannot allocate tty if pyrunc will detach without setting console socket")
    if not terminal and console_socket is not None:
        raise PyruncError("cannot use console socket if pyrunc will not detach or allocate tty")

    with state.locked(root, container_id) as path:
        record = state.read(root, container_id)
        status = state.status(path, record)
    if status == "stopped":
        raise PyruncError("cannot exec in a stopped container")
    if status == "creating":
        raise PyruncError(f"container {container_id} is still being created")
    if status == "paused" and not ignore_paused:
        raise PyruncError("cannot exec in a paused container (use --ignore-paused to override)")
    config = record.get("config") or {}
    linux = config.get("linux") or {}
    init_pid = record["pid"]
    in_userns = any(n.get("type") == "user" for n in linux.get("namespaces") or [])
    proc = dict(proc)
    # oom_score_adj belongs to the container (its init's), as in runc: the process keeps ours,
    # and lowering it would need CAP_SYS_RESOURCE anyway
    proc.pop("oomScoreAdj", None)
    affinity = proc.get("execCPUAffinity") or {}

    mgr = None
    if record.get("cgroup"):
        from pyrunc.cgroups import Manager
        mgr = sub_cgroups(cgroup or [], Manager.from_state(record["cgroup"]))
    elif cgroup:
        raise PyruncError("--cgroup: the container has no cgroup")

    to_close: list = []
    ours = console = None
    try:
        if terminal:
            if console_socket is not None:
                from pyrunc.lifecycle.create import connect_console
                console = connect_console(console_socket)
            else:
                import socket  # only with a terminal: the module is slow to import
                ours, console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                to_close.append(ours)
            to_close.append(console)
        ns_fds = _open_namespaces(init_pid)
        to_close += [fd for _, fd in ns_fds]
        if not state.init_alive(record):  # the pid we opened may have been recycled
            raise PyruncError("cannot exec in a stopped container")
        parent, child = channel.pair()
        to_close += [parent, child]
        oci = {"ociVersion": record.get("ociVersion", ""), "id": container_id, "status": "running",
               "pid": init_pid, "bundle": record.get("bundle", ""),
               "annotations": record.get("annotations") or {}}
        later = [(k, fd) for k, fd in ns_fds if k in ("pid", "time")]
        now = [(k, fd) for k, fd in ns_fds if k not in ("pid", "time")]
        # A runtime that is not root cannot join a pid or time namespace its user namespace does
        # not own: the exec stage joins them after the user namespace and forks once more. The
        # grandchild is reparented to us, so we can wait for it.
        late = later if later and os.geteuid() != 0 and any(k == "user" for k, _ in now) else []
        if late:
            from pyrunc.linux import syscalls as sc
            later = []
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        with _Affinity(affinity.get("initial")), _ForChildren(later):
            pid = os.fork()
            if pid == 0:  # the child: never returns
                try:
                    parent.close()
                    if ours is not None:
                        ours.close()
                    child = child.above(3 + preserve_fds)  # out of --preserve-fds' way
                    from pyrunc.init import exec_stage
                except BaseException as e:  # noqa: BLE001
                    channel.send(child, "error", f"cannot start the exec stage: {e}")
                    os._exit(1)
                exec_stage.run(child, now, proc, linux, in_userns, console, preserve_fds, oci,
                               late)
        child.close()
        to_close.remove(child)
        try:
            if mgr is not None:
                mgr.add(pid, defer_memory=True)  # memory last: see Manager.add
            channel.send(parent, "go")
            placed = False
            while True:
                word, arg = channel.recv(parent)
                if word == "pid" and late:  # the grandchild that will exec; its parent is done
                    os.waitpid(pid, 0)
                    pid = int(arg)
                elif word == "memory" and not placed:
                    placed = True
                    if mgr is not None:
                        mgr.add_deferred(pid)
                    _final_affinity(affinity.get("final"), pid)
                    channel.send(parent, "ok")
                elif word == "error":
                    raise PyruncError(arg)
                elif not word and placed:
                    break  # CLOEXEC closed the child's end: execve succeeded
                elif not word:
                    raise PyruncError("exec: the process died before it entered the container")
                else:
                    raise PyruncError(f"exec: the process said {word!r} where 'memory' was expected")
            master = None
            if ours is not None:
                from pyrunc.linux.console import recv_fd
                master = recv_fd(ours)
            if pid_file:
                from pyrunc.lifecycle.create import write_pid_file
                write_pid_file(pid_file, pid)
        except BaseException:
            _kill_and_reap(pid)
            raise
    finally:
        for item in to_close:
            item.close() if hasattr(item, "close") else os.close(item)
    if detach:
        return 0
    from pyrunc.lifecycle import foreground
    foreground.forward_signals(pid)
    if master is not None:
        try:
            return foreground.proxy_tty(master, pid)
        finally:
            os.close(master)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return foreground.exit_code(status)
        except InterruptedError:
            continue


def main(g, flags: dict, args: list[str]) -> int:
    container_id = args[0]
    if flags.get("process"):
        proc = load_process(flags["process"])
    else:
        if len(args) < 2:
            raise PyruncError("exec: a command is required unless --process is given "
                              "(usage: pyrunc exec <container-id> <command> [args...])")
        record = state.read(g.root, container_id)
        base = (record.get("config") or {}).get("process") or {}
        proc = process_from_flags(base, flags, args[1:])
    import sys
    sys.stdout.flush()
    return exec_process(g.root, container_id, proc, detach=flags.get("detach", False),
                        console_socket=flags.get("console_socket"), pid_file=flags.get("pid_file"),
                        preserve_fds=flags.get("preserve_fds", 0), cgroup=flags.get("cgroup"),
                        ignore_paused=flags.get("ignore_paused", False))
