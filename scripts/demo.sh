#!/usr/bin/env bash
# The main job on the embedded default: a throwaway local PostgreSQL 15 cluster and a local
# directory repository. Everything lives in one temporary directory, removed at the end
# (set GRAVL_DEMO_KEEP=1 to keep it), and the server is stopped also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/build/src/gravl-dr"
[ -x "$BIN" ] || { echo "demo: $BIN is missing; run ./scripts/build.sh" >&2; exit 1; }
PGBIN="$(pg_config --bindir)"

as_server() {  # PostgreSQL refuses to run as root
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

WORK="$(mktemp -d /tmp/gravl-demo-XXXXXX)"
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
PGDATA="$WORK/pgdata"
cleanup() {
  as_server "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
  if [ "${GRAVL_DEMO_KEEP:-0}" = 1 ]; then echo "demo: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

port=54321
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "throwaway PostgreSQL 15 cluster on 127.0.0.1:$port"
as_server "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
as_server "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$WORK" start >/dev/null
echo "running: $PGDATA"

export GRAVL_DR_PG_CONNINFO="host=127.0.0.1 port=$port user=postgres dbname=postgres"
export GRAVL_DR_REPO_PATH="$WORK/repo"
export GRAVL_DR_CONFIG=/dev/null

step "gravl-dr stanza-create (local repository $GRAVL_DR_REPO_PATH)"
"$BIN" stanza-create

step "gravl-dr info"
"$BIN" info

step "gravl-dr info --output json"
"$BIN" info --output json

step "a second cluster is refused on the same repository"
OTHER="$WORK/other"
as_server "$PGBIN/initdb" -D "$OTHER" -U postgres --auth=trust >/dev/null
as_server "$PGBIN/pg_ctl" -D "$OTHER" -l "$WORK/other.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$((port + 1000)) -c unix_socket_directories=$WORK" start >/dev/null
set +e
GRAVL_DR_PG_CONNINFO="host=127.0.0.1 port=$((port + 1000)) user=postgres" "$BIN" stanza-create
rc=$?
set -e
as_server "$PGBIN/pg_ctl" -D "$OTHER" -m fast -w stop >/dev/null
[ "$rc" -eq 5 ] || { echo "demo: expected exit code 5 (conflict), got $rc" >&2; exit 1; }
echo "(refused with exit code $rc, as documented)"

step "demo finished"
