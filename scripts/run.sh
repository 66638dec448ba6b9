#!/usr/bin/env bash
# The run command: installs what is missing, builds, starts the whole
# pipeline on loopback, streams the sample data and shows totals arriving
# live until Ctrl-C, which stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAMITY_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"
exec ./scripts/demo.sh build/bin
