"""The six hook kinds of config.md "POSIX-platform Hooks": each gets the container state on stdin.

Which side runs a kind (runtime.md): prestart and createRuntime run in the runtime's namespaces
during create; createContainer in the container's mount namespace before pivot_root;
startContainer in the container just before the user's program; poststart in `start`; poststop in
`delete`. Only this module knows how to run one.
"""
from __future__ import annotations

from pyrunc import jsonfast as json

from pyrunc.errors import PyruncError

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def of(config: dict, kind: str) -> list[dict]:
    return (config.get("hooks") or {}).get(kind) or []


def run(config: dict, kind: str, oci_state: dict) -> None:
    """Run every hook of `kind` in order; the first failure stops the rest and is raised."""
    hooks = of(config, kind)
    if not hooks:
        return
    import subprocess

    payload = json.dumps(oci_state).encode()
    for hook in hooks:
        path = hook["path"]
        argv = hook.get("args") or [path]
        env = dict(e.split("=", 1) for e in hook.get("env") or [] if "=" in e)
        timeout = hook.get("timeout")
        try:
            proc = subprocess.run(argv, executable=path, input=payload, env=env, timeout=timeout,
                                  capture_output=True)
        except subprocess.TimeoutExpired:
            raise PyruncError(f"{kind} hook {path} timed out after {timeout}s") from None
        except OSError as e:
            raise PyruncError(f"{kind} hook {path}: {e.strerror}") from None
        if proc.returncode != 0:
            detail = proc.stderr.decode(errors="replace").strip().splitlines()
            why = f": {detail[-1]}" if detail else ""
            raise PyruncError(f"{kind} hook {path} exited with status {proc.returncode}{why}")
