#!/usr/bin/env bash
# Repository sync benchmark: `gravl-dr repo-sync` between two S3 buckets (the two regions)
# against copying the same objects with the AWS JavaScript SDK v3 (bench/sdk_copy.js:
# GetObject streamed into PutObject, 4 at a time), in the same run, against s3rver behind the
# verifying gateway on 127.0.0.1. The source repository holds one real backup of pgbench at
# scale $SCALE plus $RANDOM_MB MB of incompressible data, and its WAL.
#
# repo-sync also verifies every object (the SHA-256 of its stored bytes as it streams; WAL is
# read back and decoded) and writes each manifest last; the SDK copy verifies nothing. The
# endpoint is local and single-threaded (node): the ratio between the two on the same
# endpoint is the meaningful figure.
#
# Usage: bench/sync_bench.sh [SCALE=30] [RANDOM_MB=200]   (as root or postgres)
# Writes bench/results/sync-<time>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-30}
RANDOM_MB=${2:-200}
BIN="$PWD/build/src/gravl-dr"
PGBIN="$(pg_config --bindir)"
[ -x "$BIN" ] || { echo "build first: ./dev/build.sh" >&2; exit 1; }
./tests/s3/setup.sh >/dev/null
as_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
WORK="$(mktemp -d /tmp/gravl-syncbench-XXXXXX)"
chmod 755 "$WORK"; [ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
mkdir -p "$WORK/bin" && cp "$BIN" "$WORK/bin/gravl-dr" && chmod 755 "$WORK/bin" && BIN="$WORK/bin/gravl-dr"
PGDATA="$WORK/data"
GW_PID=""
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
  [ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null; wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

export GATEWAY_ACCESS_KEY_ID=AKIDGRAVLBENCH000001
GATEWAY_SECRET_ACCESS_KEY="bench/$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
export GATEWAY_SECRET_ACCESS_KEY
export AWS_ACCESS_KEY_ID=$GATEWAY_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$GATEWAY_SECRET_ACCESS_KEY
mkdir -p "$WORK/s3rver"
node --openssl-legacy-provider tests/s3/gateway.js --dir "$WORK/s3rver" --bucket eu --bucket us \
  --bucket sdk --no-stdin-watch > "$WORK/ready" 2> "$WORK/gateway.log" &
GW_PID=$!
for _ in $(seq 300); do grep -q port "$WORK/ready" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -E 's/.*"port": *([0-9]+).*/\1/' "$WORK/ready")
[ -n "$PORT" ] || { cat "$WORK/gateway.log" >&2; exit 1; }
ENDPOINT="http://127.0.0.1:$PORT"

port=55700; while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
CONN="host=$WORK port=$port user=postgres dbname=postgres"
echo "== preparing: pgbench scale $SCALE + $RANDOM_MB MB incompressible; gateway $ENDPOINT" >&2
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null
printf '%s\n' "$GATEWAY_SECRET_ACCESS_KEY" > "$WORK/secret"
chmod 644 "$WORK/secret"
repo() {
  printf '  - { name: %s, type: s3, bucket: %s, region: us-east-1, endpoint: "%s", uri_style: path, access_key_id: %s, secret_access_key_file: %s }\n' \
    "$1" "$1" "$ENDPOINT" "$GATEWAY_ACCESS_KEY_ID" "$WORK/secret"
}
{
  echo "pg: { conninfo: \"$CONN\" }"
  echo "repos:"
  repo eu
  repo us
  echo "parallel: 2"
} > "$WORK/gravl.yaml"
chmod 644 "$WORK/gravl.yaml"
cat >> "$PGDATA/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
max_wal_size = '4GB'
archive_mode = on
archive_command = '$BIN --config $WORK/gravl.yaml --repo eu archive-push %p'
CONF
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/server.log" -w start >/dev/null
"$PGBIN/pgbench" -i -s "$SCALE" -q -d "$CONN" >/dev/null 2>&1
as_pg sh -c "head -c $((RANDOM_MB * 1024 * 1024)) /dev/urandom > '$PGDATA/incompressible.bin'"
G() { "$BIN" --config "$WORK/gravl.yaml" "$@"; }
G stanza-create >/dev/null
G --repo eu backup >/dev/null

echo "== gravl-dr repo-sync eu -> us" >&2
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" --config "$WORK/gravl.yaml" repo-sync --from eu \
  --to us --output json > "$WORK/sync.json"
SYNC_S=$(echo "$(date +%s.%N) - $start" | bc)
SYNC_RSS=$(cat "$WORK/rss")
G --repo us verify >/dev/null
SYNC_BYTES=$(sed -nE 's/.*"bytes_copied": *([0-9]+).*/\1/p' "$WORK/sync.json" | head -1)
[ -n "$SYNC_BYTES" ] || SYNC_BYTES=$(tr -d '\n ' < "$WORK/sync.json" | sed -E 's/.*"bytes_copied":([0-9]+).*/\1/')

echo "== AWS SDK v3 copy of the same objects eu -> sdk" >&2
/usr/bin/time -f "%M" -o "$WORK/rss" node --openssl-legacy-provider bench/sdk_copy.js \
  "$ENDPOINT" eu sdk main/ 4 > "$WORK/sdk.json"
SDK_RSS=$(cat "$WORK/rss")
SDK_S=$(sed -E 's/.*"seconds":([0-9.e+-]+).*/\1/' "$WORK/sdk.json")
SDK_BYTES=$(sed -E 's/.*"bytes":([0-9]+).*/\1/' "$WORK/sdk.json")

mkdir -p bench/results
OUT="bench/results/sync-$(date -u +%Y%m%dT%H%M%SZ).json"
RESULT=$(printf '{"scale": %s, "random_mb": %s, "gravl_sync_s": %.3f, "gravl_bytes": %s, "gravl_mb_s": %.1f, "gravl_peak_rss_kib": %s, "sdk_copy_s": %.3f, "sdk_bytes": %s, "sdk_mb_s": %.1f, "sdk_peak_rss_kib": %s, "time_ratio_gravl_to_sdk": %.2f}' \
  "$SCALE" "$RANDOM_MB" "$SYNC_S" "$SYNC_BYTES" "$(echo "$SYNC_BYTES / 1048576 / $SYNC_S" | bc -l)" "$SYNC_RSS" \
  "$SDK_S" "$SDK_BYTES" "$(echo "$SDK_BYTES / 1048576 / $SDK_S" | bc -l)" "$SDK_RSS" \
  "$(echo "$SYNC_S / $SDK_S" | bc -l)")
echo "$RESULT" | tee "$OUT"
echo "wrote $OUT" >&2
