# shellcheck shell=bash
# shellcheck disable=SC2034  # globals for the scripts that source this file
# Shared by the operator scripts (scripts/*.sh): option parsing helpers, running gravl-dr here,
# and running it as a Kubernetes Job. Sourced, never run. The scripts hold no logic of their
# own: every decision (which backup, which target, whether a failover is safe) is the binary's.
#
# Environment:
#   GRAVL_DR          the gravl-dr binary (default: gravl-dr on PATH, else the build tree's)
#   GRAVL_DR_CONFIG   the configuration file (the binary reads it; --config overrides)
#   KUBECTL           the kubectl binary (default: kubectl)
#   GRAVL_NAMESPACE   the namespace of the Kubernetes objects (default: gravl-prod)

set -euo pipefail

OPS_NAME="$(basename "$0")"
OPS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OPS_K8S=""          # --k8s: run as a Job in the cluster
OPS_NAMESPACE="${GRAVL_NAMESPACE:-gravl-prod}"
OPS_CONTEXT=""      # --context: the kubectl context
OPS_CONFIG=""       # --config: the configuration file here (a Job uses the ConfigMap's)
OPS_GLOBAL=()       # gravl-dr options before the command (--config, --output, --log-level)
OPS_ARGS=()         # the command and its options
# Where the Kubernetes manifests mount the ConfigMap's gravl-dr.yaml (k8s/backup/).
OPS_POD_CONFIG="/etc/gravl-dr/gravl-dr.yaml"

die() {
  echo "$OPS_NAME: $*" >&2
  exit 2
}

# The value of option $1, which must be given as $2 (exit 2 with the option named if not).
need_value() {
  if [ "$#" -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then
    die "$1 needs a value (see --help)"
  fi
  printf '%s' "$2"
}

# Options every operator script takes. Returns 0 and sets OPS_SHIFT when $1 was one of them.
common_option() {
  OPS_SHIFT=1
  case "$1" in
    --config) OPS_CONFIG="$(need_value "$@")"; OPS_SHIFT=2 ;;
    --debug) OPS_GLOBAL+=(--log-level debug) ;;
    --json) OPS_GLOBAL+=(--output json) ;;
    --k8s) OPS_K8S=1 ;;
    --namespace|-n) OPS_NAMESPACE="$(need_value "$@")"; OPS_SHIFT=2 ;;
    --context) OPS_CONTEXT="$(need_value "$@")"; OPS_SHIFT=2 ;;
    *) return 1 ;;
  esac
}

COMMON_HELP="Common options:
  --config FILE      gravl-dr configuration (default: \$GRAVL_DR_CONFIG or /etc/gravl-dr/gravl-dr.yaml)
  --debug            debug logging (gravl-dr --log-level debug)
  --json             the result as JSON on stdout (gravl-dr --output json)
  --k8s              run it in the cluster as a Job (kubectl), and follow its log
  --namespace NS     with --k8s: the namespace (default: \$GRAVL_NAMESPACE or gravl-prod)
  --context CTX      with --k8s: the kubectl context
  -h, --help         this help
  -- ARGS...         pass ARGS to gravl-dr unchanged

Exit codes are gravl-dr's (docs/exit-codes.md); 2 also for a mistake in this script's options."

gravl_binary() {
  if [ -n "${GRAVL_DR:-}" ]; then
    printf '%s' "$GRAVL_DR"
  elif command -v gravl-dr >/dev/null 2>&1; then
    command -v gravl-dr
  elif [ -x "$OPS_ROOT/build/src/gravl-dr" ]; then
    printf '%s' "$OPS_ROOT/build/src/gravl-dr"
  else
    die "gravl-dr not found: put it on PATH or set GRAVL_DR=/path/to/gravl-dr"
  fi
}

kubectl_cmd() {
  local k=("${KUBECTL:-kubectl}" --namespace "$OPS_NAMESPACE")
  [ -z "$OPS_CONTEXT" ] || k+=(--context "$OPS_CONTEXT")
  "${k[@]}" "$@"
}

# "a", "b" -> ["a","b"] (JSON strings: backslashes and quotes escaped; no control characters
# are expected in gravl-dr arguments, and they are refused).
json_array() {
  local out="" a
  for a in "$@"; do
    case "$a" in *[[:cntrl:]]*) die "an argument holds a control character: refused" ;; esac
    a="${a//\\/\\\\}"
    a="${a//\"/\\\"}"
    out+="${out:+,}\"$a\""
  done
  printf '[%s]' "$out"
}

# Follows a Job's pod log to its end, then returns the Job's outcome: 0 if it succeeded, 1 if
# it failed (its exit code is in the log's last line and in `kubectl describe job`).
follow_job() {
  local job="$1"
  echo "$OPS_NAME: job/$job created in namespace $OPS_NAMESPACE; following its log" >&2
  kubectl_cmd wait --for=condition=ready "pod" --selector "job-name=$job" --timeout=600s >/dev/null ||
    echo "$OPS_NAME: the job's pod is not ready yet; see: kubectl -n $OPS_NAMESPACE describe job/$job" >&2
  kubectl_cmd logs --follow "job/$job" || true
  local status
  for _ in $(seq 1 60); do
    status="$(kubectl_cmd get "job/$job" -o 'jsonpath={.status.succeeded}/{.status.failed}')"
    case "$status" in
      1/*) echo "$OPS_NAME: job/$job succeeded" >&2; return 0 ;;
      */[1-9]*) ;;  # failed attempts; the Job may retry (backoffLimit)
    esac
    if kubectl_cmd get "job/$job" -o 'jsonpath={.status.conditions[?(@.type=="Failed")].status}' |
        grep -q True; then
      echo "$OPS_NAME: job/$job failed; see: kubectl -n $OPS_NAMESPACE describe job/$job" >&2
      return 1
    fi
    sleep 5
  done
  echo "$OPS_NAME: job/$job has not finished; follow it with: kubectl -n $OPS_NAMESPACE logs -f job/$job" >&2
  return 1
}

# Runs the command in OPS_ARGS as a Job made from CronJob $1's pod template, with its args
# replaced by this run's (the CronJob's image, identity, config and secrets are kept).
run_k8s_from_cronjob() {
  local cronjob="$1" job
  job="${cronjob}-manual-$(date -u +%Y%m%d%H%M%S)"
  local args
  args="$(json_array --config "$OPS_POD_CONFIG" "${OPS_GLOBAL[@]}" "${OPS_ARGS[@]}")"
  kubectl_cmd create job "$job" --from="cronjob/$cronjob" --dry-run=client -o json |
    kubectl_cmd patch --local -f - --type=json -o json \
      -p "[{\"op\":\"replace\",\"path\":\"/spec/template/spec/containers/0/args\",\"value\":$args}]" |
    kubectl_cmd create -f - >/dev/null
  follow_job "$job"
}

# Runs the command in OPS_ARGS here: the binary, exec'd (its exit code is the script's).
run_local() {
  local bin
  bin="$(gravl_binary)"
  [ -z "$OPS_CONFIG" ] || OPS_GLOBAL=(--config "$OPS_CONFIG" "${OPS_GLOBAL[@]}")
  exec "$bin" "${OPS_GLOBAL[@]}" "${OPS_ARGS[@]}"
}

# Here, or with --k8s as a Job from CronJob $1.
run() {
  if [ -n "$OPS_K8S" ]; then
    [ -z "$OPS_CONFIG" ] || die "--config names a file here; a Job reads the ConfigMap's ($OPS_POD_CONFIG)"
    run_k8s_from_cronjob "$1"
  else
    run_local
  fi
}

# The CronJobs of k8s/backup/ whose pod templates --k8s runs (names as the manifests give them).
OPS_BACKUP_CRONJOB="${GRAVL_BACKUP_CRONJOB:-gravl-dr-backup}"
OPS_DRILL_CRONJOB="${GRAVL_DRILL_CRONJOB:-gravl-dr-restore-test}"
