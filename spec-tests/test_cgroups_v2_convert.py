"""runc's v1 -> v2 conversions, and `apply` writing them into a cgroup2 directory.

MOCK: the hosts here are hybrid (v1 controllers + a cgroup2 mount with only hugetlb), so the
full v2 controller set cannot be exercised on this kernel; `apply` is checked against a FAKE v2 tree
(plain files in tmp_path). The real pure-v2 run is in the qemu VM harness (spec-tests/v2vm/).
"""
from __future__ import annotations

import pytest

from pyrunc.cgroups import v2
from pyrunc.errors import PyruncError


@pytest.mark.parametrize("shares,weight", [(0, 0), (2, 1), (1024, 39), (262144, 10000), (512, 20)])
def test_cpu_weight_from_shares(shares, weight):
    assert v2.cpu_weight(shares) == weight  # 1 + ((shares - 2) * 9999) / 262142


@pytest.mark.parametrize("blkio,io", [(0, 0), (10, 1), (1000, 10000), (500, 4950)])
def test_io_weight_from_blkio_weight(blkio, io):
    assert v2.io_weight(blkio) == io  # 1 + (weight - 10) * 9999 / 990


def test_swap_max_is_memsw_minus_limit():
    assert v2.swap_max(300, 100) == 200
    assert v2.swap_max(100, 100) == 0
    assert v2.swap_max(-1, 100) == -1
    assert v2.swap_max(0, 100) == 0
    assert v2.swap_max(0, -1) == -1  # both unlimited
    with pytest.raises(PyruncError, match="without memory limit"):
        v2.swap_max(300, 0)
    with pytest.raises(PyruncError, match=">= memory limit"):
        v2.swap_max(50, 100)


def test_convert_every_field():
    r = {
        "memory": {"limit": 100 << 20, "swap": 300 << 20, "reservation": 50 << 20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0",
                "idle": 1, "burst": 1000},
        "pids": {"limit": 42},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 7}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
        "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
        "unified": {"memory.high": "80000000"},
    }
    got = v2.convert(r)
    assert ("memory.max", str(100 << 20)) in got
    assert ("memory.swap.max", str(200 << 20)) in got
    assert ("memory.low", str(50 << 20)) in got
    assert ("cpu.weight", "39") in got
    assert ("cpu.max", "50000 100000") in got
    assert ("cpu.max.burst", "1000") in got
    assert ("cpu.idle", "1") in got
    assert ("cpuset.cpus", "0-1") in got and ("cpuset.mems", "0") in got
    assert ("pids.max", "42") in got
    assert ("io.weight", "4950") in got
    assert ("io.max", "8:0 rbps=1000") in got and ("io.max", "8:0 wiops=7") in got
    assert ("hugetlb.2MB.max", str(4 << 20)) in got
    assert ("rdma.max", "mlx5_1 hca_handle=3 hca_object=10000") in got
    assert got[-1] == ("memory.high", "80000000")  # unified last, verbatim


def test_convert_unlimited_and_quota_only():
    got = dict(v2.convert({"memory": {"limit": -1}, "cpu": {"quota": -1, "period": 50000},
                           "pids": {"limit": -1}}))
    assert got["memory.max"] == "max" and got["memory.swap.max"] == "max"
    assert got["cpu.max"] == "max 50000"
    assert got["pids.max"] == "max"


def test_convert_bfq_weight():
    assert ("io.bfq.weight", "500") in v2.convert({"blockIO": {"weight": 500}}, has_bfq=True)


def test_v2_refuses_what_it_cannot_do():
    with pytest.raises(PyruncError, match="realtime"):
        v2.convert({"cpu": {"realtimeRuntime": 1000}})
    with pytest.raises(PyruncError, match="network"):
        v2.convert({"network": {"classID": 1}})
    with pytest.raises(PyruncError, match="invalid key"):
        v2.convert({"unified": {"../x": "1"}})


def _fake_v2(d, files):
    for f in files:
        (d / f).write_text("")
    return d


def test_apply_to_fake_v2_tree(tmp_path):
    """MOCK cgroup2 directory: plain files stand in for the kernel's."""
    d = _fake_v2(tmp_path, ["memory.max", "memory.swap.max", "cpu.weight", "cpu.max", "pids.max"])
    v2.apply(str(d), {"memory": {"limit": 1 << 20, "swap": 3 << 20},
                      "cpu": {"shares": 2, "quota": 1000, "period": 10000}, "pids": {"limit": 9}})
    assert (d / "memory.max").read_text() == str(1 << 20)
    assert (d / "memory.swap.max").read_text() == str(2 << 20)
    assert (d / "cpu.weight").read_text() == "1"
    assert (d / "cpu.max").read_text() == "1000 10000"
    assert (d / "pids.max").read_text() == "9"


def test_apply_missing_controller_is_a_clear_error(tmp_path):
    """MOCK cgroup2 directory without the pids controller's files."""
    d = _fake_v2(tmp_path, ["memory.max"])
    v2.apply(str(d), {"memory": {"limit": 4096}})  # unset pids: skipped, no error
    with pytest.raises(PyruncError, match="pids.max"):
        v2.apply(str(d), {"pids": {"limit": 5}})
