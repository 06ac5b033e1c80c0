"""setuptools needs this file only to hand the cffi build of the kernel shim to `cffi_modules`,
and to record the commit `pyrunc --version` prints."""
import subprocess
from pathlib import Path

from setuptools import setup

try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent, timeout=10).stdout.strip()
except (OSError, subprocess.SubprocessError):
    commit = ""
if commit:
    (Path(__file__).parent / "pyrunc" / "COMMIT").write_text(commit + "\n")

setup(cffi_modules=["csrc/build_shim.py:ffibuilder"])
