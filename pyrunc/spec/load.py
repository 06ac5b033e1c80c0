"""Read a bundle's config.json; every way it can be unreadable becomes one clear PyruncError."""
from __future__ import annotations

import os
import stat

from pyrunc.errors import PyruncError

MAX_CONFIG_BYTES = 64 << 20


def load_config(bundle: str) -> dict:
    path = os.path.join(bundle, "config.json")
    if not os.path.isdir(bundle):
        what = "does not exist" if not os.path.exists(bundle) else "is not a directory"
        raise PyruncError(f"bundle {bundle} {what}")
    try:
        # O_NONBLOCK: a FIFO planted as config.json must not hang us; it is refused below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PyruncError(f"bundle {bundle} has no config.json") from None
    except OSError as e:
        raise PyruncError(f"cannot read {path}: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PyruncError(f"{path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise PyruncError(f"cannot read {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_CONFIG_BYTES:
        raise PyruncError(f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PyruncError(f"{path}: not UTF-8 (byte {e.start})") from None
    from pyrunc import jsonfast
    try:
        config = jsonfast.loads(text)
    except RecursionError:
        raise PyruncError(f"{path}: JSON nested too deeply") from None
    except ValueError as e:  # bad syntax, or an integer literal beyond Python's digit limit
        raise PyruncError(f"{path}: malformed JSON: {e}") from None
    if not isinstance(config, dict):
        raise PyruncError(f"{path}: the top level must be a JSON object")
    return config
