#!/usr/bin/env bash
# Fuzzes amity's wire decoders (tests/fuzz/fuzz_decode.c) with libFuzzer
# under AddressSanitizer + UndefinedBehaviorSanitizer.
#   scripts/fuzz.sh [SECONDS(60)]
# Builds build-fuzz with clang, runs on a scratch copy of tests/fuzz/corpus
# (the committed corpus is left alone), prints executions per second.
# Crashes are written to build-fuzz/fuzz-artifacts/; reproduce one with
#   build-fuzz/bin/fuzz_decode build-fuzz/fuzz-artifacts/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
BUILD=${AMITY_FUZZ_BUILD:-build-fuzz}

export CC=clang
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DAMITY_FUZZ=ON -DAMITY_SANITIZE=ON -DAMITY_BUILD_TESTS=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fuzz_decode

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp tests/fuzz/corpus/* "$WORK/"
mkdir -p "$BUILD/fuzz-artifacts"
LOG="$BUILD/fuzz.log"

# -malloc_limit_mb: any single allocation above 16 MB is a bug (inputs are
# at most 64 KiB, and decoding may allocate ~64 bytes per input byte)
set +e
"$BUILD/bin/fuzz_decode" "$WORK" \
    -max_total_time="$SECS" -max_len=65536 -malloc_limit_mb=16 -timeout=10 \
    -dict=tests/fuzz/amity.dict -print_final_stats=1 \
    -artifact_prefix="$BUILD/fuzz-artifacts/" >"$LOG" 2>&1
rc=$?
set -e

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -n1)
secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$LOG" | tail -n1)
cov=$(grep -o 'cov: [0-9]*' "$LOG" | tail -n1 || true)
if [ -n "${runs:-}" ] && [ -n "${secs:-}" ] && [ "$secs" -gt 0 ]; then
    echo "fuzz: ${runs} executions in ${secs} s = $((runs / secs)) exec/s (${cov:-cov: ?})"
else
    tail -n 5 "$LOG"
fi
if [ "$rc" -ne 0 ]; then
    echo "fuzz: fuzz_decode failed (exit $rc); see $LOG and $BUILD/fuzz-artifacts/" >&2
    grep -E 'ERROR|invariant|SUMMARY' "$LOG" | head -n 20 >&2 || true
    exit 1
fi
