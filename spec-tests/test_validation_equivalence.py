"""The compiled validator (_fastcheck) accepts and rejects exactly what jsonschema does.

Both read the same pyrunc/spec/schema/*.json. Configs come from hypothesis strategies built from
the schemas themselves: fully valid ones, "noisy" ones where any node may be replaced by arbitrary
JSON, and real configs (pyrunc's default, rootless) with one member replaced. For every config the
two validators must report the same multiset of JSON pointers (the messages are pyrunc's own).
"""
from __future__ import annotations

import collections

import pytest

pytest.importorskip("jsonschema")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from config_paths import members  # noqa: E402

from pyrunc.spec import _fastcheck  # noqa: E402
from pyrunc.spec.compile_schema import ROOT_SCHEMA, load_schemas, reference_validator  # noqa: E402
from pyrunc.spec.default import default_config  # noqa: E402

DOCS = load_schemas()
REFERENCE = reference_validator()
SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))


def _esc(token: object) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def reference_pointers(config: object) -> collections.Counter:
    """jsonschema's errors as pointers, with `required` pointing at the missing member as ours do."""
    out: collections.Counter = collections.Counter()
    seen_required = set()
    for err in REFERENCE.iter_errors(config):
        base = "".join("/" + _esc(t) for t in err.absolute_path)
        if err.validator == "required":
            key = (base, tuple(err.validator_value))
            if key in seen_required:
                continue
            seen_required.add(key)
            for name in err.validator_value:
                if name not in err.instance:
                    out[base + "/" + _esc(name)] += 1
        else:
            out[base] += 1
    return out


def fast_pointers(config: object) -> collections.Counter:
    return collections.Counter(p for p, _ in _fastcheck.errors(config))


def assert_same(config: object) -> None:
    ref, fast = reference_pointers(config), fast_pointers(config)
    assert fast == ref, f"fast={dict(fast)} jsonschema={dict(ref)}"


# --- strategies -------------------------------------------------------------------------------
_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
            | st.floats(allow_nan=True) | st.text(max_size=8)
            | st.sampled_from(["", "pid", "RLIMIT_NOFILE", "SCMP_ACT_ALLOW", "2MB", "MB:0=1", "c"]))
JUNK = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text(max_size=6), kids, max_size=3), max_leaves=6)


def _resolve(file: str, ref: str) -> tuple[str, dict]:
    ref_file, _, ptr = ref.partition("#")
    file = ref_file or file
    node = DOCS[file]
    for tok in filter(None, ptr.split("/")):
        node = node[int(tok)] if isinstance(node, list) else node[tok]
    return file, node


def from_schema(file: str, node: dict, noise: bool, depth: int = 0) -> st.SearchStrategy:
    """Instances of node (valid unless noise, which lets any member be junk)."""
    if "$ref" in node:
        f, target = _resolve(file, node["$ref"])
        return st.deferred(lambda: from_schema(f, target, noise, depth))
    strat = _valid(file, node, noise, depth)
    return (strat | JUNK) if noise else strat


def _valid(file: str, node: dict, noise: bool, depth: int) -> st.SearchStrategy:
    if "allOf" in node:
        parts = [from_schema(file, s, noise, depth) for s in node["allOf"]]

        def merge(dicts: list) -> object:
            out: dict = {}
            for d in dicts:
                if not isinstance(d, dict):
                    return d
                out.update(d)
            return out
        return st.tuples(*parts).map(lambda t: merge(list(t)))
    if "enum" in node:
        return st.sampled_from(node["enum"])
    types = node.get("type", "object")
    t = types[0] if isinstance(types, list) else types
    if t == "object":
        props = node.get("properties", {})
        required = set(node.get("required", ()))
        fixed = {k: from_schema(file, v, noise, depth + 1) for k, v in props.items() if k in required}
        optional = {k: from_schema(file, v, noise, depth + 1) for k, v in props.items()
                    if k not in required and depth < 6}
        base = st.fixed_dictionaries(fixed, optional=optional)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and depth < 6:
            more = st.dictionaries(st.text(max_size=6).filter(lambda k: k not in props),
                                   from_schema(file, extra, noise, depth + 1), max_size=2)
            base = st.tuples(base, more).map(lambda t: {**t[1], **t[0]})
        return base
    if t == "array":
        items = node.get("items", {})
        item = from_schema(file, items, noise, depth + 1) if depth < 6 else JUNK
        return st.lists(item, min_size=node.get("minItems", 0), max_size=3)
    if t == "string":
        if "pattern" in node:
            return st.from_regex(node["pattern"])
        return st.text(max_size=10)
    if t == "integer":
        lo, hi = node.get("minimum"), node.get("maximum")
        return st.integers(min_value=lo, max_value=hi) | st.sampled_from([x for x in (lo, hi) if x is not None] or [0])
    if t == "boolean":
        return st.booleans()
    return JUNK


ROOT = DOCS[ROOT_SCHEMA]
VALID = from_schema(ROOT_SCHEMA, ROOT, noise=False)
NOISY = from_schema(ROOT_SCHEMA, ROOT, noise=True)


@SETTINGS
@given(VALID)
def test_generated_valid_configs_pass_both(config):
    assert REFERENCE.is_valid(config)
    assert _fastcheck.errors(config) == []


@SETTINGS
@given(NOISY)
def test_generated_noisy_configs_same_errors(config):
    assert_same(config)


@st.composite
def mutated_real_configs(draw) -> dict:
    config = default_config(rootless=draw(st.booleans()))
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}
    config["hooks"] = {"prestart": [{"path": "/bin/true", "timeout": 3}]}
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(members(config)[1:]))
        parent = config
        for k in path[:-1]:
            parent = parent[k]
        if draw(st.booleans()) or not isinstance(parent, dict):
            parent[path[-1]] = draw(JUNK)
        else:
            del parent[path[-1]]
    return config


@SETTINGS
@given(mutated_real_configs())
def test_mutated_real_configs_same_errors(config):
    assert_same(config)


@pytest.mark.parametrize("config", [
    {},
    {"ociVersion": 1},
    {"ociVersion": "1.0.0", "process": {"user": {"uid": 1.0, "gid": True}}},
    {"ociVersion": "1.0.0", "linux": {"resources": {"blockIO": {"weightDevice": [{}],
                                                                "throttleReadBpsDevice": [{"major": "1"}]}}}},
    {"ociVersion": "1.0.0", "linux": {"resources": {"memory": {"limit": 2**63, "swap": -2**63 - 1}}}},
    {"ociVersion": "1.0.0", "linux": {"sysctl": {"a/b~c": 1}, "intelRdt": {"schemata": [1], "memBwSchema": "MB:\n"}}},
    {"ociVersion": "1.0.0", "process": {"cwd": "/", "rlimits": [{"type": "RLIMIT_NOFILE\n", "soft": 1, "hard": 1}]}},
    {"ociVersion": "1.0.0", "linux": {"namespaces": [{"type": ["pid"]}, "x", {"path": 1}]}},
])
def test_corner_cases_same_errors(config):
    assert_same(config)


def test_default_configs_valid_in_both():
    for cfg in (default_config(), default_config(rootless=True, uid=1000, gid=1000)):
        assert REFERENCE.is_valid(cfg)
        assert _fastcheck.errors(cfg) == []


# --- the hand-written parsers that keep `re` off create's path ----------------------------------
# Strings near the patterns' alphabets (so that matches are frequent), plus anything at all.
_NEAR = st.text(alphabet="0123456789.-+aZ_RLIMTMBKGrwm:\n \u00b2\u0130", max_size=14) | st.text(max_size=8)


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_NEAR)
def test_fast_pattern_paths_accept_only_what_the_regex_matches(s):
    """A fast path may only say "matches" where re.search does: anything else goes to the regex."""
    import re
    from pyrunc.spec.compile_schema import FAST_ACCEPT
    for pattern, source in FAST_ACCEPT.items():
        if eval(source)(s):  # noqa: S307 - the generator's own source text
            assert re.search(pattern, s), (pattern, s)


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_NEAR)
def test_semver_parser_is_the_semver_regex(s):
    import re
    from pyrunc.spec.validate import _semver
    m = re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?"
                     r"(?:\+[0-9A-Za-z.-]+)?", s, re.ASCII)
    assert _semver(s) == (tuple(int(m.group(i)) for i in (1, 2, 3)) if m else None), s
