#!/usr/bin/env bash
# Sets up everything and runs the demo container: it prints, from inside, its pid and hostname.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
PY=${PYTHON:-python3}
"$PY" bundles/build_rootfs.py bundles/demo/rootfs >/dev/null
PYRUNC=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/pyrunc
exec "$PYRUNC" --root /run/pyrunc-demo run --bundle bundles/demo "demo-$$"
