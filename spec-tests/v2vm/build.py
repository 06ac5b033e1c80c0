#!/usr/bin/env python3
"""Builds what the pure cgroup-v2 test VM boots: a Debian cloud kernel and a two-part initramfs.

The host is cgroup-hybrid, so v2-only behaviour can only be tested in a guest whose kernel runs with
`cgroup_no_v1=all`. The cloud kernel has no 9p, so nothing is shared at run time: the initramfs is
a cached *base* (busybox, the host's own Python 3.11.7 with a trimmed stdlib, cffi's backend, pytest,
a busybox rootfs for containers, the virtio-blk and BFQ modules, systemd for the systemd cgroup
driver's tests) plus a small per-run *overlay* (the pyrunc the host imports, see pyrunc_source; the
guest tests; the command). The kernel unpacks concatenated cpio archives in order, so the two are simply
concatenated. The host's own interpreter is used (not Debian's) because pyrunc's shim was built for
it and then imports in the guest without a rebuild.

usage: build.py [--print]     builds (or finds) the base and prints the kernel and base paths
"""
from __future__ import annotations

import hashlib
import io
import os
import py_compile
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("PYRUNC_V2VM_CACHE", "/var/cache/pyrunc-v2vm"))
KERNEL_META = "linux-image-cloud-amd64"
APT_PACKAGES = {"qemu-system-x86_64": "qemu-system-x86", "/bin/busybox": "busybox-static",
                "zstd": "zstd"}
PY_PREFIX = Path(sys.base_prefix)            # /root/.pyenv/versions/3.11.7 on this host
PY_VER = f"{sys.version_info.major}.{sys.version_info.minor}"
# Site-packages the guest needs: pyrunc's runtime (cffi) and pytest with its own dependencies.
SITE_PACKAGES = ["_cffi_backend", "cffi", "pytest", "_pytest", "pluggy", "iniconfig", "packaging",
                 "py.py", "jsonschema", "jsonschema_specifications", "referencing", "rpds",
                 "attrs", "attr", "typing_extensions.py", "pygments"]
STDLIB_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
               "pydoc_data", "__pycache__", "tkinter", "turtle.py", "sqlite3", "curses", "dbm",
               "config-3.11-x86_64-linux-gnu", "venv"}
# Shared libraries a stdlib extension may pull in; one needing anything else is left out (tk, ssl...).
LIB_ALLOW = {"libc.so.6", "libm.so.6", "libffi.so.8", "libz.so.1", "libbz2.so.1.0", "liblzma.so.5",
             "libuuid.so.1", "libexpat.so.1", "libpython3.11.so.1.0", "libseccomp.so.2",
             "libpthread.so.0", "libdl.so.2", "librt.so.1", "libgcc_s.so.1"}
# Kernel modules put in the base, in load order (init.sh insmods all but bfq): the cloud kernel
# builds virtio-blk as a module, and the guest's io.max tests need a real disk; BFQ, which
# blockIO.weightDevice needs on v2 (io.bfq.weight), is loaded by the one test that wants it.
MODULES = ["drivers/virtio/virtio_ring.ko", "drivers/virtio/virtio.ko",
           "drivers/virtio/virtio_pci_modern_dev.ko", "drivers/virtio/virtio_pci_legacy_dev.ko",
           "drivers/virtio/virtio_pci.ko", "drivers/block/virtio_blk.ko", "block/bfq.ko"]
# runc in the guest lets the guest tests compare pyrunc's cgroup files with the reference's.
REFERENCE_RUNTIMES = [Path("/usr/sbin/runc")]
EXIT_SENTINEL = "PYRUNC-V2VM-EXIT="
# systemd, for the tests of pyrunc's systemd cgroup driver: the host has no systemd as pid 1, so a
# real one runs in the guest (as pid 1 of a pid namespace, see guest_tests/guest_systemd_helper.py).
# Unlike Python's extensions, which LIB_ALLOW filters, it gets every library it links; it is
# optional: on a host without it the image is built without, and the systemd guest tests skip.
# systemd-shutdown is what the manager execs when it stops: without it, it would log an emergency.
SYSTEMD_BINARIES = [Path("/lib/systemd/systemd"), Path("/lib/systemd/systemd-shutdown")]
# util-linux's nsenter, beside busybox's (which cannot enter a cgroup namespace): the guest tests
# run pyrunc in systemd's pid, mount and cgroup namespaces with it.
NSENTER = (Path("/usr/bin/nsenter"), "/v2vm/bin/nsenter")
SYSTEMD_UNIT_DIR = "/usr/lib/systemd/system"  # Debian's systemd searches /usr/lib, not /lib
# The only units the guest's systemd can load besides its builtin ones (-.slice, system.slice,
# init.scope, mount units). Nothing here pulls anything in: no tmpfiles (which would clean /tmp
# under the guest tests), no journald, no udev. guest_systemd_helper starts systemd with
# --unit=pyrunc-v2vm.target, which starts one service: the cgroup the guest tests' commands run
# in (as runc runs in containerd's service), since systemd can only move a process into a scope
# from inside its own cgroup tree (nsdelegate). It also gives system.slice its cgroup, there on any
# real host. The shutdown units let SIGRTMIN+4 (poweroff) work as on a real system: units with
# default dependencies (the scopes and slices tests create) conflict with shutdown.target, so
# they are stopped first; there is no umount.target: nothing is unmounted.
SYSTEMD_UNITS = {
    "pyrunc-v2vm.target": (
        "[Unit]\nDescription=pyrunc v2vm: systemd with next to nothing to start\n"
        "DefaultDependencies=no\nAllowIsolate=yes\n"
        "Wants=pyrunc-v2vm-tests.service\nAfter=pyrunc-v2vm-tests.service\n"),
    "pyrunc-v2vm-tests.service": (
        "[Unit]\nDescription=pyrunc v2vm: where the guest tests' commands run\n"
        "DefaultDependencies=no\nConflicts=shutdown.target\nBefore=shutdown.target\n"
        "[Service]\nType=exec\nExecStart=/bin/sleep 2147483647\n"
        "StandardOutput=null\n"),  # not the journal: that would reference journald's socket
    "shutdown.target": (
        "[Unit]\nDescription=Shutdown\nDefaultDependencies=no\nRefuseManualStart=yes\n"),
    "poweroff.target": (
        "[Unit]\nDescription=Power-Off\nDefaultDependencies=no\n"
        "Requires=systemd-poweroff.service\nAfter=systemd-poweroff.service\nAllowIsolate=yes\n"),
    "systemd-poweroff.service": (
        "[Unit]\nDescription=Power-Off\nDefaultDependencies=no\n"
        "Requires=shutdown.target\nAfter=shutdown.target\nSuccessAction=poweroff-force\n"),
}
# Stop timeouts of seconds, not 90 s: a unit or process that ignores SIGTERM when a test stops
# its systemd is killed in time for guest_systemd_helper's own wait (systemd-shutdown takes its
# timeout from DefaultTimeoutStopSec too).
SYSTEMD_CONF = "[Manager]\nDefaultTimeoutStopSec=5s\n"
# A fixed machine id: systemd would otherwise make one at each start (and warn about it).
MACHINE_ID = "5079726e6332766d5f7465737473a1b1\n"


class BuildError(Exception):
    """Raised with one line the caller can print (missing package, no kernel...)."""


# ---------------------------------------------------------------- packages and kernel

def ensure_packages() -> None:
    """apt-get install what is missing; CI machines start without qemu."""
    missing = sorted({pkg for tool, pkg in APT_PACKAGES.items()
                      if not (os.path.exists(tool) if tool.startswith("/") else shutil.which(tool))})
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"apt-get install {' '.join(missing)} failed: {r.stderr.strip()[-300:]}")


def ensure_kernel() -> tuple[Path, str]:
    """The cloud kernel, extracted from its .deb into the cache rather than installed.

    Installing it would run the host's kernel hooks (initramfs, bootloader) for nothing; all the VM
    needs is the vmlinuz and, should a test want them, the modules.
    """
    kdir = CACHE / "kernel"
    found = sorted(kdir.glob("boot/vmlinuz-*"))
    if found:
        return found[-1], found[-1].name.removeprefix("vmlinuz-")
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)

    def image_pkg() -> str | None:
        out = subprocess.run(["apt-cache", "depends", KERNEL_META], capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "Depends:" and parts[1].startswith("linux-image-"):
                return parts[1]
        return None

    pkg = image_pkg()
    if pkg is None:
        subprocess.run(["apt-get", "update"], capture_output=True)
        pkg = image_pkg()
    if pkg is None:
        raise BuildError(f"apt-cache knows no {KERNEL_META}")
    for deb in debs.glob("*.deb"):
        deb.unlink()
    r = subprocess.run(["apt-get", "download", pkg], cwd=debs, capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True)
        r = subprocess.run(["apt-get", "download", pkg], cwd=debs, capture_output=True, text=True)
    deb = next(iter(debs.glob("*.deb")), None)
    if deb is None:
        raise BuildError(f"apt-get download {pkg} failed: {r.stderr.strip()[-300:]}")
    tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix="kernel."))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    shutil.rmtree(kdir, ignore_errors=True)
    tmp.rename(kdir)
    deb.unlink()
    return ensure_kernel()


# ---------------------------------------------------------------- cpio (newc)

class Cpio:
    """A newc archive writer: the format the kernel unpacks, with no dependency on cpio(1)."""

    def __init__(self, out: io.BufferedIOBase):
        self.out = out
        self.ino = 1000
        self.seen: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", mtime: int = 0, nlink: int = 1) -> None:
        self.ino += 1
        fields = [self.ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out.write(hdr + name.encode() + b"\0")
        self.out.write(b"\0" * ((4 - (110 + len(name) + 1) % 4) % 4))
        self.out.write(data)
        self.out.write(b"\0" * ((4 - len(data) % 4) % 4))

    def dirs(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.seen:
                self.seen.add(d)
                self._entry(d, stat.S_IFDIR | 0o755)

    def add_path(self, src: Path, name: str) -> None:
        """One file, symlink or directory (not recursive), under `name` inside the archive."""
        name = name.strip("/")
        self.dirs(os.path.dirname(name))
        st = os.lstat(src)
        if stat.S_ISLNK(st.st_mode):
            self._entry(name, stat.S_IFLNK | 0o777, os.readlink(src).encode(), int(st.st_mtime))
        elif stat.S_ISDIR(st.st_mode):
            if name not in self.seen:
                self.seen.add(name)
                self._entry(name, stat.S_IFDIR | stat.S_IMODE(st.st_mode), b"", int(st.st_mtime))
        elif stat.S_ISREG(st.st_mode):
            self._entry(name, stat.S_IFREG | stat.S_IMODE(st.st_mode), src.read_bytes(),
                        int(st.st_mtime))

    def add_tree(self, src: Path, name: str) -> None:
        self.add_path(src, name)
        for root, dnames, fnames in os.walk(src):
            dnames.sort()
            rel = os.path.relpath(root, src)
            for n in sorted(dnames) + sorted(fnames):
                sub = n if rel == "." else f"{rel}/{n}"
                self.add_path(Path(root) / n, f"{name}/{sub}")

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        self.dirs(os.path.dirname(name))
        self._entry(name, stat.S_IFREG | mode, data)

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        name = name.strip("/")
        self.dirs(os.path.dirname(name))
        if name not in self.seen:
            self.seen.add(name)
            self._entry(name, stat.S_IFDIR | mode)

    def add_symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        self.dirs(os.path.dirname(name))
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def close(self) -> None:
        self._entry("TRAILER!!!", 0, nlink=1)
        self.out.write(b"\0" * ((512 - self.out.tell() % 512) % 512))


# ---------------------------------------------------------------- base image

def _needed_libs(path: Path) -> list[str] | None:
    """The shared libraries `path` loads, or None when one is outside LIB_ALLOW."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts:
            name, target = parts[0], parts[parts.index("=>") + 1]
            if name not in LIB_ALLOW:
                return None
            if target.startswith("/"):
                libs.append(target)
    return libs


def _all_libs(path: Path) -> list[str]:
    """Every shared library `path` loads, by the path ldd resolved it to (systemd's own libraries
    live in /usr/lib/x86_64-linux-gnu/systemd, found through its RUNPATH)."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts:
            target = parts[parts.index("=>") + 1]
            if not target.startswith("/"):
                raise BuildError(f"{path} needs {parts[0]}, which ldd cannot find")
            libs.append(target)
    return libs


def _systemd_present() -> bool:
    return all(b.exists() for b in (*SYSTEMD_BINARIES, NSENTER[0]))


def _systemd_files() -> list[Path]:
    """systemd's binaries and libraries: inputs of the base's cache key, so that an upgrade of the
    host's systemd rebuilds the image."""
    if not _systemd_present():
        return []
    files = [*SYSTEMD_BINARIES, NSENTER[0]]
    for b in files[:]:
        files += [Path(os.path.realpath(lib)) for lib in _all_libs(b)]
    return sorted(set(files))


def _stage_systemd(stage: Path, put) -> None:
    """systemd, its libraries, the units above and the few /etc files it reads at start."""
    if not _systemd_present():
        return
    libs: set[str] = set()
    for b in SYSTEMD_BINARIES:
        libs.update(_all_libs(b))
        put(b)
    libs.update(_all_libs(NSENTER[0]))
    put(*NSENTER)
    for lib in sorted(libs):
        if not (stage / lib.lstrip("/")).exists():
            put(Path(os.path.realpath(lib)), lib)
    unit_dir = stage / SYSTEMD_UNIT_DIR.lstrip("/")
    unit_dir.mkdir(parents=True, exist_ok=True)
    for name, text in SYSTEMD_UNITS.items():
        (unit_dir / name).write_text(text)
    etc = stage / "etc"
    etc.mkdir(exist_ok=True)
    os_release = Path("/etc/os-release")
    if os_release.exists():
        (etc / "os-release").write_text(os_release.read_text())
    (etc / "machine-id").write_text(MACHINE_ID)
    (etc / "systemd").mkdir(exist_ok=True)
    (etc / "systemd" / "system.conf").write_text(SYSTEMD_CONF)


def _stdlib_files() -> list[Path]:
    stdlib = PY_PREFIX / "lib" / f"python{PY_VER}"
    files = []
    for root, dnames, fnames in os.walk(stdlib):
        dnames[:] = sorted(d for d in dnames if d not in STDLIB_SKIP)
        for f in sorted(fnames):
            if f in STDLIB_SKIP or f.endswith((".pyc", ".exe", ".a")):
                continue
            files.append(Path(root) / f)
    return files


def _host_site() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _guest_site() -> Path:
    """Where the guest's Python (the base installation, not a venv) looks for packages."""
    return PY_PREFIX / "lib" / f"python{PY_VER}" / "site-packages"


def _guest_path(p: Path) -> str:
    """A host file's place in the guest: site-packages content moves to the guest's site-packages
    (the host's may be a venv's, which the guest's Python would not search)."""
    try:
        return str(_guest_site() / p.relative_to(_host_site()))
    except ValueError:
        return str(p)


def _site_files() -> list[Path]:
    site = Path(sysconfig.get_paths()["purelib"])
    files: list[Path] = []
    for name in SITE_PACKAGES:
        for cand in [site / name, *site.glob(f"{name}.cpython-*.so"), *site.glob(f"{name}-*.dist-info")]:
            if cand.is_dir():
                files += [p for p in sorted(cand.rglob("*"))
                          if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
            elif cand.is_file():
                files.append(cand)
    return files


def _inputs_key(files: list[Path]) -> str:
    h = hashlib.sha256()
    for extra in (Path(__file__), HERE / "init.sh", REPO / "bundles" / "build_rootfs.py",
                  Path("/bin/busybox"), *(r for r in REFERENCE_RUNTIMES if r.exists())):
        h.update(extra.read_bytes())
    kernel, _ = ensure_kernel()
    h.update(kernel.name.encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


def _compile_tree(stage: Path) -> None:
    """Compile every .py in `stage` with unchecked-hash pycs.

    Under TCG, compiling the stdlib and pytest at each boot would cost seconds; unchecked-hash pycs
    are valid whatever the mtimes in the archive are.
    """
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    for py in stage.rglob("*.py"):
        rel_dst = py.parent / "__pycache__" / (py.stem + f".{sys.implementation.cache_tag}.pyc")
        try:
            py_compile.compile(str(py), cfile=str(rel_dst), dfile="/" + str(py.relative_to(stage)),
                               doraise=True, invalidation_mode=mode)
        except py_compile.PyCompileError:
            pass  # a file the guest never imports (templates, py2 leftovers)


def _stage_modules(dest: Path) -> None:
    """The MODULES of the cached kernel, flat under `dest` (named as the kernel knows them).

    A module the kernel build lacks is left out: the guest then has no disk and the io tests skip.
    """
    _, release = ensure_kernel()
    mods = CACHE / "kernel" / "lib" / "modules" / release / "kernel"
    dest.mkdir(parents=True, exist_ok=True)
    for rel in MODULES:
        src = mods / rel
        if src.exists():
            shutil.copy2(src, dest / src.name)


def _stage_base(stage: Path, files: list[Path]) -> None:
    def put(src: Path, dst: str | None = None) -> None:
        target = stage / (dst or str(src)).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink() and dst is None:
            os.symlink(os.readlink(src), target)
        else:
            shutil.copy2(src, target)

    libs: set[str] = set()
    exe = PY_PREFIX / "bin" / f"python{PY_VER}"
    for binary in (exe, PY_PREFIX / "lib" / f"libpython{PY_VER}.so.1.0"):
        needed = _needed_libs(binary)
        if needed is None:
            raise BuildError(f"{binary} needs a library the guest image leaves out")
        libs.update(needed)
        put(binary)
    for f in files:
        if f.suffix == ".so":
            needed = _needed_libs(f)
            if needed is None:
                continue
            libs.update(needed)
        guest = _guest_path(f)
        put(f, guest if guest != str(f) else None)
    for ref in REFERENCE_RUNTIMES:
        needed = _needed_libs(ref) if ref.exists() else None
        if needed is not None:
            libs.update(needed)
            put(ref)
    for lib in sorted(libs):
        put(Path(os.path.realpath(lib)), lib)
    _stage_systemd(stage, put)
    put(Path("/lib64/ld-linux-x86-64.so.2"), "/lib64/ld-linux-x86-64.so.2")
    for tool in ("strip",):
        if shutil.which(tool):
            for so in [stage / str(exe).lstrip("/"), *stage.rglob("*.so*")]:
                if so.is_file() and not so.is_symlink():
                    subprocess.run([tool, "--strip-unneeded", str(so)], capture_output=True)
    (stage / "bin").mkdir(exist_ok=True)
    shutil.copy2("/bin/busybox", stage / "bin" / "busybox")
    for applet in subprocess.run(["/bin/busybox", "--list-full"], capture_output=True,
                                 text=True).stdout.split():
        link = stage / applet
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/bin/busybox", link)
    for d in ("proc", "sys", "dev", "run", "tmp", "root", "etc", "var", "mnt", "usr/local/bin"):
        (stage / d).mkdir(parents=True, exist_ok=True)
    (stage / "tmp").chmod(0o1777)
    (stage / "var" / "run").exists() or os.symlink("/run", stage / "var" / "run")
    (stage / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                          "nobody:x:65534:65534:nobody:/:/bin/false\n")
    (stage / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (stage / "etc" / "hosts").write_text("127.0.0.1 localhost v2vm\n")
    _stage_modules(stage / "v2vm" / "modules")
    shutil.copy2(HERE / "init.sh", stage / "init")
    (stage / "init").chmod(0o755)
    sys.path.insert(0, str(REPO / "bundles"))
    from build_rootfs import build as build_rootfs
    build_rootfs(str(stage / "v2vm" / "rootfs"))
    _compile_tree(stage / str(PY_PREFIX).lstrip("/"))


def _write_cpio_tree(stage: Path, out: io.BufferedIOBase) -> None:
    w = Cpio(out)
    for entry in sorted(stage.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            w.add_tree(entry, entry.name)
        else:
            w.add_path(entry, entry.name)
    w.close()


def build_base() -> Path:
    """The cached, compressed base archive; rebuilt only when an input changed."""
    ensure_packages()
    files = _stdlib_files() + _site_files()
    key = _inputs_key(files + _systemd_files())
    target = CACHE / f"base-{key}.cpio.zst"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="stage.") as tmp:
        stage = Path(tmp) / "root"
        stage.mkdir()
        _stage_base(stage, files)
        raw = Path(tmp) / "base.cpio"
        with open(raw, "wb") as f:
            _write_cpio_tree(stage, f)
        part = target.with_suffix(f".part{os.getpid()}")
        subprocess.run(["zstd", "-q", "-f", "-12", "-T0", str(raw), "-o", str(part)], check=True)
        part.rename(target)
    for old in CACHE.glob("base-*.cpio.zst"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------- per-run overlay

def pyrunc_source(repo: Path = REPO) -> Path:
    """The pyrunc package the host's tests use, so that the guest tests the same code.

    That is what `import pyrunc` finds in this process: the working tree with an editable install,
    site-packages with CI's `pip install .` under `python -P` (which keeps the checkout off
    sys.path). PYRUNC_V2VM_SOURCE overrides; with no pyrunc importable, the working tree is used.
    """
    env = os.environ.get("PYRUNC_V2VM_SOURCE")
    if env:
        return Path(env)
    import importlib.util
    try:
        spec = importlib.util.find_spec("pyrunc")
    except (ImportError, ValueError):
        spec = None
    locs = list(spec.submodule_search_locations or []) if spec else []
    for loc in locs:
        if (Path(loc) / "__init__.py").exists():
            return Path(loc)
    return repo / "pyrunc"


def _add_shim_if_missing(pkg: Path) -> None:
    """A non-editable install leaves the built shim in site-packages, not in the tree: take it there."""
    if any(pkg.glob("_shim*.so")):
        return
    import importlib.util
    spec = importlib.util.find_spec("pyrunc._shim")
    if spec is None or not spec.origin or not os.path.exists(spec.origin):
        raise BuildError("pyrunc's C shim is not built: run `pip install -e .` first")
    shutil.copy2(spec.origin, pkg / os.path.basename(spec.origin))


def build_overlay(command: str, out_path: Path, repo: Path = REPO) -> Path:
    """pyrunc (see pyrunc_source), the tree's bundles and guest tests, and /v2vm/cmd.sh running
    `command`.

    Uncompressed: it is small, and the kernel takes a plain cpio after a compressed one.
    """
    with tempfile.TemporaryDirectory(prefix="pyrunc-v2vm-ovl.") as tmp:
        stage = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.o", "build", "*.egg-info")
        # Built rootfs trees under bundles/ stay out: the guest has its own at /v2vm/rootfs.
        ignore_rootfs = shutil.ignore_patterns("__pycache__", "*.pyc", "rootfs", "rootfs.*")
        shutil.copytree(pyrunc_source(repo), stage / "repo" / "pyrunc", ignore=ignore,
                        symlinks=True)
        shutil.copytree(repo / "bundles", stage / "repo" / "bundles", ignore=ignore_rootfs,
                        symlinks=True)
        shutil.copytree(HERE / "guest_tests", stage / "repo" / "spec-tests" / "v2vm" / "guest_tests",
                        ignore=ignore, symlinks=True)
        _add_shim_if_missing(stage / "repo" / "pyrunc")
        _compile_tree(stage / "repo")
        site = stage / str(_guest_site()).lstrip("/")
        site.mkdir(parents=True)
        (site / "pyrunc-v2vm.pth").write_text("/repo\n")
        script = (f"#!{PY_PREFIX}/bin/python{PY_VER}\nimport sys\nfrom pyrunc.cli import main\n"
                  "sys.exit(main())\n")
        for d in (stage / "usr" / "local" / "bin", stage / str(PY_PREFIX).lstrip("/") / "bin"):
            d.mkdir(parents=True, exist_ok=True)
            (d / "pyrunc").write_text(script)
            (d / "pyrunc").chmod(0o755)
        (stage / "v2vm").mkdir()
        (stage / "v2vm" / "cmd.sh").write_text(
            "#!/bin/sh\nexport PYTHONDONTWRITEBYTECODE=1 V2VM_REPO=/repo\n"
            f"cd /repo\n{command}\n")
        (stage / "v2vm" / "cmd.sh").chmod(0o755)
        with open(out_path, "wb") as f:
            _write_cpio_tree(stage, f)
    return out_path


def build_initrd(command: str, out_path: Path) -> tuple[Path, Path]:
    """(kernel, initrd) for one run: the base with this run's overlay appended."""
    kernel, _ = ensure_kernel()
    base = build_base()
    ovl = out_path.with_suffix(".ovl")
    build_overlay(command, ovl)
    with open(out_path, "wb") as out:
        with open(base, "rb") as b:
            shutil.copyfileobj(b, out)
        # The kernel looks for the next archive's magic at a 4-byte boundary after the last one.
        out.write(b"\0" * ((4 - out.tell() % 4) % 4))
        with open(ovl, "rb") as o:
            shutil.copyfileobj(o, out)
    size = ovl.stat().st_size
    ovl.unlink()
    if size > 64 << 20:
        raise BuildError(f"the per-run overlay is {size >> 20} MiB: something large is in the tree")
    return kernel, out_path


if __name__ == "__main__":
    try:
        k, _ = ensure_kernel()
        base = build_base()
    except (BuildError, subprocess.CalledProcessError) as e:
        sys.exit(f"v2vm build: {e}")
    print(f"kernel {k}\nbase {base} {base.stat().st_size // 1024} KiB")
