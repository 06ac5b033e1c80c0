"""Device rules with runc's semantics, for the v1 devices files and the v2 eBPF program.

runc appends its always-allowed devices after the user's rules (so a user rule cannot take them
away), and the spec's linux.devices are allowed rwm. Rules are then read in order the way the v1
kernel controller reads them: an `a` rule resets everything to allow-all or deny-all, and every
other rule is an exception to that default.
"""
from __future__ import annotations


WILD = -1


class Rule:
    """One device rule. A plain class: dataclasses costs ~7 ms to import, on every `create`."""

    __slots__ = ("allow", "type", "major", "minor", "access")

    def __init__(self, allow: bool, type: str, major: int, minor: int, access: str) -> None:
        self.allow = allow
        self.type = type      # 'a', 'c' or 'b'
        self.major = major    # -1 = any
        self.minor = minor
        self.access = access  # subset of "rwm"

    def _t(self) -> tuple:
        return (self.allow, self.type, self.major, self.minor, self.access)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._t() == other._t()

    def __hash__(self) -> int:
        return hash(self._t())

    def __repr__(self) -> str:
        return f"Rule{self._t()!r}"

    def v1_line(self) -> str:
        if self.type == "a" and self.major == WILD and self.minor == WILD:
            return "a"
        maj = "*" if self.major == WILD else str(self.major)
        mnr = "*" if self.minor == WILD else str(self.minor)
        return f"{self.type} {maj}:{mnr} {self.access}"

    def is_reset(self) -> bool:
        return self.type == "a" and self.major == WILD and self.minor == WILD and \
            set(self.access) >= set("rwm")


def _r(t: str, maj: int, mnr: int, acc: str = "rwm") -> Rule:
    return Rule(True, t, maj, mnr, acc)


# runc 1.1's AllowedDevices: mknod of anything, the standard character devices, ptys and tun.
DEFAULT_ALLOWED = (
    _r("c", WILD, WILD, "m"), _r("b", WILD, WILD, "m"),
    _r("c", 1, 3), _r("c", 1, 8), _r("c", 1, 7), _r("c", 5, 0), _r("c", 1, 5), _r("c", 1, 9),
    _r("c", 136, WILD), _r("c", 5, 2), _r("c", 10, 200),
)


def from_spec(resource_devices: list | None, linux_devices: list | None = None,
              defaults: bool = True) -> list[Rule]:
    from pyrunc.errors import PyruncError
    rules: list[Rule] = []
    for d in resource_devices or []:
        t = d.get("type") or "a"
        if t not in ("a", "c", "b", "u", "p"):
            raise PyruncError(f"linux.resources.devices: invalid type {t!r}")
        if t in ("u", "p"):
            t = "c"
        acc = d.get("access") or "rwm"
        if set(acc) - set("rwm"):
            raise PyruncError(f"linux.resources.devices: invalid access {acc!r}")
        maj = d.get("major")
        mnr = d.get("minor")
        rules.append(Rule(bool(d.get("allow")), t, WILD if maj is None else int(maj),
                          WILD if mnr is None else int(mnr), acc))
    if defaults:
        rules.extend(DEFAULT_ALLOWED)
        for dev in linux_devices or []:
            t = dev.get("type", "c")
            if t in ("c", "b", "u"):
                rules.append(_r("c" if t == "u" else t, int(dev.get("major", 0)),
                                int(dev.get("minor", 0))))
    return rules


def effective(rules: list[Rule]) -> tuple[bool, list[Rule]]:
    """(default allow?, exceptions in order) after reading every rule as the kernel would.

    Only exceptions that go against the default are kept: an allow rule under allow-all and a
    deny rule under deny-all change nothing. The starting default is deny, as in runc's device
    emulator: a rule list with no `a` rule (an `update` that only allows one device, say) must not
    open every other device."""
    default_allow = False
    exc: list[Rule] = []
    for r in rules:
        if r.is_reset() or (r.type == "a" and r.major == WILD and r.minor == WILD):
            default_allow = r.allow
            exc = []
            continue
        if r.allow != default_allow:
            exc.append(r)
        else:
            exc = [e for e in exc if not _covers(r, e)]
    return default_allow, exc


def _covers(r: Rule, e: Rule) -> bool:
    return (r.type in ("a", e.type) and r.major in (WILD, e.major) and r.minor in (WILD, e.minor)
            and set(e.access) <= set(r.access))
