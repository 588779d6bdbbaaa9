#!/usr/bin/env bash
# The repository catalog's cost on a large local repository: BACKUPS full backups and WAL
# archived segments (default 1,000 and 200,000), generated once in a temporary directory;
# then, in a fresh process, the backups listed, the WAL archive indexed and every backup's
# recoverable window computed. Prints the JSON line and writes bench/results/catalog-<date>.json.
#
# Usage: bench/catalog_bench.sh [BACKUPS=1000] [WAL=200000]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/build/bench/gravl_catalog_bench"
[ -x "$BIN" ] || { echo "build first: ./dev/build.sh" >&2; exit 1; }
WORK="$(mktemp -d /tmp/gravl-catalogbench-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT INT TERM
"$BIN" "$WORK/repo" "${1:-1000}" "${2:-200000}" > "$WORK/first.json"
"$BIN" "$WORK/repo" > "$WORK/result.json"  # again, the repository's directories now cached
cat "$WORK/result.json"
mkdir -p bench/results
out="bench/results/catalog-$(date -u +%Y%m%dT%H%M%SZ).json"
cp "$WORK/result.json" "$out"
echo "wrote $out"
