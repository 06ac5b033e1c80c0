"""pyrunc on a pure cgroup-v2 kernel: the guest tests of spec-tests/v2vm, run in a qemu VM.

This host is cgroup-hybrid, and most users are pure v2, so the v2 code path can only be exercised
for real inside a VM booted with `cgroup_no_v1=all` (how: spec-tests/v2vm/run.py).
One VM boot serves the whole module; each test below checks one part of what the guest reported.
Select with `-m v2vm`. Skips only when qemu or the kernel cannot be installed.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.v2vm

HERE = Path(__file__).resolve().parent / "v2vm"


def _load(name: str, file: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def guest():
    """Boot once: build (cached) the initramfs, run every guest test, return the run's Result."""
    if os.geteuid() != 0:
        pytest.skip("the v2 VM harness installs packages and writes /var/cache: needs root")
    run = _load("pyrunc_v2vm_run", "run.py")
    build = run.build
    try:
        build.ensure_packages()
        build.ensure_kernel()
    except (build.BuildError, OSError) as e:  # OSError: no apt-get/dpkg at all
        pytest.skip(f"cannot install qemu or the cloud kernel: {e}")
    res = run.run_vm(timeout=float(os.environ.get("V2VM_TIMEOUT", 900)), stream=False)
    print(f"v2vm: exit {res.exit_code}, boot {res.boot_seconds}s, total {res.total_seconds:.1f}s")
    return res


def _tail(res, n: int = 60) -> str:
    return "\n".join(res.lines[-n:])


def test_guest_booted_pure_v2_and_reported(guest):
    assert guest.boot_seconds is not None, f"the guest never booted:\n{_tail(guest)}"
    assert guest.exit_code not in (124, 125), f"the guest did not finish:\n{_tail(guest)}"
    booted = next(line for line in guest.lines if "PYRUNC-V2VM-BOOTED" in line)
    for c in ("cpu", "memory", "pids", "io"):
        assert c in booted.split("controllers=")[1].split()[0].split(","), booted


@pytest.mark.parametrize("check", ["pure-v2", "limits", "pids-max", "memory-oom"])
def test_kernel_is_really_v2(guest, check):
    assert f"V2VM-CHECK {check} ok" in guest.output, _tail(guest)


# check -> (guest file, the guest test that prints it)
PYRUNC_CHECKS = {
    "pyrunc-manager": ("guest_pyrunc_cgroups", "test_manager_creates"),
    "pyrunc-create-limits": ("guest_pyrunc_cgroups", "test_pyrunc_create"),
    "pyrunc-run-limits": ("guest_pyrunc_cgroups", "test_pyrunc_run"),
    "pyrunc-devices-ebpf": ("guest_pyrunc_ops", "test_device_filter"),
    "pyrunc-ps": ("guest_pyrunc_ops", "test_running_container"),
    "pyrunc-events-stats": ("guest_pyrunc_ops", "test_running_container"),
    "pyrunc-update": ("guest_pyrunc_ops", "test_running_container"),
    "pyrunc-update-devices": ("guest_pyrunc_ops", "test_running_container"),
    "pyrunc-pause-resume": ("guest_pyrunc_ops", "test_running_container"),
    "pyrunc-kill-paused": ("guest_pyrunc_ops", "test_running_container"),
    "pyrunc-kill-all": ("guest_pyrunc_ops", "test_kill_all"),
    "pyrunc-2mib-cgroupns": ("guest_pyrunc_ops", "test_2mib_container"),
    "pyrunc-2mib-plain": ("guest_pyrunc_ops", "test_2mib_container"),
    "pyrunc-io-max": ("guest_pyrunc_ops", "test_io_max"),
    "pyrunc-no-cgroupns-view": ("guest_pyrunc_ops", "test_no_cgroupns_mount"),
    "pyrunc-events-oom": ("guest_events", "test_oom_kill_reported"),
    "pyrunc-events-interval": ("guest_events", "test_interval_stream"),
    "pyrunc-systemd-scope": ("guest_systemd_pyrunc", "test_container_is_a_scope"),
    "pyrunc-systemd-failed-create": ("guest_systemd_pyrunc", "test_a_create_that_fails"),
}


@pytest.mark.parametrize("check", list(PYRUNC_CHECKS))
def test_pyrunc_on_v2(guest, check):
    if f"V2VM-CHECK {check} ok" in guest.output:
        return
    file, test = PYRUNC_CHECKS[check]
    failed = re.search(rf"^(FAILED|ERROR) \S*{test}\S*.*$", guest.output, re.M)
    assert not failed, f"{check} failed in the guest:\n{_tail(guest, 120)}"
    # pytest -rs lists skips by line, not by name: only the guest's own pyrunc test files may skip.
    skips = re.findall(rf"^SKIPPED \[\d+\] \S*{file}\.py:\d+: (.*)$", guest.output, re.M)
    if skips:
        pytest.skip(f"skipped in the guest: {'; '.join(sorted(set(skips)))}")
    # a known bug the guest marks xfail (pytest -rx lists it by name, with the reason)
    known = re.search(rf"^XFAIL \S*{file}\.py::{test}\S*(?: - (.*))?$", guest.output, re.M)
    if known:
        pytest.xfail(f"known bug, xfail in the guest: {known.group(1) or ''}")
    pytest.fail(f"{check} neither passed nor was skipped in the guest:\n{_tail(guest, 120)}")


def test_guest_systemd_harness(guest):
    """A real systemd runs in the guest, for the systemd cgroup driver's guest tests
    (guest_systemd_smoke.py); it skips there only when the host building the image has none."""
    if "V2VM-CHECK systemd-harness ok" in guest.output:
        return
    failed = re.search(r"^(FAILED|ERROR) \S*guest_systemd_smoke\S*.*$", guest.output, re.M)
    assert not failed, f"systemd did not run in the guest:\n{_tail(guest, 120)}"
    skips = re.findall(r"^SKIPPED \[\d+\] \S*guest_systemd_smoke\.py:\d+: (.*)$", guest.output,
                       re.M)
    if skips:
        pytest.skip(f"skipped in the guest: {'; '.join(sorted(set(skips)))}")
    pytest.fail(f"the systemd smoke test neither passed nor was skipped:\n{_tail(guest, 120)}")


def test_guest_exit_status_is_zero(guest):
    assert guest.exit_code == 0, f"guest tests failed (exit {guest.exit_code}):\n{_tail(guest, 150)}"
