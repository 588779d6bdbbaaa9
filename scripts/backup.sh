#!/usr/bin/env bash
# Takes a backup now: gravl-dr backup (a full physical backup over the replication protocol, or
# a logical one), then the copy to the other region and retention as configured.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<HELP
Usage: $OPS_NAME [--full | --logical [--db NAME]...] [--region NAME] [--dry-run] [options]

Takes a backup now with gravl-dr backup, here or (--k8s) as a Job from the backup CronJob.

  --full             a full physical backup (the default)
  --logical          a logical backup (pg_dump of every database, or of each --db)
  --db NAME          with --logical: only this database (repeatable)
  --region NAME      into the repository of this region (gravl-dr --repo NAME; repositories
                     are named after their region); default: every configured repository
  --dry-run          check everything and print the plan; take no backup

$COMMON_HELP

Examples:
  $OPS_NAME --full --region eu-north-1 --dry-run
  $OPS_NAME --full --k8s
HELP
}

type=full
dbs=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --full) type=full; shift ;;
    --logical) type=logical; shift ;;
    --db) dbs+=(--db "$(need_value "$@")"); shift 2 ;;
    --region) OPS_GLOBAL+=(--repo "$(need_value "$@")"); shift 2 ;;
    --dry-run) OPS_ARGS+=(--dry-run); shift ;;
    --) shift; OPS_ARGS+=("$@"); break ;;
    *) common_option "$@" || die "unknown option '$1' (see --help)"; shift "$OPS_SHIFT" ;;
  esac
done
[ "${#dbs[@]}" -eq 0 ] || [ "$type" = logical ] || die "--db needs --logical"
OPS_ARGS=(backup --type "$type" "${dbs[@]}" "${OPS_ARGS[@]}")
run "$OPS_BACKUP_CRONJOB"
