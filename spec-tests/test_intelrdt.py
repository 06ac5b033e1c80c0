"""config-linux.md "IntelRdt". This host has no resctrl filesystem (no Intel RDT hardware in the
VM), so the group handling is tested against a fake resctrl tree (a MOCK of the kernel's files:
plain files stand in for schemata and tasks); on the real host, a container asking for intelRdt
gets one clear error and leaves nothing behind."""
from __future__ import annotations

import os

import pytest

from pyrunc import intelrdt
from pyrunc.errors import PyruncError


def test_group_named_after_the_container_gets_schemata_and_pid(tmp_path):
    rec = intelrdt.apply({"l3CacheSchema": "L3:0=ff", "memBwSchema": "MB:0=50",
                          "schemata": ["L2:0=f"]}, "ctr", 4242, root=str(tmp_path))
    group = tmp_path / "ctr"
    # the fake schemata file keeps only the last write; the kernel applies each line as it comes
    assert (group / "schemata").read_text() == "L2:0=f\n"
    assert (group / "tasks").read_text() == "4242"
    assert rec == {"made": [str(group)]}
    for f in group.iterdir():  # the real resctrl lets rmdir take a group with its files; a fake dir cannot
        f.unlink()
    intelrdt.remove(rec)
    assert not group.exists()


def test_closid_group_is_shared_and_kept(tmp_path):
    (tmp_path / "gold" / "mon_groups").mkdir(parents=True)  # the kernel makes mon_groups itself
    rec = intelrdt.apply({"closID": "gold", "enableMonitoring": True}, "ctr", 7, root=str(tmp_path))
    assert (tmp_path / "gold" / "tasks").read_text() == "7"
    assert (tmp_path / "gold" / "mon_groups" / "ctr" / "tasks").read_text() == "7"
    assert rec == {"made": [str(tmp_path / "gold" / "mon_groups" / "ctr")]}
    (tmp_path / "gold" / "mon_groups" / "ctr" / "tasks").unlink()  # as above: the fake needs emptying
    intelrdt.remove(rec)
    assert (tmp_path / "gold").is_dir() and not (tmp_path / "gold" / "mon_groups" / "ctr").exists()


def test_existing_group_for_a_new_container_is_refused(tmp_path):
    (tmp_path / "ctr").mkdir()
    with pytest.raises(PyruncError, match="already exists"):
        intelrdt.apply({"l3CacheSchema": "L3:0=f"}, "ctr", 1, root=str(tmp_path))


def test_without_resctrl_a_container_gets_a_clear_error(runtime, bundle):
    if intelrdt.mountpoint():
        pytest.skip("this host has resctrl")
    bundle.config["linux"]["intelRdt"] = {"l3CacheSchema": "L3:0=ff"}
    bundle.write()
    cid = runtime.new_id()
    p = runtime("create", "--bundle", str(bundle.path), cid)
    assert p.returncode == 1 and "resctrl" in p.stderr and "Traceback" not in p.stderr
    assert not (runtime.root / cid).exists()
