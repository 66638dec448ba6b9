#!/usr/bin/env bash
# The test command: installs what is missing, builds with warnings fatal
# under AddressSanitizer + UndefinedBehaviorSanitizer, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
BUILD=${AMITY_TEST_BUILD:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DAMITY_SANITIZE=ON -DAMITY_WERROR=ON \
    -DAMITY_BUILD_TESTS=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
ctest --output-on-failure -j"$(nproc)" "$@"
