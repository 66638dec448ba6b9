#!/usr/bin/env bash
# Installs the Debian 12 packages amity's build, run and tests need, only
# those missing. Run as root (or with sudo available).
set -euo pipefail

PKGS=(
    build-essential cmake pkg-config clang libclang-rt-14-dev
    libzmq3-dev libczmq-dev libmsgpack-dev liblmdb-dev lmdb-utils
    libinih-dev libjansson-dev libcsv-dev libsystemd-dev libcmocka-dev
    python3 python3-zmq python3-msgpack python3-yaml iproute2 tzdata strace systemd
    redis-server libhiredis-dev
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
