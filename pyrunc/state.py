"""The state root: one directory per container, written atomically, guarded by a lock.

Layout of ROOT/ID/: `state.json` (what create recorded), `exec.fifo` (exists from create until
start), and the directory itself serves as the flock target. Creating the directory with mkdir is
the atomic claim on an ID: of two concurrent creates, exactly one mkdir succeeds.
"""
from __future__ import annotations

import fcntl
from pyrunc import jsonfast as json
import os

from pyrunc.errors import PyruncError

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
# ASCII letters, digits and _+-. (runc's [\w+-.]+); a set, not a regex: `re` costs ~6 ms to import
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(container_id: str) -> None:
    """runc's rule, so that an ID can never name a path outside the state root."""
    if not 0 < len(container_id) <= 1024 or not _ID_CHARS.issuperset(container_id) \
            or container_id in (".", ".."):
        raise PyruncError(f"invalid container id {container_id[:80]!r}: use 1 to 1024 letters, "
                          f"digits and _+-. (not '.' or '..')")


def ensure_root(root: str) -> str:
    root = os.path.abspath(root)
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
    except OSError as e:
        raise PyruncError(f"cannot create state root {root}: {e.strerror}") from None
    return root


def container_dir(root: str, container_id: str) -> str:
    check_id(container_id)
    return os.path.join(os.path.abspath(root), container_id)


def claim(root: str, container_id: str) -> str:
    """Make the container's state directory; fail if the ID is taken."""
    path = container_dir(ensure_root(root), container_id)
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        raise PyruncError(f"container with id {container_id!r} already exists") from None
    return path


class locked:
    """`with locked(root, id) as path:` holds an exclusive flock on the container's directory,
    which must exist (and still exist once we hold it). A class, not @contextmanager: contextlib
    is not worth its import on every command."""

    def __init__(self, root: str, container_id: str) -> None:
        self.id = container_id
        self.path = container_dir(root, container_id)
        self.fd = -1

    def __enter__(self) -> str:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise PyruncError(f"container {self.id!r} does not exist") from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        if os.fstat(self.fd).st_nlink == 0:  # deleted while we waited
            os.close(self.fd)
            raise PyruncError(f"container {self.id!r} does not exist")
        return self.path

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def remove(path: str) -> None:
    """Remove a container's state dir (flat: state.json, exec.fifo, temporaries)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def write(path: str, state: dict) -> None:
    """Replace state.json atomically: a reader sees the old or the new file, never half of one."""
    tmp = os.path.join(path, f".{STATE_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(state).encode())
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(path, STATE_FILE))


def read(root: str, container_id: str) -> dict:
    path = container_dir(root, container_id)
    try:
        with open(os.path.join(path, STATE_FILE), "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise PyruncError(f"container {container_id!r} does not exist") from None
    except ValueError:
        raise PyruncError(f"container {container_id!r}: state file is corrupt") from None


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(os.path.abspath(root))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n, STATE_FILE)))


def process_start_time(pid: int) -> int | None:
    """The init's start time in clock ticks (field 22 of /proc/PID/stat), or None if it is gone or
    a zombie: with it a recycled pid is never mistaken for the container's init."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def kill_and_wait(pid: int, start_time: int | None = None, timeout: float = 10.0) -> bool:
    """SIGKILL a process (not necessarily our child) and wait for its death; False on timeout.

    A pidfd pins the process, so the start-time check holds for what we signal, and polling it
    wakes us the moment it exits instead of sleeping in a loop."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        if start_time is not None and process_start_time(pid) != start_time:
            return True  # already gone (a zombie) or the pid is someone else's now
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            return True
        import select
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        done = bool(poller.poll(int(timeout * 1000)))
        try:
            os.waitpid(pid, os.WNOHANG)  # ours to reap when we are `run`
        except ChildProcessError:
            pass
        return done
    finally:
        os.close(pidfd)


def init_alive(state: dict) -> bool:
    pid = state.get("pid") or 0
    return pid > 0 and process_start_time(pid) == state.get("init_start_time")


def status(path: str, state: dict) -> str:
    """Derived, never stored (but for `creating`): the kernel is the source of truth."""
    if state.get("status") == "creating":
        return "creating"
    if not init_alive(state):
        return "stopped"
    if os.path.exists(os.path.join(path, EXEC_FIFO)):
        return "created"
    from pyrunc.cgroups import is_frozen
    if is_frozen(state.get("cgroup") or {}):
        return "paused"
    return "running"


def oci_state(path: str, state: dict) -> dict:
    """The JSON `state` prints: runtime-spec's fields plus runc's rootfs, created and owner."""
    st = status(path, state)
    out = {
        "ociVersion": state.get("ociVersion", ""),
        "id": state["id"],
        "pid": state["pid"] if st != "stopped" else 0,
        "status": st,
        "bundle": state["bundle"],
        "rootfs": state["rootfs"],
        "created": state["created"],
        "owner": state.get("owner", ""),
    }
    if state.get("annotations"):
        out["annotations"] = state["annotations"]
    return out
