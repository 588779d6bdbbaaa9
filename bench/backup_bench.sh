#!/usr/bin/env bash
# Backup and restore benchmark: gravl-dr against pgBackRest (compress-type=zst, level 1,
# process-max=2) and pg_basebackup (--compress=client-zstd:1), in one run on one database:
# pgbench at scale $SCALE plus $RANDOM_MB MB of incompressible data in the data directory.
#
# Reports wall time, CPU time (user+sys), peak RSS of the tool's process and repository
# size, for backup and restore, and the ratios the project targets:
#   backup wall <= 1.3x pg_basebackup and <= 0.5x pgBackRest; restore wall <= 0.8x
#   pgBackRest; peak memory <= 256 MB; repository size <= pgBackRest's.
# Peak RSS is that of the command's own process: pgBackRest's worker processes are not
# included (ru_maxrss of the process tree is not additive), so its figure is a lower bound.
#
# Every step runs ROUNDS (default 3) times; the figures are medians. After the backups and
# restores, each tool verifies its whole repository once (gravl-dr verify, pgbackrest verify).
#
# CACHE=warm keeps the page cache between runs (a busy server's normal state: the data is in
# memory) instead of dropping it before every run (CACHE=cold, the default); the data
# directory is read once beforehand so the first run is warm too.
#
# TABLES=N adds N small tables (one row, a primary key: four files each) for the many-files
# case, e.g. TABLES=50000 (about 200,000 files): memory must stay bounded whatever the number
# of files.
#
# Usage: [ROUNDS=3] [TABLES=0] [CONNECT=socket|tcp] [CACHE=cold|warm] bench/backup_bench.sh [SCALE=100] [RANDOM_MB=500]  (as root or postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-100}
RANDOM_MB=${2:-500}
TABLES=${TABLES:-0}
BIN="$PWD/build/src/gravl-dr"
PGBIN="$(pg_config --bindir)"
[ -x "$BIN" ] || { echo "build first: ./dev/build.sh" >&2; exit 1; }

as_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
WORK="$(mktemp -d /tmp/gravl-backupbench-XXXXXX)"
chmod 755 "$WORK"; [ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
# The server's user runs archive-push/archive-get: give it a copy it can read.
mkdir -p "$WORK/bin" && cp "$BIN" "$WORK/bin/gravl-dr" && chmod 755 "$WORK/bin" && BIN="$WORK/bin/gravl-dr"
PGDATA="$WORK/data"
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
port=55600; while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
# gravl-dr and pg_basebackup reach the server the way pgBackRest does (pg1-socket-path): over
# its Unix socket, cheaper for both ends than loopback TCP. CONNECT=tcp for 127.0.0.1.
if [ "${CONNECT:-socket}" = tcp ]; then
  CONN="host=127.0.0.1 port=$port user=postgres dbname=postgres"
else
  CONN="host=$WORK port=$port user=postgres dbname=postgres"
fi

echo "== preparing: pgbench scale $SCALE + $RANDOM_MB MB incompressible" >&2
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null
cat >> "$PGDATA/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
max_wal_size = '4GB'
CONF
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/server.log" -w start >/dev/null
"$PGBIN/pgbench" -i -s "$SCALE" -q -d "$CONN" >/dev/null 2>&1
as_pg head -c "$((RANDOM_MB * 1024 * 1024))" /dev/urandom > /dev/null  # warm
as_pg sh -c "head -c $((RANDOM_MB * 1024 * 1024)) /dev/urandom > '$PGDATA/incompressible.bin'"
if [ "$TABLES" -gt 0 ]; then
  echo "== preparing: $TABLES small tables" >&2
  for ((first = 1; first <= TABLES; first += 500)); do
    last=$((first + 499 < TABLES ? first + 499 : TABLES))
    "$PGBIN/psql" -XAtq -d "$CONN" -c "DO \$\$ BEGIN FOR i IN $first..$last LOOP
      EXECUTE format('CREATE TABLE many_%s (id int PRIMARY KEY, v text); INSERT INTO many_%s VALUES (1, ''x'')', i, i);
      END LOOP; END \$\$" >/dev/null
  done
fi
"$PGBIN/psql" -XAtq -d "$CONN" -c "CHECKPOINT" >/dev/null
FILES=$(find "$PGDATA" -type f | wc -l)
DBSIZE=$(du -sb "$PGDATA" | cut -f1)

cat > "$WORK/gravl.yaml" <<YAML
pg: { conninfo: "$CONN" }
repos: [ { name: local, type: posix, path: $WORK/repo-gravl } ]
compression: { type: zstd, level: 1 }
parallel: 2
YAML
cat > "$WORK/pgbackrest.conf" <<INI
[global]
repo1-path=$WORK/repo-pgbr
compress-type=zst
compress-level=1
process-max=2
start-fast=y
archive-check=n
log-path=$WORK
lock-path=$WORK/lock
spool-path=$WORK/spool
log-level-console=warn
log-level-file=off

[bench]
pg1-path=$PGDATA
pg1-port=$port
pg1-socket-path=$WORK
INI
chmod 644 "$WORK"/gravl.yaml "$WORK"/pgbackrest.conf
[ "$(id -u)" -eq 0 ] && chown -R postgres "$WORK"
as_pg env GRAVL_DR_CONFIG="$WORK/gravl.yaml" "$BIN" stanza-create >/dev/null 2>&1
as_pg pgbackrest --config="$WORK/pgbackrest.conf" --stanza=bench stanza-create >/dev/null

# Every step runs ROUNDS times, the tools in rotating order (each goes first once: the first
# run after a pause is often slower on a shared VM); the tables report medians.
ROUNDS=${ROUNDS:-3}
TOOLS=(gravl pgbackrest pg_basebackup)
declare -A WALLS CPUS RSSS SIZE
CACHE=${CACHE:-cold}
measure() {  # name cmd...: runs as postgres under /usr/bin/time, caches dropped unless warm
  local name=$1; shift
  sync; sleep 1
  [ "$CACHE" = warm ] || echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  as_pg /usr/bin/time -f "%e %U %S %M" -o "$WORK/time-$name" "$@" >/dev/null 2>"$WORK/err-$name" || {
    echo "$name failed:"; cat "$WORK/err-$name"; exit 1; }
  read -r wall user sys rss < "$WORK/time-$name"
  WALLS[$name]+="$wall "; CPUS[$name]+="$(echo "$user + $sys" | bc -l | awk '{printf "%.2f", $1}') "; RSSS[$name]+="$((rss / 1024)) "
}
# shellcheck disable=SC2086  # $1 is a list of numbers, split on purpose
median() { printf '%s\n' $1 | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
backup() {
  case $1 in
    gravl) measure backup-gravl env GRAVL_DR_CONFIG="$WORK/gravl.yaml" "$BIN" backup --type full ;;
    pgbackrest) measure backup-pgbackrest pgbackrest --config="$WORK/pgbackrest.conf" --stanza=bench \
                  --type=full backup ;;
    pg_basebackup) rm -rf "$WORK/repo-basebackup"
                   measure backup-pg_basebackup "$PGBIN/pg_basebackup" -d "$CONN" -D "$WORK/repo-basebackup" \
                     -Ft -X fetch --compress=client-zstd:1 --checkpoint=fast ;;
  esac
}
restore() {
  case $1 in
    gravl) rm -rf "$WORK/r-gravl"
           measure restore-gravl env GRAVL_DR_CONFIG="$WORK/gravl.yaml" "$BIN" restore --pgdata "$WORK/r-gravl" \
             --target immediate ;;
    pgbackrest) rm -rf "$WORK/r-pgbr"
                measure restore-pgbackrest pgbackrest --config="$WORK/pgbackrest.conf" --stanza=bench \
                  --pg1-path="$WORK/r-pgbr" --type=immediate restore ;;
    pg_basebackup) rm -rf "$WORK/r-bb"; mkdir -p "$WORK/r-bb"; [ "$(id -u)" -eq 0 ] && chown postgres "$WORK/r-bb"
                   measure restore-pg_basebackup sh -c "cd '$WORK/r-bb' && tar -I zstd -xf '$WORK/repo-basebackup/base.tar.zst'" ;;
  esac
}

if [ "$CACHE" = warm ]; then
  echo "== warming the page cache with the data directory" >&2
  find "$PGDATA" -type f -exec cat {} + > /dev/null
fi
for ((round = 0; round < ROUNDS; round++)); do
  echo "== backups, round $((round + 1)) of $ROUNDS" >&2
  for i in 0 1 2; do backup "${TOOLS[$(((i + round) % 3))]}"; done
  if [ "$round" -eq 0 ]; then  # one backup each so far
    SIZE[gravl]=$(du -sb "$WORK/repo-gravl" | cut -f1)
    SIZE[pgbackrest]=$(du -sb "$WORK/repo-pgbr" | cut -f1)
    SIZE[pg_basebackup]=$(du -sb "$WORK/repo-basebackup" | cut -f1)
  fi
done
for ((round = 0; round < ROUNDS; round++)); do
  echo "== restores, round $((round + 1)) of $ROUNDS" >&2
  for i in 0 1 2; do restore "${TOOLS[$(((i + round) % 3))]}"; done
done
echo "== verify (whole repositories: $ROUNDS backups each, and the WAL)" >&2
if [ "$CACHE" = warm ]; then  # both repositories in memory (gravl-dr writes bypass the cache)
  find "$WORK/repo-gravl" "$WORK/repo-pgbr" -type f -exec cat {} + > /dev/null
fi
measure verify-gravl env GRAVL_DR_CONFIG="$WORK/gravl.yaml" "$BIN" verify
measure verify-pgbackrest pgbackrest --config="$WORK/pgbackrest.conf" --stanza=bench verify
declare -A WALL CPU RSS
for k in "${!WALLS[@]}"; do
  WALL[$k]=$(median "${WALLS[$k]}"); CPU[$k]=$(median "${CPUS[$k]}"); RSS[$k]=$(median "${RSSS[$k]}")
done

echo "== restore drill (gravl-dr test-restore)" >&2
as_pg env GRAVL_DR_CONFIG="$WORK/gravl.yaml" "$BIN" test-restore --target immediate --output json \
  > "$WORK/drill.json" 2>"$WORK/err-drill" || { echo "drill failed:"; cat "$WORK/drill.json" "$WORK/err-drill"; exit 1; }
drill() { python3 -c "import json,sys; d=json.load(open('$WORK/drill.json')); print(d$1)"; }

mb() { echo "$1 / 1048576" | bc; }
printf '\ndatabase: %s MB, %s files (pgbench scale %s + %s MB incompressible + %s tables), %s cores; %s cache, %s; medians of %s runs\n\n' \
  "$(mb "$DBSIZE")" "$FILES" "$SCALE" "$RANDOM_MB" "$TABLES" "$(nproc)" "$CACHE" "${CONNECT:-socket}" "$ROUNDS"
printf '%-22s %9s %9s %10s %12s\n' step "wall s" "cpu s" "peak MB" "repo MB"
for t in gravl pgbackrest pg_basebackup; do
  printf '%-22s %9s %9.1f %10s %12s\n' "backup $t" "${WALL[backup-$t]}" "${CPU[backup-$t]}" "${RSS[backup-$t]}" "$(mb "${SIZE[$t]}")"
done
for t in gravl pgbackrest pg_basebackup; do
  printf '%-22s %9s %9.1f %10s\n' "restore $t" "${WALL[restore-$t]}" "${CPU[restore-$t]}" "${RSS[restore-$t]}"
done
for t in gravl pgbackrest; do
  printf '%-22s %9s %9.1f %10s\n' "verify $t" "${WALL[verify-$t]}" "${CPU[verify-$t]}" "${RSS[verify-$t]}"
done
printf '\nrestore drill (test-restore --target immediate): measured RTO %.1f s = download %.1f s + recovery %.1f s; validation (amcheck etc.) %.1f s; total %.1f s\n' \
  "$(drill "['rto_s']")" "$(drill "['timings']['download_s']")" "$(drill "['timings']['recovery_s']")" \
  "$(drill "['timings']['validation_s']")" "$(drill "['timings']['total_s']")"
r() { echo "scale=2; $1 / $2" | bc -l; }
echo
echo "backup wall  gravl/pg_basebackup: $(r "${WALL[backup-gravl]}" "${WALL[backup-pg_basebackup]}")  (target <= 1.3)"
echo "backup wall  gravl/pgbackrest:    $(r "${WALL[backup-gravl]}" "${WALL[backup-pgbackrest]}")  (target <= 0.5)"
echo "restore wall gravl/pgbackrest:    $(r "${WALL[restore-gravl]}" "${WALL[restore-pgbackrest]}")  (target <= 0.8)"
echo "verify wall  gravl/pgbackrest:    $(r "${WALL[verify-gravl]}" "${WALL[verify-pgbackrest]}")  (target <= 1.0)"
echo "repo size    gravl/pgbackrest:    $(r "${SIZE[gravl]}" "${SIZE[pgbackrest]}")  (target <= 1.0)"
echo "peak memory  gravl backup/restore/verify: ${RSS[backup-gravl]} / ${RSS[restore-gravl]} / ${RSS[verify-gravl]} MB  (target <= 256)"

mkdir -p bench/results
out="bench/results/backup-$(date -u +%Y%m%dT%H%M%SZ).json"
{
  printf '{"cache": "%s", "connect": "%s", "scale": %s, "random_mb": %s, "tables": %s, "files": %s, "db_bytes": %s, "nproc": %s, "rounds": %s, "results": {' \
    "$CACHE" "${CONNECT:-socket}" "$SCALE" "$RANDOM_MB" "$TABLES" "$FILES" "$DBSIZE" "$(nproc)" "$ROUNDS"
  sep=""
  for k in "${!WALL[@]}"; do
    printf '%s"%s": {"wall_s": %s, "cpu_s": %s, "peak_rss_mb": %s, "runs_wall_s": [%s]}' "$sep" "$k" \
      "${WALL[$k]}" "${CPU[$k]}" "${RSS[$k]}" "$(echo "${WALLS[$k]}" | tr ' ' ',')"
    sep=", "
  done
  printf '}, "repo_bytes": {"gravl": %s, "pgbackrest": %s, "pg_basebackup": %s}, ' "${SIZE[gravl]}" "${SIZE[pgbackrest]}" "${SIZE[pg_basebackup]}"
  printf '"drill": {"rto_s": %s, "timings": %s}}\n' "$(drill "['rto_s']")" "$(python3 -c "import json; print(json.dumps(json.load(open('$WORK/drill.json'))['timings']))")"
} > "$out"
echo "wrote $out"
