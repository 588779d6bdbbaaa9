#!/usr/bin/env bash
# The main job on the embedded default: a throwaway local PostgreSQL 15 cluster and a local
# directory repository. Everything lives in one temporary directory, removed at the end
# (set GRAVL_DEMO_KEEP=1 to keep it), and the server is stopped also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILT="$PWD/build/src/gravl-dr"
[ -x "$BUILT" ] || { echo "demo: $BUILT is missing; run ./dev/build.sh" >&2; exit 1; }
PGBIN="$(pg_config --bindir)"

as_server() {  # PostgreSQL refuses to run as root; run from / (the checkout may be private)
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

WORK="$(mktemp -d /tmp/gravl-demo-XXXXXX)"
chmod 755 "$WORK"
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
# archive_command and restore_command run as the server's user: give it its own copy of
# the binary (the checkout, e.g. under /root, may not be readable by that user).
mkdir -p "$WORK/bin" && cp "$BUILT" "$WORK/bin/gravl-dr" && chmod 755 "$WORK/bin" "$WORK/bin/gravl-dr"
BIN="$WORK/bin/gravl-dr"
PGDATA="$WORK/pgdata"
cleanup() {
  as_server "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
  as_server "$PGBIN/pg_ctl" -D "$WORK/restored" -m immediate stop >/dev/null 2>&1 || true
  as_server "$PGBIN/pg_ctl" -D "$WORK/other" -m immediate stop >/dev/null 2>&1 || true
  if [ "${GRAVL_DEMO_KEEP:-0}" = 1 ]; then echo "demo: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

port=54321
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "throwaway PostgreSQL 15 cluster on 127.0.0.1:$port"
as_server "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
CONFIG="$WORK/gravl-dr.yaml"
cat > "$CONFIG" <<YAML
stanza: main
pg:
  conninfo: "host=127.0.0.1 port=$port user=postgres dbname=postgres"
repos:
  - { name: primary-region, type: posix, path: $WORK/repo-eu }
  - { name: second-region, type: posix, path: $WORK/repo-us }
compression: { type: zstd, level: 1 }
archive: { async: true, spool_path: $WORK/spool }
parallel: 2
retention: { daily: 30, monthly: 12, yearly: 7, pitr_window: 7d }   # the strategy's policy
YAML
chmod 644 "$CONFIG"
[ "$(id -u)" -eq 0 ] && chown postgres "$CONFIG"
cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$WORK'
archive_mode = on
archive_command = '$BIN --config $CONFIG archive-push %p'
wal_keep_size = '1GB'
CONF
as_server "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/server.log" -w start >/dev/null
echo "running: $PGDATA (archive_command = gravl-dr archive-push %p)"

export GRAVL_DR_CONFIG="$CONFIG"
gravl() { as_server "$BIN" "$@"; }   # as the server's user, like archive_command

step "gravl-dr stanza-create (two local repositories standing in for two regions)"
gravl stanza-create

step "gravl-dr check (settings, then a WAL switch that must reach every repository)"
gravl check

step "write load: pgbench -i -s 5, then 5 s of pgbench"
"$PGBIN/pgbench" -i -s 5 -q -d "host=127.0.0.1 port=$port user=postgres" >/dev/null 2>&1
"$PGBIN/pgbench" -c 4 -T 5 -d "host=127.0.0.1 port=$port user=postgres" 2>/dev/null | grep -E "^tps" || true
seg=$("$PGBIN/psql" -XAtq -d "host=127.0.0.1 port=$port user=postgres" -c "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 100); do
  last=$("$PGBIN/psql" -XAtq -d "host=127.0.0.1 port=$port user=postgres" -c "SELECT coalesce(last_archived_wal,'') FROM pg_stat_archiver")
  [[ "$last" > "$seg" || "$last" == "$seg" ]] && break
  sleep 0.2
done
"$PGBIN/psql" -XAtq -d "host=127.0.0.1 port=$port user=postgres" \
  -c "SELECT 'archived ' || archived_count || ' files, ' || failed_count || ' failures' FROM pg_stat_archiver"

step "gravl-dr info"
gravl info

step "gravl-dr archive-get $seg (from the second region only), compared with pg_wal"
gravl --repo second-region archive-get "$seg" "$WORK/restored-$seg"
cmp "$WORK/restored-$seg" "$PGDATA/pg_wal/$seg" && echo "byte-identical"

step "gravl-dr backup --type full (over the replication protocol: no agent on the host)"
gravl backup --type full

step "gravl-dr repo-sync (the backup copied to the second region, every object verified)"
gravl repo-sync --from primary-region --to second-region

PSQL=("$PGBIN/psql" -XAtq -d "host=127.0.0.1 port=$port user=postgres")
step "new orders after the backup, then an accident"
"${PSQL[@]}" -c "CREATE TABLE orders(id int primary key, item text)"
"${PSQL[@]}" -c "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 1000) g"
sleep 1
BEFORE=$("${PSQL[@]}" -c "SELECT now()")
sleep 1
"${PSQL[@]}" -c "DROP TABLE orders"
echo "orders committed before $BEFORE, then: DROP TABLE orders"
seg=$("${PSQL[@]}" -c "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 100); do
  last=$("${PSQL[@]}" -c "SELECT coalesce(last_archived_wal,'') FROM pg_stat_archiver")
  [[ "$last" > "$seg" || "$last" == "$seg" ]] && break
  sleep 0.2
done

step "gravl-dr restore --target-time '$BEFORE' (point-in-time recovery into a new directory)"
RESTORED="$WORK/restored"
gravl restore --pgdata "$RESTORED" --target-time "$BEFORE"
rport=$((port + 2000))
as_server "$PGBIN/pg_ctl" -D "$RESTORED" -l "$WORK/restored.log" -w \
  -o "-c port=$rport -c listen_addresses=127.0.0.1 -c unix_socket_directories=$WORK -c archive_mode=off" start >/dev/null
RPSQL=("$PGBIN/psql" -XAtq -d "host=127.0.0.1 port=$rport user=postgres")
for _ in $(seq 300); do
  [ "$("${RPSQL[@]}" -c "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ] && break
  sleep 0.2
done
echo "orders in the restored cluster: $("${RPSQL[@]}" -c "SELECT count(*) FROM orders")"
as_server "$PGBIN/pg_ctl" -D "$RESTORED" -m fast -w stop >/dev/null

step "gravl-dr verify (re-read every object; recoverable window per backup)"
gravl --repo primary-region verify

step "gravl-dr test-restore (restore drill: ephemeral server, validations, measured RTO)"
gravl --repo primary-region test-restore

step "gravl-dr info (backups, WAL, last drill)"
gravl --repo primary-region info

step "gravl-dr expire --dry-run (the retention policy: what stays, why, and until when)"
gravl --repo primary-region expire --dry-run

step "gravl-dr exporter --textfile (the Prometheus metrics the exporter serves, written once)"
gravl exporter --textfile "$WORK/gravl-dr.prom" >/dev/null
grep -E '^gravl_(backups|backup_runs_total|drill_last_success|recoverable_window_seconds|rpo_estimate_seconds|wal_archive_lag_seconds|postgres_up|repository_up)[{ ]' \
  "$WORK/gravl-dr.prom"

step "a second cluster is refused on the same repository"
OTHER="$WORK/other"
as_server "$PGBIN/initdb" -D "$OTHER" -U postgres --auth=trust >/dev/null
as_server "$PGBIN/pg_ctl" -D "$OTHER" -l "$WORK/other.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$((port + 1000)) -c unix_socket_directories=$WORK" start >/dev/null
set +e
GRAVL_DR_PG_CONNINFO="host=127.0.0.1 port=$((port + 1000)) user=postgres" gravl stanza-create
rc=$?
set -e
as_server "$PGBIN/pg_ctl" -D "$OTHER" -m fast -w stop >/dev/null
[ "$rc" -eq 5 ] || { echo "demo: expected exit code 5 (conflict), got $rc" >&2; exit 1; }
echo "(refused with exit code $rc, as documented)"

step "demo finished"
