"""argv -> one command function. Nothing else lives here.

runc's contract: global flags come before the command, the command's flags before its positional
arguments. A command's module is imported only when that command runs, so `state` or `kill` never
pay for what `create` needs.
"""
from __future__ import annotations

import os
import sys

STR, INT, BOOL, LIST = "str", "int", "bool", "list"  # LIST: a repeatable string flag

GLOBAL_FLAGS: dict[str, str] = {
    "--root": STR, "--log": STR, "--log-format": STR, "--debug": BOOL,
    "--systemd-cgroup": BOOL, "--rootless": STR, "--criu": STR,
}
GLOBAL_ALIASES = {"-v": "--version", "-h": "--help"}

_CREATE_FLAGS = {
    "--bundle": STR, "-b": "--bundle", "--pid-file": STR, "--console-socket": STR,
    "--no-pivot": BOOL, "--no-new-keyring": BOOL, "--preserve-fds": INT, "--pidfd-socket": STR,
}

# name -> (module, flags, positional usage). A flag mapping to a string is an alias of that flag.
COMMANDS: dict[str, tuple[str, dict[str, str], str]] = {
    "spec": ("pyrunc.lifecycle.spec_cmd", {"--bundle": STR, "-b": "--bundle", "--rootless": BOOL}, ""),
    "create": ("pyrunc.lifecycle.create", _CREATE_FLAGS, "<container-id>"),
    "run": ("pyrunc.lifecycle.run", {**_CREATE_FLAGS, "--detach": BOOL, "-d": "--detach",
                                      "--keep": BOOL}, "<container-id>"),
    "start": ("pyrunc.lifecycle.start", {}, "<container-id>"),
    "state": ("pyrunc.lifecycle.state_cmd", {}, "<container-id>"),
    "kill": ("pyrunc.lifecycle.kill", {"--all": BOOL, "-a": "--all"}, "<container-id> [signal]"),
    "delete": ("pyrunc.lifecycle.delete", {"--force": BOOL, "-f": "--force"}, "<container-id>"),
    "list": ("pyrunc.lifecycle.list_cmd", {"--format": STR, "-f": "--format", "--quiet": BOOL,
                                           "-q": "--quiet"}, ""),
    "validate": ("pyrunc.lifecycle.validate_cmd", {"--bundle": STR, "-b": "--bundle"}, ""),
    "features": ("pyrunc.lifecycle.features_cmd", {}, ""),
    "update": ("pyrunc.lifecycle.update", {
        "--resources": STR, "-r": "--resources", "--blkio-weight": STR, "--cpu-period": STR,
        "--cpu-quota": STR, "--cpu-share": STR, "--cpu-rt-period": STR, "--cpu-rt-runtime": STR,
        "--cpuset-cpus": STR, "--cpuset-mems": STR, "--memory": STR, "--memory-reservation": STR,
        "--memory-swap": STR, "--pids-limit": STR, "--kernel-memory": STR,
        "--kernel-memory-tcp": STR, "--l3-cache-schema": STR, "--mem-bw-schema": STR,
    }, "<container-id>"),
    "pause": ("pyrunc.lifecycle.pause:main_pause", {}, "<container-id>"),
    "resume": ("pyrunc.lifecycle.pause:main_resume", {}, "<container-id>"),
    "events": ("pyrunc.lifecycle.events", {"--interval": STR, "--stats": BOOL}, "<container-id>"),
    "ps": ("pyrunc.lifecycle.ps", {"--format": STR, "-f": "--format"}, "<container-id> [ps options]"),
    "exec": ("pyrunc.lifecycle.exec_cmd", {
        "--console-socket": STR, "--cwd": STR, "--env": LIST, "-e": "--env", "--tty": BOOL,
        "-t": "--tty", "--user": STR, "-u": "--user", "--additional-gids": LIST, "-g": "--additional-gids",
        "--process": STR, "-p": "--process", "--detach": BOOL, "-d": "--detach", "--pid-file": STR,
        "--process-label": STR, "--apparmor": STR, "--no-new-privs": BOOL, "--cap": LIST, "-c": "--cap",
        "--preserve-fds": INT, "--cgroup": LIST, "--ignore-paused": BOOL,
    }, "<container-id> <command> [args...]"),
}


class UsageError(Exception):
    """Bad command line: one line on stderr, exit 1."""


class Globals:
    """The global flags. A plain class: importing dataclasses costs more than the whole `state`."""

    def __init__(self) -> None:
        self.root = "/run/pyrunc"
        self.log: str | None = None
        self.log_format = "text"
        self.debug = False
        self.systemd_cgroup = False
        self.rootless = "auto"
        self.extra: dict = {}

    def is_rootless(self) -> bool:
        """runc's rule: `--rootless true|false` decides; `auto` means rootless when not root, or
        when root only inside a user namespace (rootless podman runs its runtime so). A rootless
        runtime may lack cgroups it cannot write, and keeps its state under $XDG_RUNTIME_DIR."""
        if self.rootless in ("true", "false"):
            return self.rootless == "true"
        return os.geteuid() != 0 or in_user_namespace()


def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the initial one, whose uid_map
    is the identity over all 2^32-1 ids."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def _default_root(g: Globals) -> str:
    """runc's choice: $XDG_RUNTIME_DIR/<name> when not root, or when in a user namespace as a
    user other than root; /run/<name> otherwise."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and (os.geteuid() != 0 or
                (in_user_namespace() and os.environ.get("USER", "root") not in ("", "root"))):
        return os.path.join(xdg, "pyrunc")
    return g.root


def _parse_flags(argv: list[str], spec: dict[str, str], stop_at_positional: bool
                 ) -> tuple[dict[str, object], list[str]]:
    """Parse `--flag value`, `--flag=value` and bool flags (`--flag`, `--flag=false`)."""
    values: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return values, argv[i + 1:]
        if not arg.startswith("-") or arg == "-":
            if stop_at_positional:
                return values, argv[i:]
            break
        name, eq, inline = arg.partition("=")
        if not name.startswith("--") and len(name) > 2:
            name = "-" + name  # urfave/cli, and so runc, accepts -bundle for --bundle
        kind = spec.get(name)
        if kind is None:
            raise UsageError(f"flag provided but not defined: {arg.split('=')[0]}")
        if kind not in (STR, INT, BOOL, LIST):  # alias
            name, kind = kind, spec[kind]
        key = name.lstrip("-").replace("-", "_")
        if kind == BOOL:
            if eq:
                if inline.lower() not in ("true", "false", "1", "0"):
                    raise UsageError(f"invalid boolean value {inline!r} for flag {name}")
                values[key] = inline.lower() in ("true", "1")
            else:
                values[key] = True
            i += 1
            continue
        if eq:
            raw = inline
            i += 1
        else:
            if i + 1 >= len(argv):
                raise UsageError(f"flag needs an argument: {name}")
            raw = argv[i + 1]
            i += 2
        if kind == INT:
            try:
                values[key] = int(raw)
            except ValueError:
                raise UsageError(f"invalid value {raw!r} for flag {name}: not a number") from None
        elif kind == LIST:
            values.setdefault(key, []).append(raw)
        else:
            values[key] = raw
    return values, argv[i:]


def _usage() -> str:
    names = ", ".join(sorted(COMMANDS))
    return (f"usage: pyrunc [--root DIR] [--log FILE] [--log-format text|json] [--debug] "
            f"COMMAND [flags] [args]\ncommands: {names}\n")


def _version() -> str:
    from pyrunc import SPEC_VERSION, __version__
    return f"pyrunc version {__version__}\ncommit: {_commit()}\nspec: {SPEC_VERSION}\n"


def _commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        with open(os.path.join(here, "COMMIT")) as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    g = Globals()
    try:
        gflags, rest = _parse_flags([GLOBAL_ALIASES.get(a, a) for a in argv],
                                    {**GLOBAL_FLAGS, "--version": BOOL, "--help": BOOL},
                                    stop_at_positional=True)
        for k, v in gflags.items():
            setattr(g, k, v) if hasattr(g, k) else g.extra.__setitem__(k, v)
        if "root" not in gflags:
            g.root = _default_root(g)
        if g.rootless not in ("true", "false", "auto"):
            raise UsageError(f"invalid value {g.rootless!r} for flag --rootless (want true, false or auto)")
        if g.debug:
            os.environ["PYRUNC_DEBUG"] = "1"  # the container-side stages report tracebacks too
        if g.log_format not in ("text", "json"):
            raise UsageError(f"unknown log-format {g.log_format!r} (want text or json)")
        if gflags.get("version"):
            sys.stdout.write(_version())
            return 0
        if not rest or gflags.get("help") or rest[0] == "help":
            sys.stdout.write(_usage())
            return 0 if (gflags.get("help") or rest) else 1
        cmd, rest = rest[0], rest[1:]
        if cmd not in COMMANDS:
            raise UsageError(f"no such command: {cmd!r} (try: {', '.join(sorted(COMMANDS))})")
        modname, spec, positional = COMMANDS[cmd]
        if "-h" in rest or "--help" in rest:
            sys.stdout.write(f"usage: pyrunc {cmd} [flags] {positional}\nflags: "
                             f"{' '.join(k for k, v in spec.items() if v in (STR, INT, BOOL, LIST))}\n")
            return 0
        flags, args = _parse_flags(rest, spec, stop_at_positional=False)
        if "<container-id>" in positional and not args:
            raise UsageError(f"{cmd}: missing container id (usage: pyrunc {cmd} {positional})")
        modname, _, func = modname.partition(":")
        # __import__ with a fromlist returns the module itself; `importlib` would cost a
        # millisecond (it imports `warnings`) on every command
        module = __import__(modname, fromlist=["main"])
        return getattr(module, func or "main")(g, flags, args)
    except UsageError as e:
        return _fail(g, str(e))
    except KeyboardInterrupt:
        return 130
    except BaseException as e:  # noqa: BLE001 - every failure becomes one line unless --debug
        if isinstance(e, SystemExit):
            raise
        from pyrunc.errors import PyruncError
        if g.debug:
            import traceback
            traceback.print_exc()
        if isinstance(e, PyruncError):
            return _fail(g, str(e))
        if isinstance(e, OSError):
            return _fail(g, _describe_oserror(e))
        return _fail(g, f"internal error: {type(e).__name__}: {e}")


def _describe_oserror(e: OSError) -> str:
    text = e.strerror or str(e)
    if e.filename:
        return f"{text}: {e.filename}"
    return text


def _fail(g: Globals, msg: str) -> int:
    msg = " ".join(msg.split("\n"))
    sys.stderr.write(f"pyrunc: {msg}\n")
    if g.log:
        from pyrunc.logging import log_error
        log_error(g, msg)
    return 1
