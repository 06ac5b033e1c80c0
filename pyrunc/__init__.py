"""pyrunc: an OCI runtime in Python. The library surface is pyrunc.api; the CLI is pyrunc.cli."""
__version__ = "0.1.0"
SPEC_VERSION = "1.3.0"
