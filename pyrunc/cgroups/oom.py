"""OOM notifications for `events`: one file descriptor that becomes ready when the kernel's OOM
killer acts in the container's memory cgroup, so an "oom" event is printed the moment it happens
rather than at the next poll of a counter.

- cgroup v1: an eventfd registered for memory.oom_control through cgroup.event_control. The kernel
  signals it on every pass through its OOM path, and once more when the cgroup is removed, which is
  why each wake-up checks that the cgroup still exists. A burst of signals is one event per kill
  (see _V1._judge), where runc prints one per read however many that happens to be.
- cgroup v2: memory.events itself. The kernel notifies its readers (inotify IN_MODIFY for runc,
  POLLPRI for poll(2) on an open descriptor: the same kernfs notification) whenever a counter in it
  changes; an event is reported when `oom_kill` grew. poll(2) needs nothing beyond the stdlib, where
  inotify would need a new syscall wrapper in the shim.

Builtin modules only (os, select, time): `events` is a fresh process that imports this to stream.
"""
from __future__ import annotations

import os
import select
import time

EPISODE_GAP = 0.25  # seconds of quiet that separate two v1 OOM notifications into two events

_EFD_NONBLOCK = getattr(os, "EFD_NONBLOCK", 0o4000)
_EFD_CLOEXEC = getattr(os, "EFD_CLOEXEC", 0o2000000)


class Watcher:
    """Register `fd` with `mask` in a poll set; call `consume()` when it is ready (or at any time:
    it never blocks) to learn how many "oom" events to report now."""

    fd: int
    mask: int
    gone = False  # the cgroup was removed: unregister fd, it has nothing more to say

    def consume(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _V1(Watcher):
    """memory.oom_control via cgroup.event_control (the v1 memory controller's notification API)."""

    def __init__(self, memdir: str):
        self._dir = memdir
        self._control = os.open(os.path.join(memdir, "memory.oom_control"),
                                os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.fd = os.eventfd(0, _EFD_NONBLOCK | _EFD_CLOEXEC)
        except BaseException:
            os.close(self._control)
            raise
        self.mask = select.POLLIN
        try:
            ctl = os.open(os.path.join(memdir, "cgroup.event_control"), os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(ctl, f"{self.fd} {self._control}".encode())
            finally:
                os.close(ctl)
        except BaseException:
            self.close()
            raise
        self._last = -EPISODE_GAP - 1.0
        self._base = 0

    def _kills(self) -> int:
        """oom_kill from memory.oom_control (0 on kernels before 4.13, which lack it)."""
        try:
            data = os.pread(self._control, 4096, 0).decode()
        except OSError:
            return 0
        for line in data.splitlines():
            key, _, val = line.partition(" ")
            if key == "oom_kill":
                return int(val)
        return 0

    def consume(self) -> int:
        if self.gone:
            return 0
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0
        # the same eventfd is signalled when the cgroup goes away: that is no OOM
        if not os.path.exists(os.path.join(self._dir, "memory.oom_control")):
            self.gone = True
            return 0
        return self._judge(time.monotonic(), self._kills())

    def _judge(self, now: float, kills: int) -> int:
        """Turn one notification into 0 or 1 events.

        The kernel signals the eventfd on every pass through its OOM path: first *before* it
        picks a victim (oom_kill not yet counted), then again and again while the victim exits
        (measured here: 6 signals within 7 ms for one kill). runc prints one event per read, so
        it prints one or many depending on how fast it reads. pyrunc reports an episode (signals
        less than EPISODE_GAP apart) once, at its first signal, and within an episode each
        further kill beyond the one already reported. With the OOM killer disabled (nothing is
        ever killed) or no oom_kill counter (kernels before 4.13), episodes alone count."""
        new_episode = now - self._last > EPISODE_GAP
        self._last = now
        if new_episode:
            self._base = kills
            return 1
        if kills > self._base + 1:
            self._base = kills - 1
            return 1
        return 0

    def close(self) -> None:
        for fd in (self.fd, self._control):
            try:
                os.close(fd)
            except OSError:
                pass


class _V2(Watcher):
    """memory.events of a cgroup2 directory; its `oom_kill` counts the processes the OOM killer
    killed in the cgroup and below."""

    def __init__(self, d: str):
        self.fd = os.open(os.path.join(d, "memory.events"), os.O_RDONLY | os.O_CLOEXEC)
        self.mask = select.POLLPRI
        self._kills = self._read()  # reading also re-arms the notification

    def _read(self) -> int:
        try:
            data = os.pread(self.fd, 4096, 0)
        except OSError:  # the cgroup was removed under us
            return -1
        for line in data.decode().splitlines():
            key, _, val = line.partition(" ")
            if key == "oom_kill":
                return int(val)
        return 0

    def consume(self) -> int:
        n = self._read()
        if n < 0:
            self.gone = True  # a stale kernfs file polls ready for ever
            return 0
        grew = n > self._kills
        self._kills = max(n, self._kills)
        return 1 if grew else 0

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def watch(mgr) -> Watcher | None:
    """A watcher on the container's memory cgroup, or None where there is no memory controller
    (then `events` reports no OOMs, as runc does). OSError if the kernel refuses registration."""
    if mgr.kind == "v2":
        d = mgr.paths.get("")
        if not d or not os.path.exists(os.path.join(d, "memory.events")):
            return None
        return _V2(d)
    d = mgr.path_of("memory")
    if not d or not os.path.exists(os.path.join(d, "cgroup.event_control")):
        return None
    return _V1(d)
