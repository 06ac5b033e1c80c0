#!/usr/bin/env bash
# Installs everything the tests need, then runs the whole spec-test suite on the real kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
PY=${PYTHON:-python3}
# -P: import pyrunc as installed, not from the checkout in the current directory
exec "$PY" -P -m pytest spec-tests -n 2 -q -p no:cacheprovider "$@"
