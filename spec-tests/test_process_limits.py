"""config.md "Process" limits and scheduling and config-linux.md personality, sysctl and memory
policy, checked from inside the container."""
from __future__ import annotations

import resource

import pytest


def run(runtime, bundle, script: str) -> str:
    bundle.set_args("sh", "-c", script)
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 0, p.stderr
    return p.stdout


def fails(runtime, bundle) -> str:
    bundle.write()
    p = runtime("run", "--bundle", str(bundle.path), runtime.new_id())
    assert p.returncode == 1, p.stdout
    assert "Traceback" not in p.stderr
    return p.stderr


def limits(out: str) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in out.splitlines()[1:]:
        name = line[:26].strip()
        rest = line[26:].split()
        rows[name] = (rest[0], rest[1])
    return rows


def test_rlimits_within_the_hard_limit(runtime, bundle):
    nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    bundle.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": min(nofile_hard, 200)},
        {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
        {"type": "RLIMIT_FSIZE", "soft": 1 << 20, "hard": 1 << 21},
        {"type": "RLIMIT_STACK", "soft": 1 << 22, "hard": 2**64 - 1},
    ]
    rows = limits(run(runtime, bundle, "cat /proc/self/limits"))
    assert rows["Max open files"] == ("100", str(min(nofile_hard, 200)))
    assert rows["Max core file size"] == ("4096", "8192")
    assert rows["Max file size"] == (str(1 << 20), str(1 << 21))
    assert rows["Max stack size"] == (str(1 << 22), "unlimited")


def test_rlimit_above_the_hard_limit_is_a_clear_error(runtime, bundle):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard + 1}]
    err = fails(runtime, bundle)
    assert "RLIMIT_NOFILE" in err and "CAP_SYS_RESOURCE" in err


def test_oom_score_adj(runtime, bundle):
    bundle.config["process"]["oomScoreAdj"] = 345
    assert run(runtime, bundle, "cat /proc/self/oom_score_adj").strip() == "345"


@pytest.mark.parametrize("cls,prio,want", [("IOPRIO_CLASS_BE", 6, "best-effort: prio 6"),
                                           ("IOPRIO_CLASS_IDLE", 0, "idle"),
                                           ("IOPRIO_CLASS_RT", 2, "realtime: prio 2")])
def test_io_priority(runtime, bundle, cls, prio, want):
    bundle.config["process"]["ioPriority"] = {"class": cls, "priority": prio}
    assert run(runtime, bundle, "ionice -p $$").strip() == want


def stat_fields(out: str) -> tuple[int, int, int]:
    """(nice, rt_priority, policy) from /proc/self/stat."""
    f = out.rsplit(")", 1)[1].split()
    return int(f[16]), int(f[37]), int(f[38])


def test_scheduler_batch_with_nice(runtime, bundle):
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    assert stat_fields(run(runtime, bundle, "cat /proc/self/stat")) == (7, 0, 3)


def test_scheduler_idle(runtime, bundle):
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_IDLE"}
    assert stat_fields(run(runtime, bundle, "cat /proc/self/stat"))[2] == 5


def test_scheduler_fifo_with_reset_on_fork(runtime, bundle):
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10,
                                             "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    # cgroup v1 real-time group scheduling: the container's cgroup needs a budget of its own
    bundle.config["linux"].setdefault("resources", {})["cpu"] = {"realtimeRuntime": 10000,
                                                                  "realtimePeriod": 1000000}
    out = run(runtime, bundle, "exec cat /proc/self/stat; ")
    assert stat_fields(out)[1:] == (10, 1)
    # reset-on-fork: a child of the program (the shell forks for a command that is not its
    # last) is back to SCHED_OTHER
    out = run(runtime, bundle, "cat /proc/self/stat; true")
    assert stat_fields(out)[1:] == (0, 0)


def test_scheduler_fifo_without_rt_budget_is_a_clear_error(runtime, bundle):
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10}
    err = fails(runtime, bundle)
    assert "SCHED_FIFO" in err


def test_personality_linux32(runtime, bundle):
    bundle.config["linux"]["personality"] = {"domain": "LINUX32"}
    assert run(runtime, bundle, "uname -m").strip() in ("i686", "armv8l", "ppc", "s390")


def test_personality_linux_and_addr_no_randomize(runtime, bundle):
    bundle.config["linux"]["personality"] = {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}
    out = run(runtime, bundle, "uname -m; cat /proc/self/personality")
    machine, persona = out.split()
    assert machine == "x86_64" or machine != "i686"
    assert int(persona, 16) == 0x0040000


def test_sysctl_in_own_namespaces(runtime, bundle):
    bundle.config["linux"]["sysctl"] = {"kernel.shmmni": "1234", "net.ipv4.ip_forward": "1",
                                        "fs.mqueue.msg_max": "33", "kernel.domainname": "example.org"}
    out = run(runtime, bundle, "cat /proc/sys/kernel/shmmni /proc/sys/net/ipv4/ip_forward "
                               "/proc/sys/fs/mqueue/msg_max /proc/sys/kernel/domainname")
    assert out.split() == ["1234", "1", "33", "example.org"]
    with open("/proc/sys/kernel/shmmni") as f:
        assert f.read().strip() != "1234"


@pytest.mark.parametrize("key,ns", [("net.ipv4.ip_forward", "network"), ("kernel.shmmni", "ipc"),
                                    ("kernel.pid_max", None)])
def test_sysctl_of_a_shared_namespace_is_refused(runtime, bundle, key, ns):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != ns]
    bundle.config["linux"]["sysctl"] = {key: "1"}
    assert key in fails(runtime, bundle)


def test_memory_policy_bind(runtime, bundle):
    bundle.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0"}
    out = run(runtime, bundle, "cat /proc/self/numa_maps")
    assert "bind:0" in out


def test_memory_policy_interleave_static(runtime, bundle):
    bundle.config["linux"]["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0",
                                              "flags": ["MPOL_F_STATIC_NODES"]}
    out = run(runtime, bundle, "cat /proc/self/numa_maps")
    assert "interleave=static:0" in out


def test_memory_policy_unknown_node_is_a_clear_error(runtime, bundle):
    bundle.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "63"}
    assert "memory policy" in fails(runtime, bundle)
