#!/usr/bin/env bash
# Unplanned failover to another region: gravl-dr failover (assess, catch up from every
# repository, fence the old primary, promote, switch the endpoint, back up the new primary).
# Planned (the old primary is healthy): --switchover, which loses nothing.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<HELP
Usage: $OPS_NAME --to REGION [--max-loss BYTES|DURATION] [--force] [--switchover] [--dry-run] [options]

Promotes REGION's standby with gravl-dr failover (or gravl-dr switchover), here or (--k8s) as a
Job from the backup CronJob's pod template. Always run --dry-run first: it prints the
assessment (is the old primary down, what the standby and the repositories hold, the loss).

  --to REGION        the region whose standby becomes primary (as in the configuration's regions)
  --max-loss L       the most WAL (16MB, 0) or time (30s) this failover may lose without --force
  --force            promote even if the old primary answers, the loss exceeds --max-loss, or
                     fencing cannot be confirmed (each is recorded in the report)
  --switchover       planned: stop writes on the healthy primary, wait until the standby has
                     everything, promote it, turn the old primary into its standby (no loss)
  --dry-run          assess and print the plan; change nothing

$COMMON_HELP

Examples:
  $OPS_NAME --to us-east-1 --dry-run
  $OPS_NAME --to us-east-1 --max-loss 16MB
  $OPS_NAME --to us-east-1 --switchover
HELP
}

command=failover
options=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --to) options+=(--to "$(need_value "$@")"); shift 2 ;;
    --max-loss) OPS_GLOBAL+=(--max-loss "$(need_value "$@")"); shift 2 ;;
    --force|--dry-run) options+=("$1"); shift ;;
    --switchover) command=switchover; shift ;;
    --) shift; options+=("$@"); break ;;
    *) common_option "$@" || die "unknown option '$1' (see --help)"; shift "$OPS_SHIFT" ;;
  esac
done
case " ${options[*]-} " in *" --to "*) ;; *) die "--to REGION is required (see --help)" ;; esac
OPS_ARGS=("$command" "${options[@]}")
run "$OPS_BACKUP_CRONJOB"
