#!/usr/bin/env bash
# Installs what pyrunc, its demo and its tests need on a Debian-like machine, as root, and pyrunc
# itself from this checkout (a real install: the tests exercise what users get).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
need=()
command -v gcc >/dev/null || need+=(gcc)
[ -x /bin/busybox ] || need+=(busybox-static)
[ -e /usr/lib/x86_64-linux-gnu/libseccomp.so.2 ] || [ -e /lib/x86_64-linux-gnu/libseccomp.so.2 ] || need+=(libseccomp2)
command -v runc >/dev/null || need+=(runc)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
# the rootless spec-tests run a copy of pyrunc as nobody with Debian's own interpreter
[ -x /usr/bin/python3.11 ] || need+=(python3.11)
compgen -G "/usr/lib/python3/dist-packages/_cffi_backend*" >/dev/null || need+=(python3-cffi-backend)
# the D-Bus wire format of the systemd cgroup driver is checked against the reference daemon
command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore ".[test]"
