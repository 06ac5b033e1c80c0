"""The library surface: what the CLI does, callable from Python without a subprocess.

    from pyrunc.api import Container
    c = Container.create("web", bundle="/srv/bundle", root="/run/pyrunc")
    c.start(); print(c.state()["status"]); c.kill("TERM"); c.delete(force=True)

Each method imports its operation's module when called, so importing this module costs nothing.
Failures raise pyrunc.errors.PyruncError (or OSError from the kernel).
"""
from __future__ import annotations

import signal as _signal
from dataclasses import dataclass

from pyrunc.errors import PyruncError

DEFAULT_ROOT = "/run/pyrunc"

__all__ = ["Container", "PyruncError", "list_containers", "DEFAULT_ROOT"]


@dataclass(frozen=True)
class Container:
    id: str
    root: str = DEFAULT_ROOT

    @classmethod
    def create(cls, container_id: str, bundle: str, root: str = DEFAULT_ROOT, **opts) -> "Container":
        """opts: pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds, systemd_cgroup,
        rootless (a runtime without permission for some cgroups runs without them, as runc)."""
        from pyrunc.lifecycle.create import create
        create(root, container_id, bundle, **opts)
        return cls(container_id, root)

    @classmethod
    def run(cls, container_id: str, bundle: str, root: str = DEFAULT_ROOT, **opts) -> int:
        """Foreground unless detach=True; returns the exit code (0 when detached)."""
        from pyrunc.lifecycle.run import run
        return run(root, container_id, bundle, **opts)

    def start(self) -> None:
        from pyrunc.lifecycle.start import start
        start(self.root, self.id)

    def state(self) -> dict:
        from pyrunc.lifecycle.state_cmd import query
        return query(self.root, self.id)

    def kill(self, sig: int | str = _signal.SIGTERM, all_processes: bool = False) -> None:
        from pyrunc.lifecycle.kill import kill, parse_signal
        kill(self.root, self.id, parse_signal(sig) if isinstance(sig, str) else int(sig), all_processes)

    def exec(self, args: list[str] | None = None, process: dict | None = None, **opts) -> int:
        """Run a new process in the container: `args` over the config's process, with opts cwd,
        env (list), tty, user ("uid[:gid]"), additional_gids, apparmor, process_label, cap,
        no_new_privs as the CLI flags; or a whole runtime-spec `process`. Runner opts: detach,
        console_socket, pid_file, preserve_fds, cgroup (list), ignore_paused. Returns the exit
        code (0 when detached)."""
        from pyrunc import state
        from pyrunc.lifecycle.exec_cmd import exec_process, process_from_flags
        runner = {k: opts.pop(k) for k in ("detach", "console_socket", "pid_file", "preserve_fds",
                                           "cgroup", "ignore_paused") if k in opts}
        if process is None:
            if not args:
                raise PyruncError("exec needs args or a process")
            config_process = (state.read(self.root, self.id).get("config") or {}).get("process") or {}
            process = process_from_flags(config_process, opts, list(args))
        elif args or opts:
            raise PyruncError("exec takes either args (with flags) or a whole process, not both")
        return exec_process(self.root, self.id, process, **runner)

    def delete(self, force: bool = False) -> None:
        from pyrunc.lifecycle.delete import delete
        delete(self.root, self.id, force)


def list_containers(root: str = DEFAULT_ROOT) -> list[dict]:
    from pyrunc.lifecycle.list_cmd import entries
    return entries(root)
