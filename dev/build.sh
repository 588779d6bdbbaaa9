#!/usr/bin/env bash
# Builds gravl-dr: build/ (RelWithDebInfo, warnings as errors) and, with --asan, also
# build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer, unit tests only).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"

if [ "${1:-}" = "--asan" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGRAVL_SANITIZE=ON \
        -DGRAVL_BUILD_INTEGRATION=OFF -DGRAVL_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j "$jobs" --target gravl_unit_tests
fi
