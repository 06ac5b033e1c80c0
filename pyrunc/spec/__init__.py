"""config.json in: load (load.py), validation (validate.py), defaults for `pyrunc spec` (default.py)."""
