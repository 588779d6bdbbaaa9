#!/usr/bin/env bash
# A restore drill now: gravl-dr test-restore restores a backup into a scratch directory, starts
# a throwaway PostgreSQL, recovers, validates, reports the measured RTO and cleans up.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<HELP
Usage: $OPS_NAME [--set LABEL] [--target-time TIME] [--region NAME] [--keep] [options]

Runs a restore drill with gravl-dr test-restore, here or (--k8s) as a Job from the weekly
restore-test CronJob. Exit 0: the drill passed; 12: a check failed (the report says which).

  --set LABEL        drill this backup (default: the newest)
  --target-time T    recover to this time, e.g. '2026-03-04 02:00:00Z' (default: the end of
                     the archived WAL)
  --target WHAT      immediate: recover only to the backup's consistency point; latest (default)
  --region NAME      from the repository of this region (gravl-dr --repo NAME)
  --keep             keep the restored directory for inspection
  --dry-run          check the programs and the scratch space, choose the backup, check the
                     target; restore nothing

$COMMON_HELP

Examples:
  $OPS_NAME --region us-east-1
  $OPS_NAME --set 20260301T020000Z-full --debug --keep
HELP
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --set|--target-time|--target) OPS_ARGS+=("$1" "$(need_value "$@")"); shift 2 ;;
    --region) OPS_GLOBAL+=(--repo "$(need_value "$@")"); shift 2 ;;
    --keep|--dry-run) OPS_ARGS+=("$1"); shift ;;
    --) shift; OPS_ARGS+=("$@"); break ;;
    *) common_option "$@" || die "unknown option '$1' (see --help)"; shift "$OPS_SHIFT" ;;
  esac
done
OPS_ARGS=(test-restore "${OPS_ARGS[@]}")
run "$OPS_DRILL_CRONJOB"
