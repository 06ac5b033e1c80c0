#!/usr/bin/env python3
"""Times `pyrunc run` of /bin/true against `runc run` (and crun when installed) on the same bundle.

Runs are interleaved so both runtimes see the same machine state; prints medians and the ratio.
It reports; it asserts nothing. Run as root:  python3 benchmarks/bench_run.py [-n 30]
Time the installed console script (never the pyenv shim, which adds tens of milliseconds).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bundles"))
sys.path.insert(0, os.path.join(HERE, ".."))

from build_rootfs import build  # noqa: E402


def make_bundle(tmp: str) -> str:
    from pyrunc.spec.default import default_config
    bundle = os.path.join(tmp, "bundle")
    os.makedirs(bundle)
    build(os.path.join(bundle, "rootfs"))
    cfg = default_config()
    cfg["process"].update(terminal=False, args=["/bin/true"])
    cfg["ociVersion"] = "1.0.2"  # runc 1.1 accepts 1.0.x configs
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    return bundle


def time_one(argv: list[str]) -> float | None:
    # stderr to a file, not a pipe: a detached container keeps create's stdio open
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        elapsed = time.perf_counter() - t0
        if p.returncode != 0:
            err.seek(0)
            print(f"  {os.path.basename(argv[0])} failed: {err.read().decode().strip()[:200]}",
                  file=sys.stderr)
            return None
    return elapsed


def bench_commands(runtimes: dict[str, str], bundle: str, tmp: str, n: int) -> None:
    """Each lifecycle command alone: create, state, start, kill, delete of a `sleep` container."""
    cfg_path = os.path.join(bundle, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["/bin/sleep", "100"]
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    steps = ("create", "state", "start", "kill", "delete")
    times = {name: {s: [] for s in steps} for name in runtimes}
    for i in range(n + 2):
        for name, binary in runtimes.items():
            root = os.path.join(tmp, f"root-cmd-{name}")
            cid = f"cmd-{name}-{i}"
            argvs = {"create": ["create", "--bundle", bundle, cid], "state": ["state", cid],
                     "start": ["start", cid], "kill": ["kill", cid, "KILL"],
                     "delete": ["delete", "--force", cid]}
            for step in steps:
                t = time_one([binary, "--root", root, *argvs[step]])
                if t is not None and i >= 2:
                    times[name][step].append(t)
    print(f"each command alone, {n} runs each, median wall time (ms):")
    print("  " + " ".join(f"{s:>8s}" for s in ("", *steps)))
    for name in runtimes:
        print("  " + f"{name:>8s}" + " ".join(f"{statistics.median(times[name][s]) * 1000:8.1f}"
                                             for s in steps))
    if "runc" in runtimes:
        print("  " + f"{'ratio':>8s}" + " ".join(
            f"{statistics.median(times['pyrunc'][s]) / statistics.median(times['runc'][s]):8.2f}"
            for s in steps) + "   (pyrunc / runc)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--commands", action="store_true", help="also time each lifecycle command")
    opts = ap.parse_args()
    n = opts.n
    pyrunc = os.path.join(sysconfig.get_path("scripts"), "pyrunc")
    runtimes = {"pyrunc": pyrunc}
    for other in ("runc", "crun"):
        if shutil.which(other):
            runtimes[other] = shutil.which(other)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(tmp)
        times: dict[str, list[float]] = {k: [] for k in runtimes}
        for i in range(n + 2):
            for name, binary in list(runtimes.items()):
                root = os.path.join(tmp, f"root-{name}")
                t = time_one([binary, "--root", root, "run", "--bundle", bundle, f"bench-{name}-{i}"])
                if t is None:  # e.g. crun refuses hybrid cgroup hosts
                    del runtimes[name], times[name]
                elif i >= 2:  # warm-up
                    times[name].append(t)
    base = statistics.median(times["pyrunc"])
    print(f"run of /bin/true, {n} runs each, median wall time:")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:7s} {med * 1000:7.1f} ms   (pyrunc / {name} = {base / med:.2f})")
    if opts.commands:
        with tempfile.TemporaryDirectory() as tmp:
            bench_commands(runtimes, make_bundle(tmp), tmp, n)


if __name__ == "__main__":
    main()
