"""setuptools needs this file only to hand the cffi build of the kernel shim to `cffi_modules`."""
from setuptools import setup

setup(cffi_modules=["csrc/build_shim.py:ffibuilder"])
