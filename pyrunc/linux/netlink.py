"""rtnetlink over Python's own AF_NETLINK socket: links and addresses, nothing more.

No policy here (that is pyrunc/netdevs.py): just the messages the runtime needs to find an
interface, move and rename it into another network namespace, bring it up or down, and read and
re-add its addresses. Kernel errors surface as OSError with the kernel's errno, as everywhere in
pyrunc/linux.

A netlink socket talks to the network namespace it was created in, whatever namespace its owner
later moves to; `Rtnl.inside(ns_fd)` uses that to get a socket into a container's namespace
without keeping the runtime there.
"""
from __future__ import annotations

import os
import socket
import struct

NETLINK_ROUTE = 0

NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_GETADDR = 22

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

IFLA_IFNAME = 3
IFLA_NET_NS_PID = 19
IFLA_NET_NS_FD = 28

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4
IFA_FLAGS = 8

IFF_UP = 0x1
IFA_F_PERMANENT = 0x80
# flags a caller may set on a new address (the rest are states the kernel derives itself)
IFA_F_SETTABLE = 0x02 | 0x04 | 0x10 | 0x100 | 0x200 | 0x400
RT_SCOPE_LINK = 253

_NLMSGHDR = struct.Struct("=IHHII")   # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")   # family, prefixlen, flags, scope, index
_NLATTR = struct.Struct("=HH")         # len, type


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, data: bytes) -> bytes:
    n = _NLATTR.size + len(data)
    return _NLATTR.pack(n, kind) + data + b"\0" * (_align(n) - n)


def _attrs(buf: bytes, off: int) -> dict[int, bytes]:
    """type -> payload of the attributes in buf[off:] (the first of a repeated type wins)."""
    out: dict[int, bytes] = {}
    end = len(buf)
    while off + _NLATTR.size <= end:
        n, kind = _NLATTR.unpack_from(buf, off)
        if n < _NLATTR.size:
            break
        out.setdefault(kind & 0x3FFF, buf[off + _NLATTR.size:off + n])  # strip NESTED/BYTEORDER bits
        off += _align(n)
    return out


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _z(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape") + b"\0"


class Link:
    """One interface as RTM_GETLINK reports it."""

    __slots__ = ("index", "name", "flags")

    def __init__(self, index: int, name: str, flags: int) -> None:
        self.index, self.name, self.flags = index, name, flags

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    def __repr__(self) -> str:
        return f"Link({self.index}, {self.name!r}, flags={self.flags:#x})"


class Addr:
    """One address as RTM_GETADDR reports it, in a form that round-trips through JSON (state.json
    keeps the addresses a device had so they can be given back with it)."""

    __slots__ = ("family", "prefixlen", "flags", "scope", "local", "address", "broadcast", "label")

    def __init__(self, family: int, prefixlen: int, flags: int, scope: int, local: bytes | None,
                 address: bytes | None, broadcast: bytes | None, label: str | None) -> None:
        self.family, self.prefixlen, self.flags, self.scope = family, prefixlen, flags, scope
        self.local, self.address, self.broadcast, self.label = local, address, broadcast, label

    def to_json(self) -> dict:
        d: dict = {"family": self.family, "prefixlen": self.prefixlen, "flags": self.flags,
                   "scope": self.scope}
        for k in ("local", "address", "broadcast"):
            v = getattr(self, k)
            if v is not None:
                d[k] = socket.inet_ntop(self.family, v)
        if self.label is not None:
            d["label"] = self.label
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Addr":
        fam = d["family"]
        raw = {k: socket.inet_pton(fam, d[k]) if d.get(k) else None for k in ("local", "address", "broadcast")}
        return cls(fam, d["prefixlen"], d.get("flags", 0), d.get("scope", 0), raw["local"], raw["address"],
                   raw["broadcast"], d.get("label"))

    def __repr__(self) -> str:
        return f"Addr({self.to_json()})"


class Rtnl:
    """An rtnetlink socket in one network namespace (the caller's, unless made by `inside`)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            self.sock.bind((0, 0))
        except OSError:
            self.sock.close()
            raise
        self._seq = 0

    @classmethod
    def inside(cls, ns_fd: int) -> "Rtnl":
        """A socket in the network namespace `ns_fd` refers to; the caller stays where it is.
        Needs CAP_SYS_ADMIN over that namespace (the runtime, as root, has it)."""
        from pyrunc.linux import syscalls
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(ns_fd, syscalls.CLONE_NEWNET)
            try:
                return cls()
            finally:
                syscalls.setns(home, syscalls.CLONE_NEWNET)
        finally:
            os.close(home)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the request/response loop --------------------------------------------------------
    def _request(self, kind: int, flags: int, body: bytes, dump: bool = False) -> list[tuple[int, bytes]]:
        """Send one request; return the (type, payload) replies. OSError on a kernel error.
        A dump ends with NLMSG_DONE, anything else is acknowledged."""
        self._seq += 1
        seq = self._seq
        flags |= NLM_F_REQUEST | NLM_F_DUMP if dump else NLM_F_REQUEST | NLM_F_ACK
        self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, 0) + body)
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + _NLMSGHDR.size <= len(data):
                n, mtype, mflags, mseq, _ = _NLMSGHDR.unpack_from(data, off)
                if n < _NLMSGHDR.size:
                    raise OSError(0, "malformed netlink reply")
                payload = data[off + _NLMSGHDR.size:off + n]
                off += _align(n)
                if mseq != seq:
                    continue  # a stale reply to an earlier request
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    return replies  # the ACK
                if mtype == NLMSG_DONE:  # the end of a dump, which carries a dump's error
                    err = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                    if err:
                        raise OSError(err, os.strerror(err))
                    return replies
                replies.append((mtype, payload))

    # -- links --------------------------------------------------------------------------------
    @staticmethod
    def _link(payload: bytes) -> Link:
        _, _, index, flags, _ = _IFINFOMSG.unpack_from(payload)
        name = _attrs(payload, _IFINFOMSG.size).get(IFLA_IFNAME, b"")
        return Link(index, _cstr(name), flags)

    def link(self, name: str | None = None, index: int = 0) -> Link:
        """The interface called `name` (or with `index`); OSError(ENODEV) if there is none."""
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
        if name is not None:
            body += _attr(IFLA_IFNAME, _z(name))
        for mtype, payload in self._request(RTM_GETLINK, 0, body):
            if mtype == RTM_NEWLINK:
                return self._link(payload)
        import errno
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))

    def links(self) -> list[Link]:
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        return [self._link(p) for t, p in self._request(RTM_GETLINK, 0, body, dump=True) if t == RTM_NEWLINK]

    def set_link(self, index: int, *, name: str | None = None, netns_fd: int | None = None,
                 up: bool | None = None) -> None:
        """Rename, move to another network namespace and/or set the link up or down, in one
        message: a rename and a move done together cannot collide with a name in either
        namespace in between."""
        flags = change = 0
        if up is not None:
            change = IFF_UP
            flags = IFF_UP if up else 0
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)
        if name is not None:
            body += _attr(IFLA_IFNAME, _z(name))
        if netns_fd is not None:
            body += _attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
        self._request(RTM_NEWLINK, 0, body)

    # -- addresses ----------------------------------------------------------------------------
    def addrs(self, index: int) -> list[Addr]:
        """The addresses on interface `index`, IPv4 and IPv6, in the kernel's order (IPv4
        primaries before their secondaries)."""
        out = []
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        for mtype, p in self._request(RTM_GETADDR, 0, body, dump=True):
            if mtype != RTM_NEWADDR:
                continue
            fam, plen, flags, scope, idx = _IFADDRMSG.unpack_from(p)
            if idx != index:
                continue
            a = _attrs(p, _IFADDRMSG.size)
            if IFA_FLAGS in a:
                flags = struct.unpack_from("=I", a[IFA_FLAGS])[0]
            out.append(Addr(fam, plen, flags, scope, a.get(IFA_LOCAL), a.get(IFA_ADDRESS),
                            a.get(IFA_BROADCAST), _cstr(a[IFA_LABEL]) if IFA_LABEL in a else None))
        return out

    def add_addr(self, index: int, addr: Addr) -> None:
        """Add `addr` to interface `index` (EEXIST if it is there already)."""
        body = _IFADDRMSG.pack(addr.family, addr.prefixlen, addr.flags & 0xFF & IFA_F_SETTABLE,
                               addr.scope, index)
        for kind, v in ((IFA_LOCAL, addr.local), (IFA_ADDRESS, addr.address), (IFA_BROADCAST, addr.broadcast)):
            if v is not None:
                body += _attr(kind, v)
        if addr.label is not None and addr.family == socket.AF_INET:
            body += _attr(IFA_LABEL, _z(addr.label))
        body += _attr(IFA_FLAGS, struct.pack("=I", addr.flags & IFA_F_SETTABLE))
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)
