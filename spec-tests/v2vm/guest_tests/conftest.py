"""Guest-side leak check: after every guest test, no cgroup made during it may be left (pyrunc's,
runc's or the test's own), and no container may be left in pyrunc's state root."""
from __future__ import annotations

import os

import pytest

ROOT = "/sys/fs/cgroup"
STATE_ROOT = "/run/pyrunc-v2vm"


def _cgroups() -> set[str]:
    out = set()
    for top in os.scandir(ROOT):
        if top.is_dir(follow_symlinks=False):
            out.add(top.path)
            for sub in os.scandir(top.path):
                if sub.is_dir(follow_symlinks=False):
                    out.add(sub.path)
    return out


@pytest.fixture(scope="session")
def _baseline() -> set[str]:
    return _cgroups()


@pytest.fixture(autouse=True)
def no_cgroup_left(_baseline):
    yield
    left = sorted(_cgroups() - _baseline)
    assert not left, f"cgroup directories left after the test: {left}"
    states = os.listdir(STATE_ROOT) if os.path.isdir(STATE_ROOT) else []
    assert not states, f"containers left in {STATE_ROOT}: {states}"
