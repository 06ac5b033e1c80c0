"""Shared by the hypothesis suites that mutate configs."""
from __future__ import annotations


def members(x: object, path: tuple = ()) -> list[tuple]:
    """Every JSON member's path in `x` (keys and list indexes), the root `()` included."""
    out = [path]
    if isinstance(x, dict):
        for k, v in x.items():
            out += members(v, path + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out += members(v, path + (i,))
    return out
