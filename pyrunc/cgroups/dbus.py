"""Just enough D-Bus to talk to systemd: a blocking client for one unix socket.

The systemd cgroup driver needs four manager calls (Subscribe, StartTransientUnit, StopUnit,
SetUnitProperties) and the JobRemoved signal. A D-Bus library would be a new dependency with a
C extension, or a slow import; the wire format (dbus-specification, "Message Protocol") is small.
Little-endian messages, SASL EXTERNAL authentication by uid, no fd passing.

Values are marshalled from a signature and plain Python values: `s`/`o`/`g` str, `b` bool,
`y`/`u`/`t`/`i`/`x`/`q`/`n` int, `d` float, `aX` list (`ay` also bytes), `(..)` tuple,
`a{..}` dict, `v` a (signature, value) pair.
"""
from __future__ import annotations

import os
import select
import socket
import struct
import time

from pyrunc.errors import PyruncError

_FIXED = {"y": ("B", 1), "b": ("I", 4), "n": ("h", 2), "q": ("H", 2), "i": ("i", 4), "u": ("I", 4),
          "x": ("q", 8), "t": ("Q", 8), "d": ("d", 8), "h": ("I", 4)}
_ALIGN = {**{k: v[1] for k, v in _FIXED.items()}, "s": 4, "o": 4, "g": 1, "a": 4, "(": 8,
          "{": 8, "v": 1}

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
_FIELD = {"path": (1, "o"), "interface": (2, "s"), "member": (3, "s"), "error_name": (4, "s"),
          "reply_serial": (5, "u"), "destination": (6, "s"), "sender": (7, "s"),
          "signature": (8, "g")}
_FIELD_NAME = {code: name for name, (code, _) in _FIELD.items()}


class DBusError(PyruncError):
    """An ERROR reply: `name` is the D-Bus error name (org.freedesktop.systemd1.UnitExists...)."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{message} ({name})" if message else name)
        self.name = name


def _split(sig: str) -> list[str]:
    """The complete types of a signature, in order."""
    out, i = [], 0
    while i < len(sig):
        j = _end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _end(sig: str, i: int) -> int:
    c = sig[i]
    if c == "a":
        return _end(sig, i + 1)
    if c in "({":
        depth, j = 0, i
        while True:
            depth += {"(": 1, "{": 1, ")": -1, "}": -1}.get(sig[j], 0)
            j += 1
            if depth == 0:
                return j
    return i + 1


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def pad(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def put(self, t: str, v) -> None:
        c = t[0]
        self.pad(_ALIGN[c])
        if c in _FIXED:
            self.buf += struct.pack("<" + _FIXED[c][0], int(v) if c != "d" else v)
        elif c in "so":
            data = v.encode()
            self.buf += struct.pack("<I", len(data)) + data + b"\0"
        elif c == "g":
            data = v.encode()
            self.buf += bytes([len(data)]) + data + b"\0"
        elif c == "v":
            sig, inner = v
            self.put("g", sig)
            self.put(sig, inner)
        elif c == "(":
            for sub, x in zip(_split(t[1:-1]), v):
                self.put(sub, x)
        elif c == "a":
            elem = t[1:]
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            if elem[0] == "{":
                key, val = _split(elem[1:-1])
                for k, x in v.items():
                    self.pad(8)
                    self.put(key, k)
                    self.put(val, x)
            elif elem == "y" and isinstance(v, (bytes, bytearray)):
                self.buf += v
            else:
                for x in v:
                    self.put(elem, x)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        else:
            raise ValueError(f"D-Bus type {t!r} is not supported")


class _Reader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def align(self, n: int) -> None:
        self.pos += -self.pos % n

    def get(self, t: str):
        c = t[0]
        self.align(_ALIGN[c])
        if c in _FIXED:
            fmt, size = _FIXED[c]
            (v,) = struct.unpack_from("<" + fmt, self.data, self.pos)
            self.pos += size
            return bool(v) if c == "b" else v
        if c in "so":
            (n,) = struct.unpack_from("<I", self.data, self.pos)
            s = self.data[self.pos + 4:self.pos + 4 + n].decode(errors="replace")
            self.pos += 4 + n + 1
            return s
        if c == "g":
            n = self.data[self.pos]
            s = self.data[self.pos + 1:self.pos + 1 + n].decode()
            self.pos += 1 + n + 1
            return s
        if c == "v":
            sig = self.get("g")
            return sig, self.get(sig)
        if c == "(":
            return tuple(self.get(sub) for sub in _split(t[1:-1]))
        if c == "a":
            (n,) = struct.unpack_from("<I", self.data, self.pos)
            self.pos += 4
            elem = t[1:]
            self.align(_ALIGN[elem[0]])
            end = self.pos + n
            if elem[0] == "{":
                key, val = _split(elem[1:-1])
                out = {}
                while self.pos < end:
                    self.align(8)
                    k = self.get(key)
                    out[k] = self.get(val)
                return out
            items = []
            while self.pos < end:
                items.append(self.get(elem))
            return items
        raise ValueError(f"D-Bus type {t!r} is not supported")


class Message:
    __slots__ = ("type", "serial", "fields", "body")

    def __init__(self, mtype: int, serial: int, fields: dict, body: tuple):
        self.type, self.serial, self.fields, self.body = mtype, serial, fields, body


class Connection:
    """A connection to one bus or peer socket, authenticated as this process's uid."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._serial = 0
        self._pending: list[Message] = []
        self._buf = b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self.sock.sendall(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n")
            line = self._line()
            if not line.startswith(b"OK "):
                raise PyruncError(f"D-Bus authentication at {path} refused: {line.decode(errors='replace')}")
            self.sock.sendall(b"BEGIN\r\n")
        except OSError as e:
            self.sock.close()
            raise PyruncError(f"cannot connect to systemd at {path}: {e.strerror or e}") from None
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise PyruncError("D-Bus peer closed the connection during authentication")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _send(self, mtype: int, fields: list, signature: str, args: tuple) -> int:
        self._serial += 1
        body = _Writer()
        for t, v in zip(_split(signature), args):
            body.put(t, v)
        if signature:
            fields = [*fields, (8, ("g", signature))]
        head = _Writer()
        head.buf += struct.pack("<cBBBII", b"l", mtype, 0, 1, len(body.buf), self._serial)
        head.put("a(yv)", fields)
        head.pad(8)
        self.sock.sendall(bytes(head.buf) + bytes(body.buf))
        return self._serial

    def call(self, path: str, interface: str, member: str, signature: str = "", args: tuple = (),
             destination: str | None = None, timeout: float | None = None) -> tuple:
        """One method call; its reply's body. An ERROR reply raises DBusError."""
        fields = [(1, ("o", path)), (2, ("s", interface)), (3, ("s", member))]
        if destination:
            fields.append((6, ("s", destination)))
        serial = self._send(METHOD_CALL, fields, signature, args)
        msg = self.receive(lambda m: m.type in (METHOD_RETURN, ERROR)
                           and m.fields.get("reply_serial") == serial, timeout)
        if msg.type == ERROR:
            text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ""
            raise DBusError(msg.fields.get("error_name", "error"), text)
        return msg.body

    def reply(self, to: Message, signature: str = "", args: tuple = ()) -> None:
        """Answer a method call (the serving side of a peer, as systemd is)."""
        fields = [(5, ("u", to.serial))]
        if "sender" in to.fields:
            fields.append((6, ("s", to.fields["sender"])))
        self._send(METHOD_RETURN, fields, signature, args)

    def signal(self, destination: str | None, path: str, interface: str, member: str,
               signature: str = "", args: tuple = ()) -> None:
        fields = [(1, ("o", path)), (2, ("s", interface)), (3, ("s", member))]
        if destination:
            fields.append((6, ("s", destination)))
        self._send(SIGNAL, fields, signature, args)

    def receive(self, want, timeout: float | None = None) -> Message:
        """The first message `want` accepts; others are kept for later calls to find."""
        for i, m in enumerate(self._pending):
            if want(m):
                return self._pending.pop(i)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            msg = self._read(deadline)
            if want(msg):
                return msg
            self._pending.append(msg)

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise PyruncError("timed out waiting for systemd")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise PyruncError("systemd closed the D-Bus connection")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _read(self, deadline: float) -> Message:
        fixed = self._recv_exact(16, deadline)
        if fixed[:1] != b"l":
            raise PyruncError("systemd sent a big-endian D-Bus message, which pyrunc cannot read")
        _, mtype, _, _, body_len, serial, fields_len = struct.unpack("<cBBBIII", fixed)
        rest_len = fields_len + (-(16 + fields_len) % 8)
        data = fixed + self._recv_exact(rest_len + body_len, deadline)
        r = _Reader(data, 12)
        fields = {_FIELD_NAME.get(code, code): value for code, (_, value) in r.get("a(yv)")}
        r.align(8)
        body = tuple(r.get(t) for t in _split(fields.get("signature", "")))
        return Message(mtype, serial, fields, body)
