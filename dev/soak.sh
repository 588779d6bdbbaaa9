#!/usr/bin/env bash
# The automatic failover soak: two regions, one watch agent each, a 3-member etcd cluster,
# random faults one at a time (partitions of the primary's agent, kill -9 of its agent, an
# etcd member down) for GRAVL_SOAK_SECONDS (default 600), with a sampler writing to both
# servers every 100 ms. Reports the faults, failovers, failbacks, transitions and the samples
# in which both servers took a write (must be 0). Not in the default suite (dev/test.sh).
# Usage: dev/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then
  case "$1" in
    ''|*[!0-9]*) echo "soak.sh: SECONDS must be a whole number, got '$1'" >&2; exit 2 ;;
  esac
  export GRAVL_SOAK_SECONDS="$1"
fi
./dev/install-deps.sh
./dev/build.sh
(cd build && ctest --output-on-failure --verbose -L soak)
