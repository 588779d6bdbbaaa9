#!/usr/bin/env bash
# The exporter's refresh cost on a large local repository: BACKUPS full backups and WAL
# archived segments (default 1,000 and 200,000) plus a year of run reports, generated once in
# a temporary directory; then, in a fresh process, four refreshes (first, nothing new, new
# backup and WAL, complete WAL listing) with their times and the peak RSS. For scale, the same
# run times `gravl-dr info --output json` on that repository -- what an exporter without a
# cached catalog (pgBackRest's and Barman's third-party exporters call `info` per scrape)
# pays on every refresh. Prints the JSON line and writes bench/results/exporter-<date>.json.
#
# Usage: bench/exporter_bench.sh [BACKUPS=1000] [WAL=200000]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/build/bench/gravl_exporter_bench"
GRAVL="$PWD/build/src/gravl-dr"
if [ ! -x "$BIN" ] || [ ! -x "$GRAVL" ]; then echo "build first: ./dev/build.sh" >&2; exit 1; fi
WORK="$(mktemp -d /tmp/gravl-exporterbench-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT INT TERM
"$BIN" "$WORK/repo" "${1:-1000}" "${2:-200000}" > "$WORK/first.json"
"$BIN" "$WORK/repo" > "$WORK/exporter.json"  # again, the repository's directories now cached
start=$(date +%s.%N)
"$GRAVL" --repo-path "$WORK/repo" --stanza main info --output json > /dev/null
info_s=$(echo "$(date +%s.%N) - $start" | bc)
result="$(sed "s/}\$/, \"gravl_info_s\": $info_s}/" "$WORK/exporter.json")"
echo "$result"
mkdir -p bench/results
out="bench/results/exporter-$(date -u +%Y%m%dT%H%M%SZ).json"
echo "$result" > "$out"
echo "wrote $out"
