#!/usr/bin/env python3
"""Builds a busybox rootfs offline: Debian's static busybox if installed, else the host's own
dynamically linked busybox (or sh) with the libraries ldd names.

usage: build_rootfs.py DEST    (DEST is created; an existing DEST is left as it is)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

DIRS = ["bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "root", "home", "run", "var", "usr/bin",
        "lib", "lib64", "mnt"]


def _find_busybox() -> str:
    for cand in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox") or ""):
        if cand and os.path.exists(cand):
            return cand
    sys.exit("build_rootfs: no busybox on this host: apt-get install busybox-static")


def _copy_libs(binary: str, dest: str) -> None:
    """For a dynamic busybox: copy what the loader needs, to the same paths inside DEST."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/") and os.path.exists(p):
                target = os.path.join(dest, p.lstrip("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(os.path.realpath(p), target)


def build(dest: str) -> str:
    if os.path.exists(os.path.join(dest, "bin", "busybox")):
        return dest
    tmp = dest + f".tmp{os.getpid()}"
    for d in DIRS:
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    os.chmod(os.path.join(tmp, "tmp"), 0o1777)
    src = _find_busybox()
    shutil.copy2(src, os.path.join(tmp, "bin", "busybox"))
    _copy_libs(src, tmp)
    applets = subprocess.run([src, "--list"], capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = os.path.join(tmp, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(tmp, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(tmp, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    try:
        os.rename(tmp, dest)
    except OSError:  # another builder won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(build(sys.argv[1]))
