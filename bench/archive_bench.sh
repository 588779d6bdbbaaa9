#!/usr/bin/env bash
# WAL archiving benchmark: gravl-dr archive-push (sync and async) against pgBackRest's
# archive-push (sync and async), same machine, same run, same compression (zstd level 1,
# two parallel processes where the tool supports it).
#
# For each tool it measures
#   1. drain throughput: a backlog of $BACKLOG segments is created with archiving paused,
#      then archive_command is set and the time until the archiver has caught up is taken
#      -> segments/s;
#   2. backlog under load: `pgbench -c 8 -T $DURATION` runs with archiving on, and the number
#      of *.ready files in pg_wal/archive_status is sampled every 0.5 s -> max and mean.
# Results go to stdout as a table and to bench/results/archive-<date>.json.
#
# Usage: bench/archive_bench.sh [DURATION=60] [BACKLOG=64]     (run as root or postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-60}
BACKLOG=${2:-64}
BIN="$PWD/build/src/gravl-dr"
PGBIN="$(pg_config --bindir)"
[ -x "$BIN" ] || { echo "build first: ./dev/build.sh" >&2; exit 1; }
command -v pgbackrest >/dev/null || { echo "pgbackrest is not installed (apt-get install pgbackrest)" >&2; exit 1; }

as_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
WORK="$(mktemp -d /tmp/gravl-archbench-XXXXXX)"
chmod 755 "$WORK"; [ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
# The server's user runs archive-push/archive-get: give it a copy it can read.
mkdir -p "$WORK/bin" && cp "$BIN" "$WORK/bin/gravl-dr" && chmod 755 "$WORK/bin" && BIN="$WORK/bin/gravl-dr"
PGDATA="$WORK/data"
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
port=55500; while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
CONN="host=127.0.0.1 port=$port user=postgres dbname=postgres"
psqlc() { "$PGBIN/psql" -X -Atq -d "$CONN" -c "$1"; }

as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null
cat >> "$PGDATA/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
archive_mode = on
archive_command = ''
max_wal_size = '4GB'
wal_keep_size = '8GB'
CONF
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/server.log" -w start >/dev/null
"$PGBIN/pgbench" -i -s 50 -q -d "$CONN" >/dev/null 2>&1

# gravl-dr configurations
for mode in sync async; do
  async=false; [ "$mode" = async ] && async=true
  cat > "$WORK/gravl-$mode.yaml" <<YAML
pg: { conninfo: "$CONN" }
repos: [ { name: local, type: posix, path: $WORK/repo-gravl-$mode } ]
compression: { type: zstd, level: 1 }
archive: { async: $async, spool_path: $WORK/spool-gravl-$mode }
parallel: 2
YAML
done
# pgBackRest configurations
for mode in sync async; do
  async=n; [ "$mode" = async ] && async=y
  cat > "$WORK/pgbackrest-$mode.conf" <<INI
[global]
repo1-path=$WORK/repo-pgbr-$mode
compress-type=zst
compress-level=1
process-max=2
archive-async=$async
spool-path=$WORK/spool-pgbr-$mode
lock-path=$WORK/lock-pgbr-$mode
log-path=$WORK
log-level-console=warn
log-level-file=off
start-fast=y

[bench]
pg1-path=$PGDATA
pg1-port=$port
pg1-socket-path=$WORK
INI
done
chmod 644 "$WORK"/*.yaml "$WORK"/*.conf
[ "$(id -u)" -eq 0 ] && chown -R postgres "$WORK"

as_pg env GRAVL_DR_CONFIG="$WORK/gravl-sync.yaml" "$BIN" stanza-create >/dev/null 2>&1
as_pg env GRAVL_DR_CONFIG="$WORK/gravl-async.yaml" "$BIN" stanza-create >/dev/null 2>&1
for mode in sync async; do
  as_pg pgbackrest --config="$WORK/pgbackrest-$mode.conf" --stanza=bench stanza-create >/dev/null
done

ready_count() { find "$PGDATA/pg_wal/archive_status" -name '*.ready' | wc -l; }
set_command() { psqlc "ALTER SYSTEM SET archive_command = '$1'" >/dev/null; psqlc "SELECT pg_reload_conf()" >/dev/null; }
wait_drained() {  # waits until no .ready files remain
  while [ "$(ready_count)" -gt 0 ]; do sleep 0.1; done
}
make_backlog() {  # archiving paused; writes $1 segments of WAL
  set_command ""
  for _ in $(seq "$1"); do
    psqlc "INSERT INTO pgbench_history SELECT 1,1,1,1,now(),repeat('x',22) FROM generate_series(1,60000)" >/dev/null
    psqlc "SELECT pg_switch_wal()" >/dev/null
  done
}

declare -A CMD
CMD[gravl-sync]="$BIN --config $WORK/gravl-sync.yaml archive-push %p"
CMD[gravl-async]="$BIN --config $WORK/gravl-async.yaml archive-push %p"
CMD[pgbackrest-sync]="pgbackrest --config=$WORK/pgbackrest-sync.conf --stanza=bench archive-push %p"
CMD[pgbackrest-async]="pgbackrest --config=$WORK/pgbackrest-async.conf --stanza=bench archive-push %p"
TOOLS=(gravl-async pgbackrest-async gravl-sync pgbackrest-sync)

declare -A DRAIN MAXB MEANB
for tool in "${TOOLS[@]}"; do
  echo "== $tool: drain $BACKLOG segments" >&2
  make_backlog "$BACKLOG"
  n=$(ready_count)
  t0=$(date +%s.%N)
  set_command "${CMD[$tool]}"
  wait_drained
  t1=$(date +%s.%N)
  DRAIN[$tool]=$(echo "$n / ($t1 - $t0)" | bc -l)

  echo "== $tool: pgbench -c 8 -T $DURATION" >&2
  "$PGBIN/pgbench" -c 8 -j 2 -T "$DURATION" -d "$CONN" >/dev/null 2>&1 &
  bench_pid=$!
  max=0; sum=0; samples=0
  while kill -0 "$bench_pid" 2>/dev/null; do
    c=$(ready_count); [ "$c" -gt "$max" ] && max=$c
    sum=$((sum + c)); samples=$((samples + 1)); sleep 0.5
  done
  wait "$bench_pid" || true
  MAXB[$tool]=$max
  MEANB[$tool]=$(echo "$sum / $samples" | bc -l)
  wait_drained   # with the tool still configured, then pause archiving for the next one
  set_command ""
done
failed=$(psqlc "SELECT failed_count FROM pg_stat_archiver")

printf '\n%-18s %14s %12s %12s\n' tool "drain seg/s" "max backlog" "mean backlog"
for tool in "${TOOLS[@]}"; do
  printf '%-18s %14.1f %12d %12.2f\n' "$tool" "${DRAIN[$tool]}" "${MAXB[$tool]}" "${MEANB[$tool]}"
done
printf '\nratio gravl-async / pgbackrest-async drain throughput: %.2f\n' \
  "$(echo "${DRAIN[gravl-async]} / ${DRAIN[pgbackrest-async]}" | bc -l)"
printf 'ratio gravl-sync / pgbackrest-sync drain throughput:   %.2f\n' \
  "$(echo "${DRAIN[gravl-sync]} / ${DRAIN[pgbackrest-sync]}" | bc -l)"
echo "archiver failures during the run: $failed"

mkdir -p bench/results
out="bench/results/archive-$(date -u +%Y%m%dT%H%M%SZ).json"
{
  echo "{\"duration_s\": $DURATION, \"backlog_segments\": $BACKLOG, \"archiver_failures\": $failed, \"nproc\": $(nproc), \"tools\": {"
  sep=""
  for tool in "${TOOLS[@]}"; do
    printf '%s"%s": {"drain_segments_per_s": %.2f, "max_backlog": %d, "mean_backlog": %.2f}' \
      "$sep" "$tool" "${DRAIN[$tool]}" "${MAXB[$tool]}" "${MEANB[$tool]}"
    sep=", "
  done
  echo "}}"
} > "$out"
echo "wrote $out"
