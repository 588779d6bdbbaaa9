#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds (normal and sanitizer builds), runs the
# unit and integration tests (real PostgreSQL 15 clusters on 127.0.0.1), then the unit tests
# under ASan+UBSan. Prints ctest's summaries; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

./dev/install-deps.sh
./tests/s3/setup.sh   # npm ci of the S3 test support, from its committed lock file
./tests/k8s/setup.sh  # npm ci of the manifest checks (kubernetes-models), from its lock file
./dev/build.sh --asan

status=0
echo "== unit, integration and end-to-end tests"
# The container image (label "image", ~20 min) has its own command: dev/image.sh; the
# automatic failover soak (label "soak", 10 min) has dev/soak.sh.
(cd build && ctest --output-on-failure --timeout 900 -j "$(nproc)" -LE 'image|soak') || status=1

echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
# The multi-GB stream test shrinks under the sanitizers (its size, not its checks).
(cd build-asan && GRAVL_TEST_BIG_STREAM_MIB=256 \
   ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure --timeout 900 -j "$(nproc)") || status=1

if [ "$status" -ne 0 ]; then
  echo "test.sh: FAILED" >&2
else
  echo "test.sh: all test suites passed"
fi
exit "$status"
