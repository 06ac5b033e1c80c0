#!/usr/bin/env python3
"""Boots the pure cgroup-v2 VM, runs one command in it and exits with that command's status.

usage: run.py [--timeout S] [--memory MB] [--smp N] [--quiet] [--] [COMMAND...]

COMMAND is a shell command line run in the guest from /repo (the working tree's pyrunc, bundles and
spec-tests/v2vm/guest_tests are there); by default every guest test under pytest. The guest's
console streams to stdout as it comes; the last line of the run is a summary on stderr. Exit codes
beyond the guest's own: 124 timeout, 125 the guest died without reporting a status, 126 the
harness could not be built (qemu, kernel or packages missing).

KVM is not used on purpose: on this host it hangs, and TCG boots this tiny guest in seconds.
"""
from __future__ import annotations

import argparse
import os
import re
import selectors
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path



def _load_build():
    """build.py under a private module name: a bare `import build` could pick up PyPA's `build`."""
    import importlib.util
    name = "pyrunc_v2vm_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "build.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


build = _load_build()
QBOOT = Path("/usr/share/qemu/qboot.rom")  # a minimal firmware: boots -kernel faster than SeaBIOS

PY = f"{build.PY_PREFIX}/bin/python{build.PY_VER}"
DEFAULT_COMMAND = (f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {PY} -m pytest -p no:cacheprovider -q -s -rsx "
                   "-o python_files='guest_*.py' spec-tests/v2vm/guest_tests")
KERNEL_ARGS = ["console=ttyS0", "cgroup_no_v1=all", "panic=-1", "quiet", "loglevel=3",
               "rdinit=/init", "random.trust_cpu=on", "tsc=reliable"]
EXIT_RE = re.compile(r"PYRUNC-V2VM-EXIT=(\d+)")
BOOT_MARK = "PYRUNC-V2VM-BOOTED"
ANSI_RE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|c)")


@dataclass
class Result:
    """What one VM run produced; `exit_code` is the guest command's status or 124/125."""
    exit_code: int
    output: str
    boot_seconds: float | None = None
    total_seconds: float = 0.0
    lines: list[str] = field(default_factory=list)


DISK_MB = 16  # the guest's /dev/vda: a sparse file made per run, for io.max and device tests


def make_disk(path: Path, size_mb: int = DISK_MB) -> Path:
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
    return path


def qemu_argv(kernel: Path, initrd: Path, memory_mb: int, smp: int,
              disk: Path | None = None) -> list[str]:
    firmware = ["-bios", str(QBOOT)] if QBOOT.exists() else []
    drive = ["-drive", f"file={disk},if=virtio,format=raw,cache=unsafe"] if disk else []
    return ["qemu-system-x86_64", *firmware, "-accel", "tcg", "-cpu", "max", "-m", str(memory_mb),
            "-smp", str(smp), "-nographic", "-nodefaults", "-no-user-config", "-serial", "stdio",
            "-no-reboot", *drive, "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", " ".join(KERNEL_ARGS)]


def run_vm(command: str = DEFAULT_COMMAND, timeout: float = 600, memory_mb: int = 1024,
           smp: int = 2, stream: bool = True) -> Result:
    """Build the initrd for `command`, boot it, and collect the console until the guest powers off."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pyrunc-v2vm.") as tmp:
        kernel, initrd = build.build_initrd(command, Path(tmp) / "initrd.img")
        built = time.monotonic()
        disk = make_disk(Path(tmp) / "disk.img")
        proc = subprocess.Popen(qemu_argv(kernel, initrd, memory_mb, smp, disk),
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines: list[str] = []
        exit_code: int | None = None
        boot_at: float | None = None
        deadline = built + timeout
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        buf = b""
        timed_out = False
        unpack_failed = False  # a broken archive: the guest would run without its overlay
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if not sel.select(timeout=min(left, 1.0)):
                if proc.poll() is not None:
                    break
                continue
            chunk = proc.stdout.read()
            if not chunk:
                if proc.poll() is not None or chunk == b"":
                    break
                continue
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                line = ANSI_RE.sub("", raw.decode(errors="replace")).rstrip("\r")
                lines.append(line)
                if stream:
                    print(line, flush=True)
                if boot_at is None and BOOT_MARK in line:
                    boot_at = time.monotonic()
                if "Initramfs unpacking failed" in line:
                    unpack_failed = True
                m = EXIT_RE.search(line)
                if m:
                    exit_code = int(m.group(1))
        if buf:
            lines.append(buf.decode(errors="replace").rstrip("\r"))
        sel.close()
        if proc.poll() is None:
            # After the sentinel the guest powers off by itself; give it a moment, then end it.
            try:
                proc.wait(timeout=10 if not timed_out else 0.1)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
    end = time.monotonic()
    if unpack_failed:
        code = 125
        lines.append("v2vm: the kernel could not unpack the initramfs (see above)")
    elif timed_out and exit_code is None:
        code = 124
    elif exit_code is None:
        code = 125
    else:
        code = exit_code
    return Result(code, "\n".join(lines), None if boot_at is None else boot_at - built,
                  end - start, lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("V2VM_TIMEOUT", 900)))
    ap.add_argument("--memory", type=int, default=1024, help="guest RAM in MiB")
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    command = " ".join(cmd) if len(cmd) == 1 else (shlex.join(cmd) if cmd else DEFAULT_COMMAND)
    try:
        res = run_vm(command, args.timeout, args.memory, args.smp, stream=not args.quiet)
    except (build.BuildError, OSError, subprocess.CalledProcessError) as e:
        print(f"v2vm: cannot build or boot the VM: {e}", file=sys.stderr)
        return 126
    boot = "?" if res.boot_seconds is None else f"{res.boot_seconds:.1f}s"
    why = {124: " (timeout)", 125: " (guest died without a status)"}.get(res.exit_code, "")
    print(f"v2vm: exit {res.exit_code}{why}, boot {boot}, total {res.total_seconds:.1f}s",
          file=sys.stderr)
    return res.exit_code


if __name__ == "__main__":
    sys.exit(main())
