#!/usr/bin/env bash
# Failback to the recovered region: gravl-dr failback rebuilds its old primary as a standby of
# the current one (pg_rewind, or a delta restore from the repository), waits until it streams,
# then switches over to it without loss.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<HELP
Usage: $OPS_NAME --to REGION [--no-switchover] [--restore-only] [--force] [--dry-run] [options]

Fails back to REGION with gravl-dr failback, here (it needs the region's data directory, so run
it on that region's database host) or (--k8s) as a Job. Run --dry-run first.

  --to REGION        the region to fail back to (its old primary)
  --no-switchover    stop once REGION's server streams again (switch over later with
                     failover.sh --to REGION --switchover)
  --restore-only     rebuild by a delta restore from the repository, without trying pg_rewind
  --force            rebuild even over a forked timeline (its commits are reported, its WAL kept
                     in quarantine)
  --dry-run          assess and print the plan; change nothing

$COMMON_HELP

Examples:
  $OPS_NAME --to eu-north-1 --dry-run
  $OPS_NAME --to eu-north-1
HELP
}

options=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --to) options+=(--to "$(need_value "$@")"); shift 2 ;;
    --no-switchover|--restore-only|--force|--dry-run) options+=("$1"); shift ;;
    --) shift; options+=("$@"); break ;;
    *) common_option "$@" || die "unknown option '$1' (see --help)"; shift "$OPS_SHIFT" ;;
  esac
done
case " ${options[*]-} " in *" --to "*) ;; *) die "--to REGION is required (see --help)" ;; esac
OPS_ARGS=(failback "${options[@]}")
run "$OPS_BACKUP_CRONJOB"
