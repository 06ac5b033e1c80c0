"""JSON through the C accelerator `_json` alone.

`import json` costs ~7 ms because json.decoder compiles regular expressions (and imports `re`,
`enum`...) at import time. `state`, `start`, `kill` and `delete` are ~20 ms processes, so they read
and write JSON here instead: the same C scanner and string encoder the json module uses, without
the module. Output is standard JSON; non-ASCII is escaped.
"""
from __future__ import annotations

import _json

_NAN = float("nan")
_INF = float("inf")


class _Context:
    """What _json's scanner reads off the JSONDecoder it normally gets."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": _NAN, "Infinity": _INF, "-Infinity": -_INF}[name]


_scan = _json.make_scanner(_Context())


def loads(text: str | bytes) -> object:
    """Parse a JSON document; ValueError on anything malformed (as json.loads raises)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    end = len(text)
    idx = 0
    while idx < end and text[idx] in " \t\n\r":
        idx += 1
    try:
        obj, idx = _scan(text, idx)
    except StopIteration as e:
        raise ValueError(f"malformed JSON at {_where(text, e.value)}") from None
    except (SystemError, ValueError):
        # some errors make _json reach for json.decoder's exception class: pay for the full
        # module only now, to get its precise message
        import json
        json.loads(text)
        raise
    finally:
        _Context.memo.clear()
    while idx < end and text[idx] in " \t\n\r":
        idx += 1
    if idx != end:
        raise ValueError(f"extra data after the JSON value at {_where(text, idx)}")
    return obj


def _where(text: str, idx: int) -> str:
    line = text.count("\n", 0, idx) + 1
    return f"line {line} column {idx - (text.rfind(chr(10), 0, idx) + 1) + 1}"


_str = _json.encode_basestring_ascii


def dumps(obj: object, indent: int | str | None = None) -> str:
    """`indent`: spaces per level, or the string to repeat per level (e.g. a tab)."""
    parts: list[str] = []
    _encode(obj, parts, indent, 0)
    return "".join(parts)


def _encode(obj: object, out: list[str], indent: int | str | None, level: int) -> None:
    if isinstance(obj, str):
        out.append(_str(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        if obj != obj or obj in (_INF, -_INF):
            raise ValueError(f"{obj!r} is not JSON")
        out.append(float.__repr__(obj))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        sep, close = _separators(indent, level)
        out.append("{")
        for i, (k, v) in enumerate(obj.items()):
            out.append(sep if i == 0 else "," + sep)
            out.append(_str(str(k)))
            out.append(": " if indent is not None else ":")
            _encode(v, out, indent, level + 1)
        out.append(close + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        sep, close = _separators(indent, level)
        out.append("[")
        for i, v in enumerate(obj):
            out.append(sep if i == 0 else "," + sep)
            _encode(v, out, indent, level + 1)
        out.append(close + "]")
    else:
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _separators(indent: int | str | None, level: int) -> tuple[str, str]:
    if indent is None:
        return "", ""
    unit = indent if isinstance(indent, str) else " " * indent
    return "\n" + unit * (level + 1), "\n" + unit * level
