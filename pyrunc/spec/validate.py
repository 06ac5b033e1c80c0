"""Is this config.json one pyrunc can run? Every problem at once, each as "/json/pointer: message".

Two layers. The schema layer (pyrunc/spec/schema/*.json, compiled ahead of time into _fastcheck.py
so the hot path never imports jsonschema) says what each field may hold. The semantic layer below
says what a schema cannot: that the rootfs exists, that namespaces are consistent with the fields
that need them, that the host can apply the cgroup settings, following the checks runc makes (in
libcontainer/configs/validate and specconv) so that a config runc refuses is refused here too, but
all at once and with the pointer of the offending field.

The semantic checks read a config the schema may already have rejected, so they only look at values
of the right type (`_obj`, `_arr`, `_str`) and never assume a field is there.
"""
from __future__ import annotations

import os

from pyrunc.errors import PyruncError

SUPPORTED = "1.0.0 through 1.3.x"
_SEMVER_TAIL = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-")


def _semver(v: str) -> tuple[int, int, int] | None:
    """MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] as SemVer 2 spells it (numbers without leading
    zeros). By hand: `re` costs create ~5 ms to import."""
    cut = min((i for i in (v.find("-"), v.find("+")) if i >= 0), default=len(v))
    nums = v[:cut].split(".")
    if len(nums) != 3 or not all(n.isascii() and n.isdigit() and (n == "0" or n[0] != "0")
                                 for n in nums):
        return None
    tail = v[cut:]
    pre, plus, build = tail.partition("+")
    if pre and (pre[0] != "-" or len(pre) == 1 or not set(pre[1:]) <= _SEMVER_TAIL):
        return None
    if plus and (not build or not set(build) <= _SEMVER_TAIL):
        return None
    return int(nums[0]), int(nums[1]), int(nums[2])
_NEWEST_MINOR = 3

# runtime-spec namespace type -> (name under /proc/self/ns, CLONE_NEW* flag NS_GET_NSTYPE reports)
_NAMESPACES = {
    "mount": ("mnt", 0x00020000), "uts": ("uts", 0x04000000), "ipc": ("ipc", 0x08000000),
    "user": ("user", 0x10000000), "pid": ("pid", 0x20000000), "network": ("net", 0x40000000),
    "cgroup": ("cgroup", 0x02000000), "time": ("time", 0x00000080),
}
_NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3)

_RLIMITS = frozenset("RLIMIT_" + r for r in (
    "CPU FSIZE DATA STACK CORE RSS NPROC NOFILE MEMLOCK AS LOCKS SIGPENDING MSGQUEUE NICE RTPRIO "
    "RTTIME").split())

# sysctls isolated by the IPC namespace (besides fs.mqueue.*), as runc lists them.
_IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                          "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})


def problems(config: dict, bundle: str) -> list[str]:
    """Every problem in config (schema first, then semantics), each "/pointer: message"."""
    from pyrunc.spec._fastcheck import errors
    schema = errors(config)
    found = [_fmt(p, m) for p, m in schema]
    try:
        found += [_fmt(p, m) for p, m in _semantic(config, bundle)]
    except Exception:  # noqa: BLE001
        # The semantic checks are written for ill-typed input, but if the schema already found the
        # config broken a slip here must not hide those messages behind an internal error.
        if not schema:
            raise
    return found


def check(config: dict, bundle: str) -> None:
    """The create/run gate: raise PyruncError with the first problem, create nothing."""
    found = problems(config, bundle)
    if found:
        more = f" (and {len(found) - 1} more problem{'s' if len(found) > 2 else ''}: run pyrunc validate)" \
            if len(found) > 1 else ""
        raise PyruncError(f"invalid config.json: {found[0]}{more}")


def _fmt(pointer: str, message: str) -> str:
    return f"{pointer or '(root)'}: {message}"


def _obj(x: object) -> dict:
    return x if type(x) is dict else {}


def _arr(x: object) -> list:
    return x if type(x) is list else []


def _str(x: object) -> str:
    return x if type(x) is str else ""


def _int(x: object) -> int | None:
    return x if type(x) is int else None


def _q(s: str) -> str:
    """Quote a config string for a message: short, escaped, one line."""
    s = s if len(s) <= 240 else s[:237] + "..."
    return '"' + s.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def _esc(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# ---------------------------------------------------------------------------------------------
Problems = list[tuple[str, str]]


def _semantic(config: dict, bundle: str) -> Problems:
    out: Problems = []
    _version(config, out)
    _root(config, bundle, out)
    _process(config, out)
    _mounts(config, out)
    linux = _obj(config.get("linux"))
    ns = _namespaces(linux, out)
    _uts(config, ns, out)
    _idmaps(linux, ns, out)
    _time(linux, ns, out)
    _sysctl(linux, ns, out)
    _paths(linux, out)
    _devices(linux, out)
    _netdevices(linux, ns, out)
    _resources(linux, out)
    return out


def _version(config: dict, out: Problems) -> None:
    v = config.get("ociVersion")
    if type(v) is not str:
        return
    parsed = _semver(v)
    if not parsed:
        out.append(("/ociVersion", f"{_q(v)} is not a SemVer version (pyrunc supports {SUPPORTED})"))
        return
    major, minor, _ = parsed
    if major != 1:
        out.append(("/ociVersion", f"runtime-spec version {_q(v)} has major version {major}: "
                                   f"pyrunc supports {SUPPORTED}"))
    elif minor > _NEWEST_MINOR:
        out.append(("/ociVersion", f"runtime-spec version {_q(v)} is newer than pyrunc supports "
                                   f"({SUPPORTED})"))


def _nul(s: str) -> bool:
    return "\0" in s


def _root(config: dict, bundle: str, out: Problems) -> None:
    if "root" not in config:
        out.append(("/root", "required property is missing (a Linux container needs a root filesystem)"))
        return
    path = _obj(config["root"]).get("path")
    if type(path) is not str:
        return
    if not path:
        out.append(("/root/path", "must not be empty"))
        return
    if _nul(path):
        out.append(("/root/path", "contains a NUL byte"))
        return
    full = path if os.path.isabs(path) else os.path.join(os.path.abspath(bundle), path)
    try:
        st = os.stat(full)
    except FileNotFoundError:
        out.append(("/root/path", f"root filesystem {_q(full)} does not exist"))
        return
    except OSError as e:
        out.append(("/root/path", f"cannot access root filesystem {_q(full)}: {e.strerror}"))
        return
    import stat
    if not stat.S_ISDIR(st.st_mode):
        out.append(("/root/path", f"root filesystem {_q(full)} is not a directory"))


def _process(config: dict, out: Problems) -> None:
    if "process" not in config:
        out.append(("/process", "required property is missing (the container needs a process to run)"))
        return
    proc = _obj(config["process"])
    if not proc:
        return
    args = proc.get("args")
    if args is None or args == []:
        out.append(("/process/args", "must not be empty (the first entry is the program to run)"))
    for i, a in enumerate(_arr(args)):
        if type(a) is str and _nul(a):
            out.append((f"/process/args/{i}", "contains a NUL byte"))
    for i, kv in enumerate(_arr(proc.get("env"))):
        if type(kv) is str and (_nul(kv) or "=" not in kv):
            why = "contains a NUL byte" if _nul(kv) else "must have the form KEY=value"
            out.append((f"/process/env/{i}", why))
    cwd = proc.get("cwd")
    if type(cwd) is str:
        if not cwd.startswith("/"):
            out.append(("/process/cwd", f"{_q(cwd)} is not an absolute path"))
        elif _nul(cwd):
            out.append(("/process/cwd", "contains a NUL byte"))
    if _str(proc.get("selinuxLabel")) and not os.path.exists("/sys/fs/selinux/enforce"):
        out.append(("/process/selinuxLabel", "SELinux is not enabled on this host"))
    if _str(proc.get("apparmorProfile")) and not _apparmor_enabled():
        out.append(("/process/apparmorProfile", "AppArmor is not enabled on this host"))
    oom = _int(proc.get("oomScoreAdj"))
    if oom is not None and not -1000 <= oom <= 1000:
        out.append(("/process/oomScoreAdj", f"{oom} is outside -1000..1000"))
    # Capability names the kernel does not know are not an error: runc (and issue 4) report and
    # skip them when the process is set up (pyrunc/init/process.py), so configs written for newer
    # kernels still run.
    seen: set[str] = set()
    for i, rl in enumerate(_arr(proc.get("rlimits"))):
        rl = _obj(rl)
        t = rl.get("type")
        if type(t) is str:
            if t in seen:
                out.append((f"/process/rlimits/{i}/type", f"duplicate rlimit type {t}"))
            elif t not in _RLIMITS and t.startswith("RLIMIT_"):
                out.append((f"/process/rlimits/{i}/type", f"unknown rlimit type {_q(t)}"))
            seen.add(t)
        soft, hard = _int(rl.get("soft")), _int(rl.get("hard"))
        if soft is not None and hard is not None and soft > hard:
            out.append((f"/process/rlimits/{i}/soft", f"soft limit {soft} is above the hard limit {hard}"))
    sched = _obj(proc.get("scheduler"))
    nice = _int(sched.get("nice"))
    if nice is not None and not -20 <= nice <= 19:
        out.append(("/process/scheduler/nice", f"{nice} is outside -20..19"))


def _apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def _mounts(config: dict, out: Problems) -> None:
    """Relative destinations are accepted, as runc accepts them for configs from before 1.0: the
    mount code must make them absolute (runc joins them to "/")."""
    for i, m in enumerate(_arr(config.get("mounts"))):
        m = _obj(m)
        dest = m.get("destination")
        if type(dest) is str:
            if not dest:
                out.append((f"/mounts/{i}/destination", "must not be empty"))
            elif _nul(dest):
                out.append((f"/mounts/{i}/destination", "contains a NUL byte"))
        src = m.get("source")
        if type(src) is str and _nul(src):
            out.append((f"/mounts/{i}/source", "contains a NUL byte"))
        if ("uidMappings" in m) != ("gidMappings" in m):
            out.append((f"/mounts/{i}", "an idmapped mount needs both uidMappings and gidMappings"))


def _namespaces(linux: dict, out: Problems) -> dict[str, str]:
    """The namespaces the container will have: type -> path ("" for a new one)."""
    found: dict[str, str] = {}
    for i, n in enumerate(_arr(linux.get("namespaces"))):
        n = _obj(n)
        t = n.get("type")
        if type(t) is not str or t not in _NAMESPACES:
            continue
        if t in found:
            out.append((f"/linux/namespaces/{i}/type", f"duplicate namespace type {_q(t)}"))
            continue
        path = n.get("path", "")
        found[t] = path if type(path) is str else ""
        proc_name, flag = _NAMESPACES[t]
        if not os.path.exists(f"/proc/self/ns/{proc_name}"):
            out.append((f"/linux/namespaces/{i}/type", f"{t} namespaces are not supported by this kernel"))
            continue
        if type(path) is str and path:
            why = _ns_path_problem(path, flag)
            if why:
                out.append((f"/linux/namespaces/{i}/path", f"{_q(path)} {why}"))
    return found


def _ns_path_problem(path: str, flag: int) -> str | None:
    """Why the container could not join the namespace at path, or None if it can."""
    if _nul(path):
        return "contains a NUL byte"
    if not path.startswith("/"):
        return "is not an absolute path"
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        return f"cannot be opened: {e.strerror}"
    try:
        kind = fcntl.ioctl(fd, _NS_GET_NSTYPE)
    except OSError:
        return "is not a namespace file"
    finally:
        os.close(fd)
    if kind != flag:
        other = next((t for t, (_, f) in _NAMESPACES.items() if f == kind), "another")
        return f"is a {other} namespace, not the type declared here"
    return None


def _uts(config: dict, ns: dict[str, str], out: Problems) -> None:
    for field in ("hostname", "domainname"):
        if _str(config.get(field)) and "uts" not in ns:
            out.append((f"/{field}", f"unable to set {field} without a private UTS namespace"))


def _idmaps(linux: dict, ns: dict[str, str], out: Problems) -> None:
    has_maps = bool(_arr(linux.get("uidMappings")) or _arr(linux.get("gidMappings")))
    if "user" not in ns:
        for field in ("uidMappings", "gidMappings"):
            if _arr(linux.get(field)):
                out.append((f"/linux/{field}", "user namespace mappings are given, but the config "
                                               "has no user namespace"))
    elif not ns["user"] and not has_maps:
        out.append(("/linux/namespaces", "a new user namespace needs uidMappings and gidMappings"))


def _time(linux: dict, ns: dict[str, str], out: Problems) -> None:
    offsets = _obj(linux.get("timeOffsets"))
    if not offsets:
        return
    if "time" not in ns:
        out.append(("/linux/timeOffsets", "time offsets are given, but the config has no time namespace"))
    elif ns["time"]:
        out.append(("/linux/timeOffsets", "time offsets cannot be applied to a joined time namespace"))
    for clock in offsets:
        if clock not in ("monotonic", "boottime"):
            out.append((f"/linux/timeOffsets/{_esc(clock)}",
                        f"unknown clock {_q(clock)} (want monotonic or boottime)"))


def _sysctl(linux: dict, ns: dict[str, str], out: Problems) -> None:
    """runc's rule: a sysctl is allowed only if the container has its own copy of it."""
    host_net: bool | None = None
    for key in _obj(linux.get("sysctl")):
        ptr = f"/linux/sysctl/{_esc(key)}"
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" not in ns:
                out.append((ptr, "not allowed in the host's IPC namespace (add an ipc namespace)"))
            continue
        if key.startswith("net."):
            if host_net is None:
                host_net = "network" not in ns or (bool(ns["network"]) and _is_host_netns(ns["network"]))
            if host_net:
                out.append((ptr, "not allowed in the host's network namespace (add a network namespace)"))
            continue
        if key == "kernel.domainname" and "uts" in ns:
            continue
        if key == "kernel.hostname" and "uts" in ns:
            out.append((ptr, 'conflicts with the "hostname" field: set that instead'))
            continue
        if key in ("kernel.hostname", "kernel.domainname"):
            out.append((ptr, "not allowed without a private UTS namespace"))
            continue
        out.append((ptr, "this sysctl is not isolated by any namespace the container has"))


def _is_host_netns(path: str) -> bool:
    try:
        a, b = os.stat(path), os.stat("/proc/self/ns/net")
    except (OSError, ValueError):
        return False  # reported by the namespace check
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _paths(linux: dict, out: Problems) -> None:
    for field in ("maskedPaths", "readonlyPaths"):
        for i, p in enumerate(_arr(linux.get(field))):
            if type(p) is str and (not p.startswith("/") or _nul(p)):
                why = "contains a NUL byte" if _nul(p) else f"{_q(p)} is not an absolute path"
                out.append((f"/linux/{field}/{i}", why))


def _devices(linux: dict, out: Problems) -> None:
    for i, d in enumerate(_arr(linux.get("devices"))):
        d = _obj(d)
        path = d.get("path")
        if type(path) is str and (not path.startswith("/") or _nul(path)):
            out.append((f"/linux/devices/{i}/path",
                        "contains a NUL byte" if _nul(path) else f"{_q(path)} is not an absolute path"))
        if d.get("type") in ("c", "b", "u"):
            for field in ("major", "minor"):
                if field not in d:
                    out.append((f"/linux/devices/{i}/{field}", f"required for a device of type {d['type']!r}"))


def _ifname_problem(name: str) -> str | None:
    """Why the kernel would refuse `name` for an interface (dev_valid_name), or None."""
    if not name:
        return "is empty"
    if len(name.encode("utf-8", "surrogateescape")) > 15:
        return "is longer than 15 bytes"
    if name in (".", ".."):
        return "is not a valid interface name"
    if any(c in "/:" or c.isspace() or c == "\0" for c in name):
        return "contains a slash, colon, NUL or whitespace"
    return None


def _netdevices(linux: dict, ns: dict[str, str], out: Problems) -> None:
    """runtime-spec 1.3: the devices move into the container's own network namespace, under
    names that are valid and distinct there, and must exist in the runtime's namespace now."""
    devs = _obj(linux.get("netDevices"))
    if not devs:
        return
    if "network" not in ns:
        out.append(("/linux/netDevices", "network devices can only be moved into a network namespace "
                                         "of the container's own (add a network namespace)"))
    elif ns["network"] and _is_host_netns(ns["network"]):
        out.append(("/linux/netDevices", "network devices cannot be moved into the runtime's own "
                                         "network namespace"))
    final: dict[str, str] = {}
    for host_name, spec in devs.items():
        ptr = f"/linux/netDevices/{_esc(host_name)}"
        why = _ifname_problem(host_name)
        if why:
            out.append((ptr, f"host interface name {_q(host_name)} {why}"))
            continue
        new = _obj(spec).get("name")
        if type(new) is str and new:
            why = _ifname_problem(new)
            if why:
                out.append((f"{ptr}/name", f"interface name {_q(new)} {why}"))
                continue
        else:
            new = host_name
        if new in final:
            out.append((ptr, f"{_q(host_name)} would be called {_q(new)} in the container, as "
                             f"{_q(final[new])} would"))
        else:
            final[new] = host_name
        import socket
        try:
            socket.if_nametoindex(host_name)
        except OSError:
            out.append((ptr, f"no network device {_q(host_name)} in the runtime's network namespace"))


# ---------------------------------------------------------------------------------------------
def _resources(linux: dict, out: Problems) -> None:
    """Static limits first, then whether this host has the controllers the settings need: a
    missing controller found here fails create before any cgroup, mount or process exists."""
    res = _obj(linux.get("resources"))
    rdt = _obj(linux.get("intelRdt"))
    if not res and not rdt:
        return
    mem = _obj(res.get("memory"))
    swappiness = _int(mem.get("swappiness"))
    if swappiness is not None and swappiness > 100:
        out.append(("/linux/resources/memory/swappiness", f"{swappiness} is outside 0..100"))
    limit, swap = _int(mem.get("limit")), _int(mem.get("swap"))
    if limit is not None and swap is not None and limit > 0 and swap > 0 and swap < limit:
        out.append(("/linux/resources/memory/swap",
                    f"memory+swap limit {swap} is below the memory limit {limit}"))
    cpu = _obj(res.get("cpu"))
    quota, burst = _int(cpu.get("quota")), _int(cpu.get("burst"))
    if quota is not None and burst is not None and quota > 0 and burst > quota:
        out.append(("/linux/resources/cpu/burst", f"burst {burst} is larger than the quota {quota}"))
    for i, w in enumerate(_arr(_obj(res.get("blockIO")).get("weightDevice"))):
        if type(w) is dict and "weight" not in w and "leafWeight" not in w:
            out.append((f"/linux/resources/blockIO/weightDevice/{i}", "needs weight or leafWeight"))
    for name, r in _obj(res.get("rdma")).items():
        if type(r) is dict and "hcaHandles" not in r and "hcaObjects" not in r:
            out.append((f"/linux/resources/rdma/{_esc(name)}", "needs hcaHandles or hcaObjects"))
    _host_cgroups(res, rdt, out)


def _host_cgroups(res: dict, rdt: dict, out: Problems) -> None:
    host = _Host()
    need = [("memory", "memory"), ("pids", "pids"), ("blockIO", "blkio" if host.v1 else "io"),
            ("rdma", "rdma"), ("hugepageLimits", "hugetlb")]
    for field, ctl in need:
        if res.get(field) and not host.has(ctl):
            out.append((f"/linux/resources/{field}", f"the {ctl} cgroup controller is not available on this host"))
    cpu = _obj(res.get("cpu"))
    if any(k in cpu for k in ("shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "idle")) \
            and not host.has("cpu"):
        out.append(("/linux/resources/cpu", "the cpu cgroup controller is not available on this host"))
    elif host.v1 and host.has("cpu"):
        for field, file in (("realtimeRuntime", "cpu.rt_runtime_us"), ("realtimePeriod", "cpu.rt_period_us"),
                            ("burst", "cpu.cfs_burst_us"), ("idle", "cpu.idle")):
            if cpu.get(field) and not host.v1_file("cpu", file):
                out.append((f"/linux/resources/cpu/{field}", f"this host's cpu controller has no {file}"))
    if (_str(cpu.get("cpus")) or _str(cpu.get("mems"))) and not host.has("cpuset"):
        out.append(("/linux/resources/cpu", "the cpuset cgroup controller is not available on this host"))
    net = _obj(res.get("network"))
    if "classID" in net and not host.has("net_cls"):
        out.append(("/linux/resources/network/classID", "the net_cls cgroup controller is not available on this host"))
    if _arr(net.get("priorities")) and not host.has("net_prio"):
        out.append(("/linux/resources/network/priorities",
                    "the net_prio cgroup controller is not available on this host"))
    mem = _obj(res.get("memory"))
    if host.v1 and host.has("memory") and _int(mem.get("swap")) not in (None, 0) \
            and not host.v1_file("memory", "memory.memsw.limit_in_bytes"):
        out.append(("/linux/resources/memory/swap", "swap accounting is not enabled on this host"))
    # blkio weights are not checked here: the root blkio cgroup lacks blkio.bfq.weight even where
    # child cgroups have it, so only applying them can tell (create then fails cleanly).
    sizes = host.hugepage_sizes()
    for i, h in enumerate(_arr(res.get("hugepageLimits"))):
        size = _obj(h).get("pageSize")
        if type(size) is str and host.has("hugetlb") and size not in sizes:
            out.append((f"/linux/resources/hugepageLimits/{i}/pageSize",
                        f"{_q(size)} is not a huge page size of this host ({', '.join(sorted(sizes)) or 'none'})"))
    unified = _obj(res.get("unified"))
    if unified:
        if host.v1 and not host.v2:
            out.append(("/linux/resources/unified", "cgroup v2 (unified) settings need a cgroup v2 host; "
                                                    "this host uses cgroup v1 controllers"))
        else:
            for key in unified:
                ctl = key.partition(".")[0]
                if "/" in key or ctl != "cgroup" and not host.has(ctl):
                    out.append((f"/linux/resources/unified/{_esc(key)}",
                                f"{_q(key)} is not a file of an available cgroup v2 controller"))
    if rdt and not host.resctrl:
        out.append(("/linux/intelRdt", "Intel RDT needs a mounted resctrl filesystem; this host has none"))


class _Host:
    """What the host's cgroup mounts offer, read once from /proc/self/mountinfo.

    `v1` is True when any v1 controller hierarchy is mounted (v1 or hybrid: those controllers are
    driven through v1), False on a pure v2 host, None when no cgroup filesystem is mounted at all.
    """

    def __init__(self) -> None:
        self.v1_mounts: dict[str, str] = {}
        self.v2_controllers: set[str] = set()
        self.resctrl = False
        v2_root = None
        try:
            with open("/proc/self/mountinfo") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        for line in lines:
            pre, _, post = line.partition(" - ")
            fields, post_fields = pre.split(), post.split()
            if len(fields) < 5 or len(post_fields) < 3:
                continue
            fstype, mnt = post_fields[0], fields[4]
            if fstype == "cgroup":
                for opt in post_fields[2].split(","):
                    if opt not in ("rw", "ro") and "=" not in opt:
                        self.v1_mounts.setdefault(opt, mnt)
            elif fstype == "cgroup2" and v2_root is None:
                v2_root = mnt
            elif fstype == "resctrl":
                self.resctrl = True
        if v2_root:
            try:
                with open(os.path.join(v2_root, "cgroup.controllers")) as f:
                    self.v2_controllers = set(f.read().split())
            except OSError:
                pass
        real_v1 = {k for k in self.v1_mounts if not k.startswith("name=")}
        self.v1: bool | None = True if real_v1 else (False if v2_root else None)
        self.v2 = bool(v2_root)  # pure v2, or the unified mount of a hybrid host

    def has(self, controller: str) -> bool:
        if self.v1:  # a hybrid host offers what its unified mount has too (hugetlb here)
            return controller in self.v1_mounts or controller in self.v2_controllers
        return controller in self.v2_controllers

    def v1_file(self, controller: str, name: str) -> bool:
        root = self.v1_mounts.get(controller)
        return bool(root) and os.path.exists(os.path.join(root, name))

    @staticmethod
    def hugepage_sizes() -> set[str]:
        sizes = set()
        try:
            names = os.listdir("/sys/kernel/mm/hugepages")
        except OSError:
            return sizes
        for n in names:
            num = n[len("hugepages-"):-len("kB")]
            if n.startswith("hugepages-") and n.endswith("kB") and num.isascii() and num.isdigit():
                kb = int(num)
                sizes.add(f"{kb >> 20}GB" if kb % (1 << 20) == 0 else
                          f"{kb >> 10}MB" if kb % (1 << 10) == 0 else f"{kb}KB")
        return sizes
