"""A real systemd for the guest tests of pyrunc's systemd cgroup driver (not a test file).

The host has no systemd as pid 1, so the driver (`pyrunc --systemd-cgroup`, D-Bus to
/run/systemd/private) can only meet a real one here, in the v2 VM. Debian's systemd is in the base
image (build.py: SYSTEMD_*); `running_systemd()` starts it and stops it again, so that the guest
tests after it see a clean guest.

How it runs, and why:
  * as pid 1 of a new pid namespace: systemd refuses to be a system manager otherwise, and with
    $container set it runs in container mode (no kernel setup, no SELinux, no hardware);
  * in a new mount namespace with its own /proc: systemd must see the pids it is given
    (StartTransientUnit's PIDs are read in its pid namespace), and mounts or unmounts systemd makes
    stay there. /run, /tmp, /dev and /sys are still the guest's very filesystems, so
    /run/systemd/private is the guest's file too, and a bundle under /tmp is the same on both sides;
  * in a cgroup namespace rooted at its own cgroup (/sys/fs/cgroup/systemd-test), with cgroup2
    mounted again in its mount namespace: it manages that subtree only and sees it as `/`, as on a
    real host, so `/sys/fs/cgroup/system.slice/x.scope` inside is systemd-test/system.slice/x.scope
    in the guest;
  * in new UTS and network namespaces: it neither renames the guest nor brings up its loopback;
  * with /proc/sys read-only inside: it cannot change the guest's global sysctls;
  * with --unit=pyrunc-v2vm.target and no unit files in the image but that target, its one
    service (pyrunc-v2vm-tests.service, see enter) and three shutdown units: nothing like
    systemd-tmpfiles (which would empty /tmp under the guest tests), journald or udev can be
    pulled in;
  * logging to a file: pid 1 always writes its log to /dev/console, so a pty is bound over
    /dev/console in its mount namespace and the launcher copies the pty to the log file.

Clients must run in systemd's namespaces. systemd drops a private-bus connection from a process
it cannot see (another pid namespace); it can only put into a scope a process it can see and that
is already in its cgroup tree; and the driver must find the cgroups where systemd says they are.
So a test runs pyrunc with `sd.run(...)` / `sd.popen(...)` (argv prefix `sd.enter()`): in
pyrunc-v2vm-tests.service's cgroup, in systemd's pid, mount and cgroup namespaces, exactly like
runc under containerd on a systemd host. Pids such a command reports are pids of systemd's
namespace. The test process itself talks to systemd with `sd.bus()` (a small D-Bus client of our
own, the connection made from systemd's pid namespace).

    from guest_systemd_helper import running_systemd

    def test_scope():
        with running_systemd() as sd:          # or the `systemd` fixture below
            r = sd.run("pyrunc", "--systemd-cgroup", "run", "-d", ...)
            with sd.bus() as bus:
                state = bus.get_property("org.freedesktop.systemd1.Manager", "SystemState")

Never run this on a machine whose systemd matters: it refuses to start outside the v2 VM (see
in_v2vm), because a systemd started on the host once wiped the host's /tmp.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import os
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterable, Iterator

SYSTEMD = "/lib/systemd/systemd"
TARGET = "pyrunc-v2vm.target"
TESTS_UNIT = "pyrunc-v2vm-tests.service"  # build.py: the service the target starts
NSENTER = "/v2vm/bin/nsenter"  # util-linux's: busybox's cannot enter a cgroup namespace
CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_CGROUP = "systemd-test"
PRIVATE_SOCKET = "/run/systemd/private"
CONTAINER = "pyrunc-v2vm"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER_IFACE = "org.freedesktop.systemd1.Manager"
SYSTEMD_DEST = "org.freedesktop.systemd1"
# What systemd leaves in the guest's /run (which it shares): removed after it stops, so that a
# later test does not take /run/systemd/system for a running systemd (sd_booted()).
RUN_LEFTOVERS = ("systemd", "user", "lock", "log", "credentials", "host", "nologin", "initctl")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

# linux/sched.h, linux/mount.h, linux/prctl.h
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
MNT_DETACH = 2


class SystemdError(Exception):
    """systemd could not be started or stopped; the message carries the end of its log."""


def in_v2vm() -> bool:
    """True only inside the v2 VM: its init is the harness's busybox script and /v2vm/cmd.sh is
    there. A systemd started elsewhere could run tmpfiles or shutdown logic on a real machine."""
    try:
        init = os.readlink("/proc/1/exe")
    except OSError:
        return False
    return init == "/bin/busybox" and os.path.exists("/v2vm/cmd.sh")


def systemd_in_image() -> bool:
    """build.py leaves systemd out when the host that built the image has none."""
    return os.path.exists(SYSTEMD) and os.path.exists(NSENTER)


# ---------------------------------------------------------------- a minimal D-Bus client
#
# Our own, not pyrunc's: the harness must not depend on the code it is there to test. Enough of
# the wire format for method calls on a peer-to-peer connection (systemd's private socket has no
# bus daemon, hence no Hello and no names), little-endian only.

_ALIGN = {"y": 1, "g": 1, "v": 1, "n": 2, "q": 2, "b": 4, "i": 4, "u": 4, "h": 4, "s": 4, "o": 4,
          "a": 4, "x": 8, "t": 8, "d": 8, "(": 8, "{": 8}
_FIXED = {"y": "B", "b": "I", "n": "h", "q": "H", "i": "i", "u": "I", "h": "I", "x": "q",
          "t": "Q", "d": "d"}


class DBusError(Exception):
    """An error reply: `name` is the D-Bus error name (org.freedesktop.systemd1.NoSuchUnit...)."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name


def _type_end(sig: str, i: int) -> int:
    """The index just after the complete type starting at sig[i]."""
    c = sig[i]
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        j = i + 1
        while sig[j] != close:
            j = _type_end(sig, j)
        return j + 1
    return i + 1


def split_signature(sig: str) -> list[str]:
    out, i = [], 0
    while i < len(sig):
        j = _type_end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def pad(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def put(self, t: str, v: Any) -> None:
        """Marshal `v` as the single complete type `t`. Variants are (signature, value) pairs,
        structs tuples or lists, dicts dicts or lists of pairs."""
        c = t[0]
        self.pad(_ALIGN[c])
        if c in _FIXED:
            self.buf += struct.pack("<" + _FIXED[c], int(v) if c == "b" else v)
        elif c in "so":
            b = v.encode()
            self.buf += struct.pack("<I", len(b)) + b + b"\0"
        elif c == "g":
            b = v.encode()
            self.buf += bytes([len(b)]) + b + b"\0"
        elif c == "v":
            vsig, value = v
            self.put("g", vsig)
            self.put(vsig, value)
        elif c == "a":
            elem = t[1:]
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            items = v.items() if isinstance(v, dict) else v
            for item in items:
                self.put(elem, item)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        elif c in "({":
            for ft, fv in zip(split_signature(t[1:-1]), v):
                self.put(ft, fv)
        else:
            raise ValueError(f"cannot marshal D-Bus type {t!r}")


class _Reader:
    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.pos = offset

    def pad(self, n: int) -> None:
        self.pos += -self.pos % n

    def get(self, t: str) -> Any:
        """Unmarshal one `t`: variants yield their value, dicts dicts, structs tuples."""
        c = t[0]
        self.pad(_ALIGN[c])
        if c in _FIXED:
            fmt = "<" + _FIXED[c]
            (v,) = struct.unpack_from(fmt, self.data, self.pos)
            self.pos += struct.calcsize(fmt)
            return bool(v) if c == "b" else v
        if c in "so":
            (n,) = struct.unpack_from("<I", self.data, self.pos)
            s = self.data[self.pos + 4:self.pos + 4 + n].decode()
            self.pos += 4 + n + 1
            return s
        if c == "g":
            n = self.data[self.pos]
            s = self.data[self.pos + 1:self.pos + 1 + n].decode()
            self.pos += 1 + n + 1
            return s
        if c == "v":
            return self.get(self.get("g"))
        if c == "a":
            (n,) = struct.unpack_from("<I", self.data, self.pos)
            self.pos += 4
            elem = t[1:]
            self.pad(_ALIGN[elem[0]])
            end = self.pos + n
            items = []
            while self.pos < end:
                items.append(self.get(elem))
            return dict(items) if elem[0] == "{" else items
        if c in "({":
            return tuple(self.get(ft) for ft in split_signature(t[1:-1]))
        raise ValueError(f"cannot unmarshal D-Bus type {t!r}")


def sasl_auth_line(uid: int | None = None) -> bytes:
    """The client's first bytes: the NUL, then EXTERNAL with the uid in hex of its decimal
    digits (uid 0 -> "30"), as sd-bus and libdbus send it."""
    uid = os.getuid() if uid is None else uid
    return b"\0AUTH EXTERNAL " + str(uid).encode().hex().encode() + b"\r\n"


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until one side closes."""
    for sk in (a, b):
        sk.setblocking(True)
    other = {a.fileno(): b, b.fileno(): a}
    src = {a.fileno(): a, b.fileno(): b}
    while True:
        ready, _, _ = select.select(list(src), [], [])
        for fd in ready:
            data = src[fd].recv(65536)
            if not data:
                return
            other[fd].sendall(data)


def connect_from_pidns(target_pid: int, path: str = PRIVATE_SOCKET,
                       timeout: float = 10.0) -> tuple[socket.socket, int, Callable[[], None]]:
    """A connection to the Unix socket `path` made, and relayed, by a process in target_pid's pid
    namespace; returns our end, the peer's pid as that process sees it, and the function that
    waits for the relay to end once our end is closed.

    systemd drops a private-bus client whose pid it cannot see: across pid namespaces SO_PEERCRED
    says pid 0, and getpeercred() makes that ENODATA ("Incoming private connection from
    unprivileged client, refusing"). Handing the connected socket over to us is not enough
    either: then about one new connection in 20 had its first call go unanswered (bytes written by
    a process systemd cannot see); with every byte written by the relay, none did. Two forks,
    because setns() into a pid namespace only applies to later children.
    """
    ns_fd = os.open(f"/proc/{target_pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        child = os.fork()
        if child == 0:  # never returns: whatever happens ends in os._exit
            code = 1
            try:
                ours.close()
                _check(_libc().setns(ns_fd, CLONE_NEWPID), "setns")
                relay = os.fork()
                if relay == 0:
                    try:
                        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        conn.settimeout(timeout)
                        conn.connect(path)
                        cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                               struct.calcsize("3i"))
                        theirs.sendall(b"+" + cred[:4])
                        _relay(theirs, conn)
                    except BaseException as e:
                        with contextlib.suppress(BaseException):
                            theirs.sendall(b"-" + repr(e).encode())
                    os._exit(0)
                theirs.close()
                os.waitpid(relay, 0)
                code = 0
            finally:
                os._exit(code)
    finally:
        os.close(ns_fd)
        theirs.close()

    def release() -> None:
        os.waitpid(child, 0)

    try:
        ours.settimeout(timeout)
        head = ours.recv(5)
        if head[:1] == b"+" and len(head) < 5:
            head += ours.recv(5 - len(head))
        if head[:1] != b"+":
            raise ConnectionRefusedError(
                f"connect to {path} from the pid namespace of {target_pid}: "
                f"{(head[1:] + ours.recv(4096)).decode(errors='replace') or 'no answer'}")
    except BaseException:
        ours.close()
        release()
        raise
    return ours, struct.unpack("<i", head[1:5])[0], release


# systemd 252's sd-bus server leaves a message unprocessed when it arrived in the same read as
# the client's BEGIN, until more bytes come (measured here: 20 of 20 calls sent in one write with
# BEGIN went unanswered, about half when sent right after it). So a call unanswered for this long
# is followed by a Peer.Ping, whose bytes wake the server up; its reply is dropped. A D-Bus client
# (pyrunc's driver included) that pipelines BEGIN and its first call can hang on such a systemd.
NUDGE_AFTER = 0.2


class DBus:
    """One D-Bus connection on a connected socket (see Systemd.bus), authenticated as our uid with
    SASL EXTERNAL; `on_close` runs when it is closed."""

    def __init__(self, sock: socket.socket, on_close: Callable[[], None] | None = None,
                 timeout: float = 10.0, peer_pid: int | None = None) -> None:
        self.sock = sock
        self.peer_pid = peer_pid  # the server's pid, in the namespace that connected
        self.sock.settimeout(timeout)
        self.on_close = on_close
        self.serial = 0
        self._buf = b""
        try:
            self.sock.sendall(sasl_auth_line())
            line = self._line()
            if not line.startswith(b"OK "):
                raise DBusError("org.freedesktop.DBus.Error.AuthFailed",
                                line.decode(errors="replace"))
            self.guid = line[3:].strip().decode()
            self.sock.sendall(b"BEGIN\r\n")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "DBus":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()
        if self.on_close is not None:
            on_close, self.on_close = self.on_close, None
            on_close()

    def _recv(self, n: int) -> bytes:
        """n bytes, nudging the peer while none come (see NUDGE_AFTER)."""
        deadline = time.monotonic() + (self.sock.gettimeout() or 10.0)
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the D-Bus peer")
            ready, _, _ = select.select([self.sock], [], [], min(left, NUDGE_AFTER))
            if not ready:
                self._send(MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping", "", ())
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the D-Bus peer closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the D-Bus peer closed the connection during SASL")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _send(self, path: str, interface: str, member: str, signature: str,
              args: tuple | list, destination: str | None = SYSTEMD_DEST) -> int:
        """Marshal and send one method call; returns its serial."""
        self.serial += 1
        body = _Writer()
        for t, v in zip(split_signature(signature), args):
            body.put(t, v)
        fields: list[tuple[int, tuple[str, Any]]] = [(1, ("o", path)), (2, ("s", interface)),
                                                     (3, ("s", member))]
        if destination:
            fields.append((6, ("s", destination)))
        if signature:
            fields.append((8, ("g", signature)))
        head = _Writer()
        head.buf += b"l\x01\x00\x01"
        head.put("u", len(body.buf))
        head.put("u", self.serial)
        head.put("a(yv)", fields)
        head.pad(8)
        self.sock.sendall(bytes(head.buf) + bytes(body.buf))
        return self.serial

    def call(self, path: str, interface: str, member: str, signature: str = "",
             args: tuple | list = (), destination: str | None = SYSTEMD_DEST) -> list[Any]:
        """A method call; returns the reply's body as a list, raises DBusError on an error reply."""
        serial = self._send(path, interface, member, signature, args, destination)
        while True:
            fixed = self._recv(16)
            if fixed[:1] != b"l":
                raise ValueError("big-endian D-Bus messages are not supported")
            mtype = fixed[1]
            body_len, _serial, fields_len = struct.unpack_from("<III", fixed, 4)
            rest = self._recv(fields_len + (-(16 + fields_len) % 8) + body_len)
            msg = fixed + rest
            hdr = dict(_Reader(msg, 12).get("a(yv)"))
            body_at = 16 + fields_len + (-(16 + fields_len) % 8)
            if hdr.get(5) != serial or mtype not in (2, 3):
                continue  # a signal, or the reply to a nudge: not ours
            rd = _Reader(msg[body_at:])
            values = [rd.get(t) for t in split_signature(hdr.get(8, ""))]
            if mtype == 3:
                raise DBusError(hdr.get(4, "?"), values[0] if values else "")
            return values

    def get_property(self, interface: str, name: str, path: str = MANAGER_PATH) -> Any:
        return self.call(path, "org.freedesktop.DBus.Properties", "Get", "ss",
                         (interface, name))[0]

    def list_units(self) -> list[tuple]:
        """ListUnits: (name, description, load, active, sub, following, path, job id, job type,
        job path) for each unit."""
        return self.call(MANAGER_PATH, MANAGER_IFACE, "ListUnits")[0]


# ---------------------------------------------------------------- the running systemd

@dataclasses.dataclass
class Systemd:
    """What a test gets from running_systemd()."""
    pid: int              # systemd, as the guest (and the test process) sees it
    launcher_pid: int     # its parent, which copies the log
    cgroup: str           # its cgroup in the guest: /sys/fs/cgroup/systemd-test, `/` to systemd
    log_path: str
    socket_path: str = PRIVATE_SOCKET
    pidns: str = ""       # /proc/<pid>/ns/pid's link, e.g. "pid:[4026532245]"

    @property
    def client_cgroup(self) -> str:
        """Where enter() puts commands: the cgroup of TESTS_UNIT, in the guest's view."""
        return os.path.join(self.cgroup, "system.slice", TESTS_UNIT)

    def enter(self) -> list[str]:
        """The argv prefix that runs a command as if on systemd's host: in systemd's cgroup, mount
        and pid namespaces, in TESTS_UNIT's cgroup. Its pids, /proc, /proc/self/cgroup and
        /sys/fs/cgroup are systemd's, and systemd may move its children into scopes (with
        nsdelegate, only a process already below systemd's cgroup can be moved from there). The
        command starts in `/`; its exit status is the command's.

        Only the command joins TESTS_UNIT: nsenter's parent half stays in the caller's cgroup,
        since systemd cannot see (nor kill) a process of the guest's pid namespace in its units.
        The command joins through a cgroup.procs opened before nsenter: the kernel checks a
        migration against the opener's cgroup namespace, and from systemd's, a process coming
        from outside its root may not be moved in."""
        procs = shlex.quote(os.path.join(self.client_cgroup, "cgroup.procs"))
        inner = 'echo 0 >&3 && exec 3>&- && exec "$@"'
        script = (f"exec 3>{procs} && exec {NSENTER} -t {self.pid} -C -m -p -- "
                  f"sh -c {shlex.quote(inner)} v2vm-enter \"$@\"")
        return ["sh", "-c", script, "v2vm-enter"]

    def run(self, *argv: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess:
        """Run argv in systemd's namespaces (see enter); stdout and stderr come back as text.

        They are captured in files, not pipes: `pyrunc create` leaves the container's init
        holding the stdio it was given, and a pipe would then never reach EOF."""
        if "stdout" in kw or "stderr" in kw or kw.get("capture_output") is False:
            kw.pop("capture_output", None)
            return subprocess.run([*self.enter(), *argv], timeout=timeout, **kw)
        kw.pop("capture_output", None)
        text = kw.pop("text", True)
        if "input" not in kw:
            kw.setdefault("stdin", subprocess.DEVNULL)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            r = subprocess.run([*self.enter(), *argv], timeout=timeout, stdout=out, stderr=err,
                               text=text, **kw)
            out.seek(0)
            err.seek(0)
            o, e = out.read(), err.read()
        if text:
            o, e = o.decode(errors="replace"), e.decode(errors="replace")
        return subprocess.CompletedProcess(r.args, r.returncode, o, e)

    def popen(self, *argv: str, **kw: Any) -> subprocess.Popen:
        return subprocess.Popen([*self.enter(), *argv], **kw)

    @contextlib.contextmanager
    def connect(self) -> Iterator[socket.socket]:
        """A raw connection to the private socket, made from systemd's pid namespace (see
        connect_from_pidns: systemd refuses one from outside)."""
        sock, _peer, release = connect_from_pidns(self.pid, self.socket_path)
        try:
            yield sock
        finally:
            sock.close()
            release()

    def bus(self) -> DBus:
        """An authenticated D-Bus connection to systemd (close it, or use it in `with`); its
        peer_pid is 1 when it is this systemd (pid 1 of its namespace)."""
        sock, peer, release = connect_from_pidns(self.pid, self.socket_path)
        return DBus(sock, on_close=release, peer_pid=peer)

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ns_pids(self) -> list[int]:
        """Guest pids of every process in systemd's pid namespace (systemd included)."""
        return pids_in_ns(self.pidns)


def pids_in_ns(pidns: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink(f"/proc/{d}/ns/pid") == pidns:
                    out.append(int(d))
            except OSError:
                pass
    return out


def _tail(path: str, n: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _remove_cgroup_tree(path: str, timeout: float = 5.0) -> None:
    """rmdir `path` and everything below, deepest first; the kernel refuses while a dying task is
    still counted, so retry a little."""
    deadline = time.monotonic() + timeout
    while os.path.isdir(path):
        busy = []
        for root, dirs, _files in os.walk(path, topdown=False):
            try:
                os.rmdir(root)
            except FileNotFoundError:
                pass
            except OSError as e:
                busy.append(f"{root}: {e.strerror}")
        if not os.path.isdir(path):
            return
        if time.monotonic() > deadline:
            raise SystemdError(f"cannot remove systemd's cgroups: {busy[:5]}")
        time.sleep(0.05)


def _kill_cgroup(path: str) -> None:
    """cgroup.kill on a leftover tree (from a run that crashed before cleaning up)."""
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
    except OSError:
        pass


def _remove_from_run(names: Iterable[str]) -> None:
    for name in names:
        p = os.path.join("/run", name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            os.unlink(p)


def _answers(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


@contextlib.contextmanager
def running_systemd(cgroup: str = DEFAULT_CGROUP, log_level: str | None = None,
                    keep_log: bool = False, timeout: float = START_TIMEOUT) -> Iterator[Systemd]:
    """Start systemd (see the module's docstring), wait until it has finished starting, yield a
    Systemd, then stop it and remove its cgroups and its files in /run.

    log_level: systemd's (info by default; $V2VM_SYSTEMD_LOG_LEVEL overrides, e.g. debug).
    keep_log: leave the log file (its path is in the yielded Systemd) instead of deleting it.
    """
    if not in_v2vm():
        raise SystemdError("refusing to start systemd outside the v2 VM")
    if not systemd_in_image():
        raise SystemdError(f"no {SYSTEMD} or {NSENTER} in the guest image")
    if _answers(PRIVATE_SOCKET):
        raise SystemdError(f"something already answers on {PRIVATE_SOCKET}")
    level = log_level or os.environ.get("V2VM_SYSTEMD_LOG_LEVEL", "info")
    cg = os.path.join(CGROUP_ROOT, cgroup)
    if os.path.isdir(cg):
        _kill_cgroup(cg)
        _remove_cgroup_tree(cg)
    # a stale /run/systemd (socket, transient units) from a crashed run must not be inherited
    _remove_from_run(["systemd"])
    run_before = set(os.listdir("/run"))
    os.mkdir(cg)
    _debug("starting")
    log_path = f"/tmp/pyrunc-v2vm-systemd-{os.getpid()}-{time.monotonic_ns()}.log"
    launcher: subprocess.Popen | None = None
    sd: Systemd | None = None
    try:
        with open(log_path, "ab") as log:
            launcher = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), "--launch", cg, log_path,
                 level], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                close_fds=True)
        assert launcher.stdout is not None
        ready, _, _ = select.select([launcher.stdout], [], [], timeout)
        line = launcher.stdout.readline().decode().strip() if ready else ""
        launcher.stdout.close()
        if not line.isdigit():
            raise SystemdError(f"the launcher reported no pid ({line!r}):\n{_tail(log_path)}")
        pid = int(line)
        _debug(f"launched, pid {pid}")
        sd = Systemd(pid=pid, launcher_pid=launcher.pid, cgroup=cg, log_path=log_path,
                     pidns=os.readlink(f"/proc/{pid}/ns/pid"))
        _wait_ready(sd, launcher, timeout)
        _debug("ready")
        yield sd
        _debug("stopping")
    finally:
        errors = []
        if launcher is not None:
            try:
                _stop(sd, launcher)
            except SystemdError as e:
                errors.append(str(e))
        try:
            _remove_cgroup_tree(cg)
        except SystemdError as e:
            errors.append(str(e))
        _remove_from_run(n for n in RUN_LEFTOVERS if n not in run_before)
        if errors:
            errors.append(f"systemd's log ends:\n{_tail(log_path)}")
        if not keep_log and not errors:
            with contextlib.suppress(OSError):
                os.unlink(log_path)
        if errors:
            raise SystemdError("\n".join(errors))


def _debug(msg: str) -> None:
    """Progress on stderr with V2VM_SYSTEMD_DEBUG=1: where a slow or stuck start spends its time."""
    if os.environ.get("V2VM_SYSTEMD_DEBUG"):
        print(f"[{time.monotonic():.2f}] v2vm systemd: {msg}", file=sys.stderr, flush=True)


def _wait_ready(sd: Systemd, launcher: subprocess.Popen, timeout: float) -> None:
    """Until the manager, reached on its private socket, says it finished starting."""
    deadline = time.monotonic() + timeout
    state = "(no answer)"
    while True:
        if launcher.poll() is not None:
            raise SystemdError(f"systemd exited while starting (launcher status "
                               f"{launcher.returncode}):\n{_tail(sd.log_path)}")
        if os.path.exists(sd.socket_path):
            try:
                with sd.bus() as bus:
                    if bus.peer_pid != 1:
                        raise SystemdError(f"pid {bus.peer_pid} of systemd's namespace, not "
                                           f"systemd, answers on {sd.socket_path}")
                    state = bus.get_property(MANAGER_IFACE, "SystemState")
                    _debug(f"state {state}")
                    if state in ("running", "degraded"):
                        return
            except (OSError, DBusError) as e:
                _debug(f"not yet: {e!r}")
        if time.monotonic() > deadline:
            raise SystemdError(f"systemd not ready after {timeout:.0f}s (state {state}):\n"
                               f"{_tail(sd.log_path)}")
        time.sleep(0.05)


def _stop(sd: Systemd | None, launcher: subprocess.Popen) -> None:
    """SIGRTMIN+4 (poweroff: units stopped, then systemd-shutdown ends the namespace), then wait;
    SIGKILL to systemd (which takes its whole pid namespace with it) when that does not do."""
    if launcher.poll() is None and sd is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sd.pid, signal.SIGRTMIN + 4)
        try:
            launcher.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    if launcher.poll() is None:
        for pid in ([sd.pid] if sd else []) + [launcher.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        launcher.wait(5)
        if sd is not None:
            raise SystemdError(f"systemd did not stop within {STOP_TIMEOUT:.0f}s of SIGRTMIN+4: "
                               "killed")
    if sd is not None:
        deadline = time.monotonic() + 5
        while sd.ns_pids():
            if time.monotonic() > deadline:
                raise SystemdError(f"processes of systemd's namespace are left: {sd.ns_pids()}")
            time.sleep(0.05)


try:
    import pytest
except ImportError:  # the launcher runs with -I -S: no site-packages, and no need for pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture
    def systemd() -> Iterator[Systemd]:
        """running_systemd() as a fixture: `from guest_systemd_helper import systemd`."""
        with running_systemd() as sd:
            yield sd


# ---------------------------------------------------------------- the launcher (its own process)

def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _launch(cg: str, log_path: str, level: str) -> int:
    """Runs as `python -I -S guest_systemd_helper.py --launch CGROUP LOG LEVEL` (a process of its
    own, not a fork of pytest): unshare, fork systemd's pid 1, print its pid, copy its console to
    the log, and exit with its status once it is gone."""
    if not in_v2vm():
        print("refusing to start systemd outside the v2 VM", file=sys.stderr)
        return 2
    libc = _libc()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the test process died: so do we
    master, slave = os.openpty()
    import fcntl
    import termios
    import tty
    tty.setraw(slave)
    # a wide console: systemd cuts its status lines to the console's width
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))
    slave_name = os.ttyname(slave)
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWNET), "unshare")
    pid = os.fork()
    if pid == 0:
        try:
            os.close(master)
            _pid1(libc, cg, slave, slave_name, level)
        except BaseException as e:  # never return into the launcher's code as pid 1
            os.write(slave, f"v2vm systemd launcher: {e!r}\n".encode())
        os._exit(127)
    os.close(slave)
    sys.stdout.write(f"{pid}\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    status = None
    with open(log_path, "ab", buffering=0) as log:
        while True:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError as e:  # EIO: no slave is open at the moment
                    if e.errno != errno.EIO:
                        raise
                    data = b""
                if data:
                    log.write(_plain(data))
                    continue
            if status is None:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = st
            if status is not None:
                break  # gone, and nothing more to read
            if r:
                time.sleep(0.05)  # EIO keeps the master readable: do not spin
    os.close(master)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _plain(data: bytes) -> bytes:
    """Console output made fit for a log file: no CRs, no escape sequences (the spinner systemd
    draws while a job is slow)."""
    data = re.sub(rb"\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])", b"", data)
    return data.replace(b"\r", b"")


def _pid1(libc: ctypes.CDLL, cg: str, slave: int, slave_name: str, level: str) -> None:
    """In the new pid namespace, as its pid 1: enter the cgroup, make the namespaces systemd's,
    exec systemd."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the launcher died: end everything
    os.setsid()
    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
        f.write("0")
    _check(libc.unshare(CLONE_NEWCGROUP), "unshare(CLONE_NEWCGROUP)")
    mount = libc.mount
    mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                      ctypes.c_char_p]
    _check(mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    _check(mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount /proc")
    _check(mount(b"/proc/sys", b"/proc/sys", None, MS_BIND | MS_REC, None), "bind /proc/sys")
    _check(mount(None, b"/proc/sys", None,
                 MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
           "make /proc/sys read-only")
    # The kernel refuses the same superblock on the same mount point (EBUSY): off with the guest's
    # view first (in this mount namespace only), then cgroup2 rooted at the namespace's root.
    _check(libc.umount2(b"/sys/fs/cgroup", MNT_DETACH), "umount /sys/fs/cgroup")
    _check(mount(b"cgroup2", b"/sys/fs/cgroup", b"cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                 None), "mount cgroup2")
    _check(mount(slave_name.encode(), b"/dev/console", None, MS_BIND, None), "bind /dev/console")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(slave, 1)
    os.dup2(slave, 2)
    os.close(null)
    os.close(slave)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    env = {"container": CONTAINER, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_COLORS": "0",
           "TERM": "dumb"}
    os.execve(SYSTEMD, [SYSTEMD, f"--unit={TARGET}", "--log-target=console",
                        f"--log-level={level}", "--log-color=no", "--show-status=yes"], env)


if __name__ == "__main__" and sys.argv[1:2] == ["--launch"]:
    sys.exit(_launch(*sys.argv[2:5]))
