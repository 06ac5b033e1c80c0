"""linux.netDevices (runtime-spec 1.3): lend named host interfaces to the container, and take them back.

`create` moves each device into the container's network namespace under its new name (renaming and
moving in one rtnetlink message, so neither namespace ever sees a clash), re-adds the addresses it
had (a move drops them) and brings it up, as runc does. What was moved is recorded in state.json,
because `delete` must give the devices back to the runtime's namespace under their original names
while the container's namespace still exists: when the last process of a network namespace dies
the kernel destroys the virtual devices in it (veth, ifb... checked on this kernel) and returns
physical ones to the initial namespace under whatever name they had. So `delete` gives them back
before it kills the init, and `create` does the same when a later step fails.

On the way back the device gets its host addresses and its up/down state back too, so a device
lent to a container comes back as it left.
"""
from __future__ import annotations

import errno
import os
import socket
import sys

from pyrunc.errors import PyruncError


def _keep(a) -> bool:
    """Addresses worth carrying across: the configured (permanent) ones, without the IPv6
    link-local address the kernel makes itself when the link comes up."""
    from pyrunc.linux.netlink import IFA_F_PERMANENT, RT_SCOPE_LINK
    if not a.flags & IFA_F_PERMANENT:
        return False
    return not (a.family == socket.AF_INET6 and a.scope == RT_SCOPE_LINK)


def _relabel(label: str | None, old: str, new: str) -> str | None:
    """IPv4 labels are the device name or "name:alias": they follow the rename (or are dropped,
    letting the kernel use the device name, when the result would be too long)."""
    if label is None or not (label == old or label.startswith(old + ":")):
        return label
    out = new + label[len(old):]
    return out if len(out.encode()) <= 15 else None


def _readd(rt, index: int, addrs: list, old: str, new: str) -> None:
    from pyrunc.linux.netlink import Addr
    for d in addrs:
        a = Addr.from_json(d)
        a.label = _relabel(a.label, old, new)
        try:
            rt.add_addr(index, a)
        except FileExistsError:
            pass


# The container's network namespace, held open by the process that moved the devices in: an open
# namespace fd keeps the namespace, and the devices in it, alive after the init exits, so `run` in
# the foreground (and a library caller) still gets virtual devices back when it deletes the
# container it waited for. A detached `create` exits and lets go.
_held: dict[int, int] = {}


def move_in(devices: dict, pid: int) -> list[dict]:
    """Move `devices` (linux.netDevices: host name -> {"name": new name}) into the network
    namespace of process `pid`. Returns what state.json must keep for `give_back`. On failure the
    devices already moved are given back and PyruncError says which device failed and why."""
    from pyrunc.linux.netlink import Rtnl
    try:
        ns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PyruncError(f"cannot open the container's network namespace: {e.strerror}") from None
    moved: list[dict] = []
    try:
        with Rtnl() as host:
            inside = None
            try:
                for host_name, spec in devices.items():
                    new = (spec or {}).get("name") or host_name
                    try:
                        link = host.link(host_name)
                    except OSError as e:
                        why = "no such device in the runtime's network namespace" if e.errno == errno.ENODEV \
                            else e.strerror
                        raise PyruncError(f"cannot move network device {host_name!r}: {why}") from None
                    addrs = [a.to_json() for a in host.addrs(link.index) if _keep(a)]
                    try:
                        host.set_link(link.index, name=new, netns_fd=ns)
                    except OSError as e:
                        if _gone(host, link.index):  # moved, then the rename failed (a name taken)
                            moved.append({"host": host_name, "name": host_name, "index": link.index,
                                          "up": link.up, "addrs": addrs})
                        raise PyruncError(f"cannot move network device {host_name!r} into the container's "
                                          f"network namespace as {new!r}: {e.strerror}") from None
                    entry = {"host": host_name, "name": new, "index": link.index, "up": link.up, "addrs": addrs}
                    moved.append(entry)
                    try:
                        if inside is None:
                            inside = Rtnl.inside(ns)
                        entry["index"] = inside.link(new).index
                        _readd(inside, entry["index"], addrs, host_name, new)
                        inside.set_link(entry["index"], up=True)
                    except OSError as e:
                        raise PyruncError(f"cannot configure network device {new!r} in the container: "
                                          f"{e.strerror}") from None
            finally:
                if inside is not None:
                    inside.close()
    except BaseException as e:
        if moved:
            _give_back_from(ns, moved)
        os.close(ns)
        if isinstance(e, OSError):  # rtnetlink itself failed (a rootless runtime, say)
            raise PyruncError(f"cannot move network devices into the container: {e.strerror}") from None
        raise
    _held[pid] = ns
    return moved


def give_back(record: dict) -> None:
    """Return the devices `record["netDevices"]` lists to the runtime's network namespace under
    their original names. Never raises: delete (and create's cleanup) must go on, so problems are
    warnings on stderr."""
    moved = record.get("netDevices") or []
    if not moved:
        return
    ns = _held.pop(record.get("pid") or 0, None)
    if ns is None:
        ns = _container_netns(record)
    if ns is None:
        _reclaim_returned(moved)
        return
    try:
        _give_back_from(ns, moved)
    finally:
        os.close(ns)


def _container_netns(record: dict) -> int | None:
    """An fd of the container's network namespace, or None when it is gone: a joined namespace
    outlives the container (its path still names it), a new one lives as long as the init."""
    for n in ((record.get("config") or {}).get("linux") or {}).get("namespaces") or []:
        if n.get("type") == "network" and n.get("path"):
            try:
                return os.open(n["path"], os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
    from pyrunc import state
    if not state.init_alive(record):
        return None
    try:
        fd = os.open(f"/proc/{record['pid']}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    if not state.init_alive(record):  # the pid was reused between the check and the open
        os.close(fd)
        return None
    return fd


def _warn(msg: str) -> None:
    sys.stderr.write(f"pyrunc: warning: {msg}\n")


def _give_back_from(ns: int, moved: list[dict]) -> None:
    from pyrunc.linux.netlink import Rtnl
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        _warn(f"cannot give network devices back: {e.strerror}")
        return
    try:
        with Rtnl() as host, Rtnl.inside(ns) as inside:
            for entry in reversed(moved):
                _give_one_back(host, inside, home, entry)
    except OSError as e:
        _warn(f"cannot give network devices back: {e.strerror}")
    finally:
        os.close(home)


def _give_one_back(host, inside, home: int, entry: dict) -> None:
    host_name, name = entry["host"], entry["name"]
    link = None
    for key in ({"index": entry.get("index", 0)}, {"name": name}):
        try:
            link = inside.link(**key)
            break
        except OSError:
            continue
    if link is None:
        _warn(f"network device {name!r} ({host_name!r} on the host) is no longer in the container")
        return
    try:
        inside.set_link(link.index, name=host_name, netns_fd=home)
    except OSError as e:
        if not _gone(inside, link.index):
            _warn(f"cannot give network device {link.name!r} back to the host as {host_name!r}: {e.strerror}")
            return
        # The kernel moved it but could not rename it: it is on the host under its container name.
        _warn(f"network device {host_name!r} is back on the host as {link.name!r}: {e.strerror}")
        host_name = link.name
    _restore_on_host(host, host_name, entry, link.name)


def _gone(rt, index: int) -> bool:
    """Whether no interface `index` is left where `rt` looks: a move and a rename sent together
    are not atomic, the kernel moves first and may then fail the rename."""
    try:
        rt.link(index=index)
    except OSError as e:
        return e.errno == errno.ENODEV
    return False


def _restore_on_host(host, host_name: str, entry: dict, was_named: str) -> None:
    try:
        back = host.link(host_name)
        _readd(host, back.index, entry.get("addrs") or [], was_named, host_name)
        if entry.get("up"):
            host.set_link(back.index, up=True)
    except OSError as e:
        _warn(f"network device {host_name!r} is back on the host, but restoring its addresses failed: "
              f"{e.strerror}")


def _reclaim_returned(moved: list[dict]) -> None:
    """The container's namespace is gone. Virtual devices went with it; a physical one was put
    back in the initial namespace by the kernel under the container's name for it (or "devN" if
    that was taken): give it its own name, addresses and state back."""
    from pyrunc.linux.netlink import Rtnl
    try:
        host = Rtnl()
    except OSError:
        return
    with host:
        for entry in moved:
            try:
                link = host.link(index=entry.get("index", 0))
            except OSError:
                continue  # destroyed with the namespace
            if link.name == entry["host"]:
                continue
            if link.name not in (entry["name"], f"dev{link.index}"):
                continue  # not ours: the index was reused
            try:
                host.set_link(link.index, name=entry["host"])
            except OSError as e:
                _warn(f"cannot rename network device {link.name!r} back to {entry['host']!r}: {e.strerror}")
                continue
            _restore_on_host(host, entry["host"], entry, link.name)
