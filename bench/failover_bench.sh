#!/usr/bin/env bash
# Failover benchmark: how long gravl-dr's switchover, failover and failback take, step by
# step, on two PostgreSQL 15 servers on 127.0.0.1 standing for two regions (each with its own
# posix repository), under pgbench load. In the same run, the floor every tool builds on:
# `pg_ctl promote -w` of a streaming standby by hand (no assessment, no fencing, no
# checks) -- the ratio gravl-dr / bare promote is the overhead of doing it safely.
#
# References that cannot run here, quoted with their source: the strategy's target of 30-60
# min for a regional failover (../shared/seed, its region-outage runbook), and Patroni's
# default detection time: the leader key's ttl of 30 s (plus up to loop_wait = 10 s) before
# a replica may take over (Patroni docs, "Dynamic Configuration Settings").
#
# "Decision to writable" = from the start of the command to the end of its promote step:
# what an application waiting for a primary sees, once an operator (or watch, issue 21) has
# decided. For switchover, "writes stopped" = from the primary's shutdown to the end of the
# promotion.
#
# Usage: bench/failover_bench.sh [SCALE=20] [ROUNDS=3]   (as root or postgres)
# Writes bench/results/failover-<time>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-20}
ROUNDS=${2:-3}
BIN="$PWD/build/src/gravl-dr"
PGBIN="$(pg_config --bindir)"
[ -x "$BIN" ] || { echo "build first: ./dev/build.sh" >&2; exit 1; }
command -v jq >/dev/null || { echo "needs jq" >&2; exit 1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
WORK="$(mktemp -d /tmp/gravl-failoverbench-XXXXXX)"
chmod 755 "$WORK"; [ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
mkdir -p "$WORK/bin" && cp "$BIN" "$WORK/bin/gravl-dr" && chmod 755 "$WORK/bin" && BIN="$WORK/bin/gravl-dr"
A="$WORK/a"; B="$WORK/b"
LOAD_PID=""
cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null; wait 2>/dev/null || true
  for d in "$A" "$B"; do as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { local p=$1; while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done; echo "$p"; }
PA=$(free_port 55800); PB=$(free_port $((PA + 1)))
CA="host=127.0.0.1 port=$PA user=postgres dbname=postgres"
CB="host=127.0.0.1 port=$PB user=postgres dbname=postgres"
CONFIG="$WORK/gravl-dr.yaml"
cat > "$CONFIG" <<EOF
pg: { conninfo: "$CA" }
repos:
  - { name: eu-north-1, type: posix, path: $WORK/eu }
  - { name: us-east-1, type: posix, path: $WORK/us }
archive: { async: false }
regions:
  - { name: eu-north-1, repo: eu-north-1, pg: { conninfo: "$CA", data_dir: $A } }
  - { name: us-east-1, repo: us-east-1, pg: { conninfo: "$CB", data_dir: $B } }
failover: { timeout: 120, backup: false }
EOF
chmod 644 "$CONFIG"
g() { "$BIN" --config "$CONFIG" "$@"; }
psql_at() { "$PGBIN/psql" -X -q -A -t -d "$1" -c "$2"; }

echo "== preparing: pgbench scale $SCALE on eu-north-1 (port $PA), standby us-east-1 (port $PB)" >&2
as_pg "$PGBIN/initdb" -D "$A" -U postgres --auth=trust >/dev/null
cat >> "$A/postgresql.conf" <<EOF
port = $PA
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
wal_level = replica
archive_mode = on
archive_command = '$BIN --config $CONFIG archive-push %p'
max_wal_senders = 10
wal_log_hints = on
wal_keep_size = '512MB'
fsync = off
EOF
as_pg "$PGBIN/pg_ctl" -D "$A" -l "$WORK/a.log" -w start >/dev/null
g stanza-create >/dev/null
[ "$(id -u)" -eq 0 ] && chown -R postgres "$WORK/eu" "$WORK/us"
"$PGBIN/pgbench" -i -q -s "$SCALE" -d "$CA" >/dev/null 2>&1
g --repo eu-north-1 backup >/dev/null
as_pg mkdir -p "$B"
g standby-create --region us-east-1 --set "port=$PB" --set listen_addresses=127.0.0.1 \
  --set "unix_socket_directories=$WORK" --start >/dev/null

load() {  # pgbench against whichever server is primary, restarted when it loses it
  while true; do
    for c in "$CA" "$CB"; do "$PGBIN/pgbench" -n -c 4 -T 600 -d "$c" >/dev/null 2>&1 || true; done
    sleep 0.2
  done
}
load & LOAD_PID=$!
sleep 3

RESULTS="$WORK/results.jsonl"
record() {  # kind, json output of the command
  jq -c --arg kind "$1" '{kind: $kind, decision_to_writable_seconds, total_seconds,
    method, rewind_problem, loss_bytes: .loss.bytes, loss_exact: .loss.exact,
    steps: [.steps[] | {step, seconds, outcome}]}' <<<"$2" >> "$RESULTS"
}
for i in $(seq "$ROUNDS"); do
  echo "== round $i: switchover to us-east-1 and back" >&2
  record switchover "$(g switchover --to us-east-1 --output json)"
  sleep 2
  record switchover "$(g switchover --to eu-north-1 --output json)"
  sleep 2
done

echo "== failover after kill -9 of eu-north-1 under load" >&2
pid=$(head -1 "$A/postmaster.pid")
pkill -9 -P "$pid" || true; kill -9 "$pid"
sleep 1
record failover "$(g failover --to us-east-1 --output json)"
echo "== failback to eu-north-1 (pg_rewind, then switchover back)" >&2
record failback "$(g failback --to eu-north-1 --force --output json)"

echo "== reference: pg_ctl promote -w of the streaming standby by hand" >&2
kill "$LOAD_PID" 2>/dev/null; wait 2>/dev/null || true; LOAD_PID=""
as_pg "$PGBIN/pg_ctl" -D "$A" -m fast -w stop >/dev/null
start=$(date +%s.%N)
as_pg "$PGBIN/pg_ctl" -D "$B" -w promote >/dev/null
promote=$(echo "$(date +%s.%N) - $start" | bc -l)

mkdir -p bench/results
OUT="bench/results/failover-$(date -u +%Y%m%dT%H%M%SZ).json"
jq -s --arg scale "$SCALE" --arg promote "$promote" --arg host "$(nproc) cores" '{
  scale: ($scale|tonumber), host: $host,
  reference: {bare_pg_ctl_promote_seconds: ($promote|tonumber),
              strategy_target_seconds: [1800, 3600], patroni_detection_ttl_seconds: 30},
  runs: .}' "$RESULTS" > "$OUT"

printf '\n%-11s %8s %8s   %s\n' kind writable total "steps (seconds)"
jq -r '.runs[] | [.kind, (.decision_to_writable_seconds // 0), .total_seconds,
  ([.steps[] | "\(.step)=\(.seconds*100|round/100)"] | join(" "))] |
  "\(.[0])\t\(.[1]*100|round/100)\t\(.[2]*100|round/100)\t\(.[3])"' "$OUT" |
  awk -F'\t' '{printf "%-11s %8s %8s   %s\n", $1, $2, $3, $4}'
jq -r '.reference as $r | .runs | map(select(.kind=="failover"))[0] as $f |
  "\nbare pg_ctl promote -w: \($r.bare_pg_ctl_promote_seconds*1000|round) ms; failover decision-to-writable / bare promote: \(($f.decision_to_writable_seconds / $r.bare_pg_ctl_promote_seconds)*10|round/10)x; vs the strategy 30-60 min: \((1800 / $f.decision_to_writable_seconds)|round)x-\((3600 / $f.decision_to_writable_seconds)|round)x faster; vs Patroni ttl 30 s (detection alone): \((30 / $f.decision_to_writable_seconds)*10|round/10)x"' "$OUT"
echo "results: $OUT" >&2
