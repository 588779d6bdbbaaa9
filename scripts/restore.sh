#!/usr/bin/env bash
# Restores a backup (point in time, or a whole cluster): gravl-dr restore chooses the backup
# that reaches the target, restores and verifies every file, and writes the recovery settings;
# starting the server replays the archived WAL to the target.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<HELP
Usage: $OPS_NAME --pgdata DIR [--target-time TIME | --target-lsn LSN | --target-xid XID |
                  --target-name NAME | --target immediate|latest] [--set LABEL] [options]

Restores with gravl-dr restore into DIR, here or (--k8s) as a Job from the restore Job
template k8s/backup/postgres-restore-job.yaml (into its PersistentVolumeClaim). Then start
PostgreSQL on DIR: it recovers to the target and promotes (--target-action).

  --pgdata DIR          the data directory to create (here; with --k8s the template's)
  --target-time T       recover to this time; a zone is required: '2026-03-04 02:00:00Z'
  --target-lsn LSN      recover to this WAL position
  --target-xid XID      recover to the commit of this transaction
  --target-name NAME    recover to this restore point
  --target WHAT         'immediate' (the backup's consistency point) or 'latest' (default)
  --target-exclusive    stop just before the target instead of just after it
  --target-action A     promote (default), pause or shutdown at the target
  --set LABEL           restore this backup (default: the newest that reaches the target)
  --region NAME         from the repository of this region (gravl-dr --repo NAME)
  --archive-mode M      off (default: a copy never archives) or preserve (it stays the primary)
  --delta               restore over an existing stopped data directory, rewriting only what
                        differs
  --dry-run             choose the backup and check the target only
  --name NAME           with --k8s: the Job's name (default: gravl-dr-restore-<time>)

$COMMON_HELP

Examples:
  $OPS_NAME --pgdata /var/lib/postgresql/15/recovery --target-time '2026-03-04 02:00:00Z' --dry-run
  $OPS_NAME --k8s --target-time '2026-03-04 02:00:00Z' --debug
HELP
}

pgdata=""
name="gravl-dr-restore-$(date -u +%Y%m%d%H%M%S)"
options=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --pgdata) pgdata="$(need_value "$@")"; shift 2 ;;
    --target-time|--target-lsn|--target-xid|--target-name|--target|--target-action|--set|--target-timeline|--archive-mode)
      options+=("$1" "$(need_value "$@")"); shift 2 ;;
    --target-exclusive|--delta|--dry-run) options+=("$1"); shift ;;
    --region) OPS_GLOBAL+=(--repo "$(need_value "$@")"); shift 2 ;;
    --name) name="$(need_value "$@")"; shift 2 ;;
    --) shift; options+=("$@"); break ;;
    *) common_option "$@" || die "unknown option '$1' (see --help)"; shift "$OPS_SHIFT" ;;
  esac
done

if [ -z "$OPS_K8S" ]; then
  [ -n "$pgdata" ] || die "--pgdata DIR is required (see --help)"
  OPS_ARGS=(restore --pgdata "$pgdata" "${options[@]}")
  run_local
fi

# --k8s: the template (k8s/backup/postgres-restore-job.yaml: the PersistentVolumeClaim
# gravl-dr-restore must exist) with its name set, and the restore container's args replaced by
# ours.
[ -z "$OPS_CONFIG" ] || die "--config names a file here; a Job reads the ConfigMap's ($OPS_POD_CONFIG)"
[ -z "$pgdata" ] || die "--pgdata is the template's with --k8s (its volume); leave it out"
case "$name" in
  *[!a-z0-9-]*|-*|*-|"") die "--name must be a DNS label (lower-case letters, digits, '-'): $name" ;;
esac
# The template's restore container (its first) and the data directory on its volume.
OPS_RESTORE_ARGS_PATH=/spec/template/spec/containers/0/args
OPS_RESTORE_PGDATA=/restore/data
template="${GRAVL_RESTORE_TEMPLATE:-$OPS_ROOT/k8s/backup/postgres-restore-job.yaml}"
[ -r "$template" ] || die "the restore Job template $template is not readable (set GRAVL_RESTORE_TEMPLATE)"
OPS_ARGS=(restore --pgdata "$OPS_RESTORE_PGDATA" "${options[@]}")
args="$(json_array --config "$OPS_POD_CONFIG" "${OPS_GLOBAL[@]}" "${OPS_ARGS[@]}")"
sed "s/\${RESTORE_JOB_NAME}/$name/g" "$template" |
  kubectl_cmd patch --local -f - --type=json -o json \
    -p "[{\"op\":\"replace\",\"path\":\"$OPS_RESTORE_ARGS_PATH\",\"value\":$args}]" |
  kubectl_cmd create -f - >/dev/null
follow_job "$name"
