#!/usr/bin/env bash
# WAL streaming receiver benchmark: what `gravl-dr wal-receive` costs the commits of the
# server it streams from, against pg_receivewal --synchronous, same machine, same run, same
# PostgreSQL cluster on 127.0.0.1 (fsync on, synchronous_commit = on).
#
# The same pgbench load (`pgbench -N -c $CLIENTS -j 2 -T $DURATION`: simple-update, scale
# $SCALE, a CHECKPOINT before each run) is measured -> tps and average latency, for
#   1. baseline          no receiver, synchronous_standby_names = '';
#   2. gravl-async-posix gravl-dr wal-receive, synchronous: false, partial_interval 1s, to a
#                        local (posix) repository; synchronous_standby_names = '';
#   3. gravl-sync-posix  gravl-dr wal-receive, synchronous: true (the flush is acknowledged
#                        once the repository holds the WAL), posix repository;
#                        synchronous_standby_names = 'gravl_dr';
#   4. gravl-sync-s3     the same to an S3 repository: s3rver behind the verifying gateway
#                        (tests/s3/gateway.js) on 127.0.0.1;
#   5. pg_receivewal     the reference: pg_receivewal --synchronous --slot to a local directory
#                        (fsync of every write); synchronous_standby_names = 'pg_receivewal'.
# A synchronous run starts only once pg_stat_replication shows the receiver with sync_state
# 'sync' (an asynchronous one once it is 'streaming' and /status says connected). After each
# run the receiver is stopped (gravl-dr: SIGTERM; pg_receivewal: SIGINT, the signal
# PostgreSQL 15's pg_receivewal stops cleanly on), synchronous_standby_names reset and its slot
# dropped. Every receiver run gets a new repository, spool or directory.
#
# The sequence runs $ROUNDS times, every second round in reverse order, so that a drift of the
# machine (other jobs, the cluster growing) weighs on every configuration alike; the figures
# are the means over the rounds (each round's are in the JSON). Ratios are average latency
# over the baseline's and over pg_receivewal --synchronous's. The S3 endpoint is local and
# single-threaded (node): its figures measure the emulator as much as the receiver.
# Results go to stdout as a table and to bench/results/wal-receive-<time>.json.
#
# Usage: bench/wal_receive_bench.sh [DURATION=20] [SCALE=10] [CLIENTS=4] [ROUNDS=2]
#        (as root or postgres; about 2 + ROUNDS * 5 * (DURATION + 5) / 60 minutes)
# KEEP=1 keeps the work directory (server, receiver and gateway logs) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20}
SCALE=${2:-10}
CLIENTS=${3:-4}
ROUNDS=${4:-2}
BIN="$PWD/build/src/gravl-dr"
PGBIN="$(pg_config --bindir)"
[ -x "$BIN" ] || { echo "build first: ./dev/build.sh" >&2; exit 1; }
for tool in jq curl bc node; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
[ -x "$PGBIN/pg_receivewal" ] || { echo "needs $PGBIN/pg_receivewal" >&2; exit 1; }
./tests/s3/setup.sh >/dev/null

as_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
WORK="$(mktemp -d /tmp/gravl-recvbench-XXXXXX)"
chmod 755 "$WORK"; [ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
# A private copy: the build directory may be rebuilt while the benchmark runs.
mkdir -p "$WORK/bin" && cp "$BIN" "$WORK/bin/gravl-dr" && chmod 755 "$WORK/bin" && BIN="$WORK/bin/gravl-dr"
PGDATA="$WORK/data"
GW_PID=""
RECV_PID=""
RECV_NAME=""
RECV_LOG=""
cleanup() {
  [ -n "$RECV_PID" ] && kill -KILL "$RECV_PID" 2>/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
  [ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM
die() {  # message; shows the current receiver's log and the server log's tail
  echo "error: $*" >&2
  if [ -n "$RECV_LOG" ] && [ -f "$RECV_LOG" ]; then
    echo "--- $RECV_NAME log ($RECV_LOG) ---" >&2; tail -n 40 "$RECV_LOG" >&2
  fi
  echo "--- server log (tail) ---" >&2; tail -n 20 "$WORK/server.log" >&2 || true
  exit 1
}
free_port() { local p=$1; while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done; echo "$p"; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# The S3 endpoint: s3rver behind the gateway that checks every request's SigV4 signature.
export GATEWAY_ACCESS_KEY_ID=AKIDGRAVLBENCH000001
GATEWAY_SECRET_ACCESS_KEY="bench/$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
export GATEWAY_SECRET_ACCESS_KEY
mkdir -p "$WORK/s3rver"
node --openssl-legacy-provider tests/s3/gateway.js --dir "$WORK/s3rver" --bucket bench \
  --no-stdin-watch > "$WORK/ready" 2> "$WORK/gateway.log" &
GW_PID=$!
for _ in $(seq 300); do grep -q port "$WORK/ready" 2>/dev/null && break; sleep 0.1; done
S3PORT=$(sed -E 's/.*"port": *([0-9]+).*/\1/' "$WORK/ready")
[ -n "$S3PORT" ] || { cat "$WORK/gateway.log" >&2; exit 1; }
ENDPOINT="http://127.0.0.1:$S3PORT"
printf '%s\n' "$GATEWAY_SECRET_ACCESS_KEY" > "$WORK/s3-secret"

port=$(free_port 55900)
RPORT=$(free_port 56100)
CONN="host=127.0.0.1 port=$port user=postgres dbname=postgres"
psqlc() { "$PGBIN/psql" -X -Atq -d "$CONN" -c "$1"; }
echo "== preparing: PostgreSQL on 127.0.0.1:$port, pgbench scale $SCALE; S3 gateway $ENDPOINT" >&2
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null
cat >> "$PGDATA/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
max_wal_size = '4GB'
synchronous_standby_names = ''
CONF
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/server.log" -w start >/dev/null
"$PGBIN/pgbench" -i -s "$SCALE" -q -d "$CONN" >/dev/null 2>&1

set_sync_names() {
  psqlc "ALTER SYSTEM SET synchronous_standby_names = '$1'" >/dev/null
  psqlc "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 100); do
    [ "$(psqlc "SHOW synchronous_standby_names")" = "$1" ] && return 0
    sleep 0.05
  done
  die "synchronous_standby_names did not become '$1'"
}
receiver_status() { curl -fsS --max-time 2 "http://127.0.0.1:$RPORT/status" 2>/dev/null || true; }
wait_streaming() {  # application_name, want_sync (true|false), [status: /status must say connected]
  local q="SELECT count(*) FROM pg_stat_replication WHERE application_name = '$1' AND state = 'streaming'"
  [ "$2" = true ] && q="$q AND sync_state = 'sync'"
  for _ in $(seq 600); do
    kill -0 "$RECV_PID" 2>/dev/null || die "$RECV_NAME exited before streaming"
    if [ "$(psqlc "$q")" = 1 ]; then
      if [ "${3:-}" != status ] || [ "$(receiver_status | jq -r '.connected // false')" = true ]; then
        return 0
      fi
    fi
    sleep 0.1
  done
  die "$RECV_NAME is not streaming$([ "$2" = true ] && echo ' synchronously') after 60 s"
}
# Per run (key "config/round"): pgbench figures, the receiver's /status and how it stopped.
declare -A TPS LAT STDDEV WALMB STATUS STOP_RC STOP_S
stop_receiver() {  # key signal slot: signal, wait (30 s at most), then drop the slot
  local key=$1 sig=$2 slot=$3 rc=0 t0
  t0=$(date +%s.%N)
  kill "-$sig" "$RECV_PID" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$RECV_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$RECV_PID" 2>/dev/null; then
    echo "warning: $RECV_NAME still runs 30 s after SIG$sig; killing it (log: $RECV_LOG)" >&2
    tail -n 20 "$RECV_LOG" >&2
    kill -KILL "$RECV_PID" 2>/dev/null || true
  fi
  wait "$RECV_PID" || rc=$?
  STOP_RC[$key]=$rc
  STOP_S[$key]=$(echo "$(date +%s.%N) - $t0" | bc -l)
  if [ "$rc" -ne 0 ]; then
    echo "warning: $RECV_NAME exited with $rc after SIG$sig" >&2; tail -n 20 "$RECV_LOG" >&2
  fi
  RECV_PID=""
  for _ in $(seq 100); do  # the walsender may take a moment to let go of the slot
    [ "$(psqlc "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot' AND active")" = 0 ] && break
    sleep 0.1
  done
  psqlc "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$slot'" >/dev/null
}
run_pgbench() {  # key
  local key=$1 out lsn0 lsn1
  out="$WORK/pgbench-${key//\//-r}.txt"
  psqlc "CHECKPOINT" >/dev/null
  lsn0=$(psqlc "SELECT pg_current_wal_lsn()")
  echo "== $key: pgbench -N -c $CLIENTS -j 2 -T $DURATION" >&2
  "$PGBIN/pgbench" -N -c "$CLIENTS" -j 2 -T "$DURATION" -P 5 -d "$CONN" > "$out" 2> "$out.err" ||
    { cat "$out.err" >&2; die "pgbench failed in $key"; }
  lsn1=$(psqlc "SELECT pg_current_wal_lsn()")
  WALMB[$key]=$(psqlc "SELECT round(pg_wal_lsn_diff('$lsn1', '$lsn0') / 1048576.0, 1)")
  TPS[$key]=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$out" | head -1)
  LAT[$key]=$(sed -nE 's/^latency average = ([0-9.]+) ms.*/\1/p' "$out" | head -1)
  STDDEV[$key]=$(sed -nE 's/^latency stddev = ([0-9.]+) ms.*/\1/p' "$out" | head -1)
  if [ -z "${TPS[$key]}" ] || [ -z "${LAT[$key]}" ]; then
    cat "$out" >&2; die "no tps/latency in pgbench's output ($key)"
  fi
  : "${STDDEV[$key]:=0}"
  echo "   tps ${TPS[$key]}, latency ${LAT[$key]} ms (stddev ${STDDEV[$key]} ms), WAL ${WALMB[$key]} MB" >&2
}
gravl_yaml() {  # file synchronous dir repo-yaml-line
  cat > "$1" <<YAML
pg: { conninfo: "$CONN" }
repos:
$4
compression: { type: zstd, level: 1 }
wal_receive:
  slot: gravl_dr
  application_name: gravl_dr
  synchronous: $2
  spool_path: $3/spool
  partial_interval: 1s
  listen: 127.0.0.1:$RPORT
YAML
}
start_gravl() {  # config round: a new repository and spool, stanza-create, wal-receive --create-slot
  local c=$1 r=$2 dir="$WORK/$1-r$2" sync=true repo
  mkdir -p "$dir"
  [ "$c" = gravl-async-posix ] && sync=false
  if [ "$c" = gravl-sync-s3 ]; then
    repo="  - { name: s3, type: s3, bucket: bench, region: us-east-1, endpoint: \"$ENDPOINT\", uri_style: path, prefix: r$r, access_key_id: $GATEWAY_ACCESS_KEY_ID, secret_access_key_file: $WORK/s3-secret }"
  else
    repo="  - { name: local, type: posix, path: $dir/repo }"
  fi
  gravl_yaml "$dir/gravl-dr.yaml" "$sync" "$dir" "$repo"
  RECV_NAME="$c (round $r)"; RECV_LOG="$dir/receiver.log"
  "$BIN" --config "$dir/gravl-dr.yaml" stanza-create > "$dir/stanza-create.log" 2>&1 ||
    { cat "$dir/stanza-create.log" >&2; die "stanza-create failed for $c"; }
  "$BIN" --config "$dir/gravl-dr.yaml" wal-receive --create-slot > "$RECV_LOG" 2>&1 &
  RECV_PID=$!
}
run_config() {  # config round
  local c=$1 r=$2 key="$1/$2"
  case $c in
    baseline)
      run_pgbench "$key" ;;
    gravl-async-posix)
      start_gravl "$c" "$r"
      wait_streaming gravl_dr false status
      run_pgbench "$key"
      STATUS[$key]=$(receiver_status)
      stop_receiver "$key" TERM gravl_dr ;;
    gravl-sync-posix | gravl-sync-s3)
      set_sync_names gravl_dr
      start_gravl "$c" "$r"
      wait_streaming gravl_dr true status
      run_pgbench "$key"
      STATUS[$key]=$(receiver_status)
      set_sync_names ''
      stop_receiver "$key" TERM gravl_dr ;;
    pg_receivewal)
      local dir="$WORK/$c-r$r" rconn="host=127.0.0.1 port=$port user=postgres application_name=pg_receivewal"
      mkdir -p "$dir/wal"
      RECV_NAME="$c (round $r)"; RECV_LOG="$dir/receiver.log"
      "$PGBIN/pg_receivewal" --create-slot --if-not-exists --slot pg_receivewal -d "$rconn" 2> "$RECV_LOG" ||
        die "pg_receivewal --create-slot failed"
      set_sync_names pg_receivewal
      "$PGBIN/pg_receivewal" --synchronous --no-loop --slot pg_receivewal -D "$dir/wal" -d "$rconn" \
        >> "$RECV_LOG" 2>&1 &
      RECV_PID=$!
      wait_streaming pg_receivewal true
      run_pgbench "$key"
      set_sync_names ''
      stop_receiver "$key" INT pg_receivewal ;;
  esac
  RECV_NAME=""; RECV_LOG=""
}

CONFIGS=(baseline gravl-async-posix gravl-sync-posix gravl-sync-s3 pg_receivewal)
echo "== warm-up: pgbench -T 5 (not measured)" >&2
"$PGBIN/pgbench" -N -c "$CLIENTS" -j 2 -T 5 -d "$CONN" >/dev/null 2>&1
for r in $(seq "$ROUNDS"); do
  order=("${CONFIGS[@]}")
  if [ $((r % 2)) -eq 0 ]; then
    order=(); for ((i = ${#CONFIGS[@]} - 1; i >= 0; i--)); do order+=("${CONFIGS[$i]}"); done
  fi
  for c in "${order[@]}"; do run_config "$c" "$r"; done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# Means over the rounds
declare -A MTPS MLAT
mean() {  # array-name config
  local -n arr=$1; local sum=0 r
  for r in $(seq "$ROUNDS"); do sum=$(echo "$sum + ${arr[$2/$r]}" | bc -l); done
  echo "$sum / $ROUNDS" | bc -l
}
for c in "${CONFIGS[@]}"; do MTPS[$c]=$(mean TPS "$c"); MLAT[$c]=$(mean LAT "$c"); done
ratio() { echo "$1 / $2" | bc -l; }
printf '\n%-19s %10s %16s %13s %18s   %s\n' config tps "avg latency ms" "vs baseline" "vs pg_receivewal" "latency per round (ms)"
for c in "${CONFIGS[@]}"; do
  rounds=""; for r in $(seq "$ROUNDS"); do rounds="$rounds ${LAT[$c/$r]}"; done
  printf '%-19s %10.1f %16.3f %12.2fx %17.2fx  %s\n' "$c" "${MTPS[$c]}" "${MLAT[$c]}" \
    "$(ratio "${MLAT[$c]}" "${MLAT[baseline]}")" "$(ratio "${MLAT[$c]}" "${MLAT[pg_receivewal]}")" "$rounds"
done
echo "(means of $ROUNDS rounds of pgbench -N -c $CLIENTS -j 2 -T $DURATION, scale $SCALE; $(nproc) CPUs, Linux $(uname -r); load average $LOAD_START at the start, $LOAD_END at the end)"
for c in gravl-async-posix gravl-sync-posix gravl-sync-s3 pg_receivewal; do
  for r in $(seq "$ROUNDS"); do
    s=${STATUS[$c/$r]:-}
    line="stopped with exit ${STOP_RC[$c/$r]} in $(printf '%.1f' "${STOP_S[$c/$r]}") s"
    [ -n "$s" ] && line="$(jq -r '"chunks uploaded \(.chunks_uploaded // "?"), segments archived \(.segments_archived // "?"), upload failures \(.upload_failures // "?"), push failures \(.push_failures // "?")"' <<<"$s"); $line"
    echo "$c round $r: $line"
  done
done

mkdir -p bench/results
OUT="bench/results/wal-receive-$(date -u +%Y%m%dT%H%M%SZ).json"
{
  for c in "${CONFIGS[@]}"; do
    for r in $(seq "$ROUNDS"); do
      k="$c/$r"; s=${STATUS[$k]:-}; [ -n "$s" ] || s="{}"
      jq -n --arg config "$c" --arg round "$r" --arg tps "${TPS[$k]}" --arg lat "${LAT[$k]}" \
        --arg sd "${STDDEV[$k]}" --arg wal "${WALMB[$k]}" --arg rc "${STOP_RC[$k]:-}" \
        --arg stop "${STOP_S[$k]:-}" --argjson status "$s" '{
          config: $config, round: ($round|tonumber), tps: ($tps|tonumber),
          latency_avg_ms: ($lat|tonumber), latency_stddev_ms: ($sd|tonumber), wal_mb: ($wal|tonumber)}
          + (if $rc == "" then {} else {receiver_exit_code: ($rc|tonumber),
                                        receiver_stop_seconds: ($stop|tonumber)} end)
          + (if $status == {} then {} else {receiver_status: ($status | {chunks_uploaded,
               segments_archived, upload_failures, push_failures, reconnects, last_error})} end)'
    done
  done
} | jq -s --arg duration "$DURATION" --arg scale "$SCALE" --arg clients "$CLIENTS" --arg rounds "$ROUNDS" \
  --arg nproc "$(nproc)" --arg kernel "$(uname -r)" --arg cpu "$(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -1)" \
  --arg load0 "$LOAD_START" --arg load1 "$LOAD_END" \
  --arg pg "$("$PGBIN/postgres" --version)" --arg gravl "$("$BIN" --version)" '
  . as $runs
  | def mean(f): (map(f) | add / length);
  ($runs | group_by(.config) | map({key: .[0].config,
      value: {tps: mean(.tps), latency_avg_ms: mean(.latency_avg_ms)}}) | from_entries) as $m
  | {
    pgbench: {mode: "simple-update (-N)", clients: ($clients|tonumber), threads: 2,
              duration_s: ($duration|tonumber), scale: ($scale|tonumber), rounds: ($rounds|tonumber),
              order: "every second round reversed"},
    machine: {nproc: ($nproc|tonumber), kernel: $kernel, cpu: $cpu,
              loadavg_start: $load0, loadavg_end: $load1},
    postgresql: $pg, gravl_dr: $gravl, partial_interval_async: "1s",
    means: [("baseline", "gravl-async-posix", "gravl-sync-posix", "gravl-sync-s3", "pg_receivewal") as $c
      | {config: $c, tps: $m[$c].tps, latency_avg_ms: $m[$c].latency_avg_ms,
         latency_ratio_vs_baseline: ($m[$c].latency_avg_ms / $m.baseline.latency_avg_ms),
         latency_ratio_vs_pg_receivewal: ($m[$c].latency_avg_ms / $m.pg_receivewal.latency_avg_ms)}],
    runs: $runs}' > "$OUT"
echo "wrote $OUT"
