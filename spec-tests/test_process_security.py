"""config.md "Process" privileges, checked from inside the container: the five capability sets,
noNewPrivileges, user (uid, gid, additionalGids, umask) and LSM labels on a host without an LSM."""
from __future__ import annotations

import pytest


def run(runtime, bundle, script: str) -> str:
    bundle.set_args("sh", "-c", script)
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 0, p.stderr
    return p.stdout


def status(out: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def bits(*numbers: int) -> str:
    return f"{sum(1 << n for n in numbers):016x}"


KILL, CHOWN, NET_RAW, NET_BIND = 5, 0, 13, 10


@pytest.mark.parametrize("nnp", [True, False])
def test_root_process_capabilities(runtime, bundle, nnp):
    """uid 0 without securebits: execve makes permitted and effective the bounding set plus the
    inheritable one, cut back to the old permitted set under no_new_privs; runc 1.1.5 shows the
    same five masks for this config."""
    bundle.config["process"]["noNewPrivileges"] = nnp
    bundle.config["process"]["capabilities"] = {
        "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"], "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"], "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}
    st = status(run(runtime, bundle, "cat /proc/self/status"))
    assert st["CapBnd"] == bits(KILL, CHOWN, NET_RAW)
    assert st["CapInh"] == bits(KILL)
    assert st["CapAmb"] == bits(KILL)
    want = bits(KILL, CHOWN) if nnp else bits(KILL, CHOWN, NET_RAW)
    assert st["CapPrm"] == st["CapEff"] == want


def test_non_root_gets_exactly_its_ambient_caps(runtime, bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.config["process"]["capabilities"] = {
        "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]}  # CHOWN is not inheritable: skipped
    st = status(run(runtime, bundle, "cat /proc/self/status"))
    assert st["CapBnd"] == bits(KILL, CHOWN, NET_BIND)
    assert st["CapInh"] == bits(KILL, NET_BIND)
    assert st["CapAmb"] == st["CapPrm"] == st["CapEff"] == bits(NET_BIND)


def test_no_capabilities_field_keeps_root_caps(runtime, bundle):
    del bundle.config["process"]["capabilities"]
    st = status(run(runtime, bundle, "cat /proc/self/status"))
    with open("/proc/self/status") as f:
        host = status(f.read())
    assert st["CapBnd"] == host["CapBnd"]


def test_empty_capabilities_drop_everything(runtime, bundle):
    bundle.config["process"]["capabilities"] = {}
    st = status(run(runtime, bundle, "cat /proc/self/status"))
    assert st["CapBnd"] == st["CapPrm"] == st["CapEff"] == st["CapInh"] == st["CapAmb"] == bits()


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(runtime, bundle, nnp):
    bundle.config["process"]["noNewPrivileges"] = nnp
    st = status(run(runtime, bundle, "cat /proc/self/status"))
    assert st["NoNewPrivs"] == ("1" if nnp else "0")


def test_user_groups_and_umask(runtime, bundle):
    bundle.config["process"]["user"] = {"uid": 1234, "gid": 2345, "additionalGids": [7, 3000],
                                        "umask": 0o077, "username": "ignored-on-linux"}
    out = run(runtime, bundle, "id -u; id -g; id -G; umask; grep -E '^(Uid|Gid|Groups)' /proc/self/status")
    lines = out.splitlines()
    assert lines[:2] == ["1234", "2345"]
    assert sorted(lines[2].split()) == ["2345", "3000", "7"]
    assert lines[3] == "0077"
    st = status("\n".join(lines[4:]))
    assert st["Uid"].split() == ["1234"] * 4 and st["Gid"].split() == ["2345"] * 4
    assert st["Groups"].split() == ["7", "3000"]


def test_default_umask_is_0022(runtime, bundle):
    assert run(runtime, bundle, "umask").strip() == "0022"


def test_files_created_by_the_user(runtime, bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000, "umask": 0o027}
    run(runtime, bundle, "touch /tmp/made")
    st = (bundle.rootfs / "tmp" / "made").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o640)


@pytest.mark.parametrize("field,value", [("apparmorProfile", "some-profile"), ("selinuxLabel", "system_u:system_r:container_t:s0")])
def test_lsm_label_without_the_lsm_is_a_clear_error(runtime, bundle, field, value):
    bundle.config["process"][field] = value
    bundle.write()
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 1
    assert "not enabled on this host" in p.stderr and "Traceback" not in p.stderr
