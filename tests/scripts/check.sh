#!/usr/bin/env bash
# The operator scripts (scripts/*.sh) and every other shell script of the project:
#   1. shellcheck (Debian's) finds nothing in any of them;
#   2. each operator script answers --help, refuses an unknown option (exit 2), and accepts
#      every option its --help lists (run against a stand-in gravl-dr that records its
#      arguments) -- and passes them on as gravl-dr options;
#   3. --k8s runs the command as a Job made from the right CronJob, with the arguments as a
#      JSON array (quotes escaped), through kubectl (a stand-in that records its calls and
#      the objects given to it: no Kubernetes API server here);
#   4. the checks catch planted mistakes: a broken shell line, and an option removed from a
#      script's parser while --help still offers it. If a planted mistake passes, this fails.
# The real binary runs the scripts in the runbooks' end-to-end tests (tests/e2e).
# Usage: check.sh SOURCE_DIR
set -euo pipefail

src="${1:?usage: check.sh SOURCE_DIR}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

command -v shellcheck >/dev/null ||
  { echo "FAIL: shellcheck not found; install it: dev/install-deps.sh (Debian: apt-get install shellcheck)" >&2; exit 1; }

# A gravl-dr that records its arguments, one per line.
cat > "$work/gravl-dr" <<'STUB'
#!/usr/bin/env bash
printf '%s\n' "$@" > "$GRAVL_ARGS_FILE"
STUB
# A kubectl that records its calls and answers as the API server would for a Job that succeeds.
cat > "$work/kubectl" <<'STUB'
#!/usr/bin/env bash
printf '%s\n' "$*" >> "$KUBECTL_DIR/calls"
args=" $* "
case "$args" in
  *" create job "*"--dry-run=client"*)
    name="$(printf '%s\n' "$@" | awk 'prev == "job" { print; exit } { prev = $0 }')"
    from="$(printf '%s\n' "$@" | sed -n 's/^--from=//p')"
    printf '{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"%s","annotations":{"from":"%s"}},' "$name" "$from"
    printf '"spec":{"template":{"spec":{"containers":[{"name":"gravl-dr","args":["from-the-cronjob"]}]}}}}\n'
    ;;
  *" patch "*)
    printf '%s\n' "$@" | awk 'prev == "-p" { print; exit } { prev = $0 }' > "$KUBECTL_DIR/patch.json"
    cat
    ;;
  *" create -f - "*) cat > "$KUBECTL_DIR/created.json" ;;
  *" get "*) printf '1/' ;;
  *" logs "*) echo "the job's log" ;;
  *) ;;
esac
STUB
chmod +x "$work/gravl-dr" "$work/kubectl"
export GRAVL_DR="$work/gravl-dr" GRAVL_ARGS_FILE="$work/args" KUBECTL="$work/kubectl" KUBECTL_DIR="$work/k"
mkdir -p "$work/k"

# Arguments each script needs besides the option under test.
base_args() {
  case "$(basename "$1")" in
    restore.sh) echo "--pgdata /srv/x" ;;
    failover.sh|failback.sh) echo "--to us-east-1" ;;
    *) echo "" ;;
  esac
}

# Checks 2 on the scripts in $1; prints problems, returns how many.
check_options() {
  local dir="$1" problems=0 script help opt value extra
  for script in "$dir"/backup.sh "$dir"/restore.sh "$dir"/test-restore.sh "$dir"/failover.sh "$dir"/failback.sh; do
    [ -x "$script" ] || { echo "$script: missing or not executable"; problems=$((problems + 1)); continue; }
    if ! help="$("$script" --help)" || ! grep -q '^Usage: ' <<<"$help"; then
      echo "$script --help: no usage"; problems=$((problems + 1)); continue
    fi
    if "$script" --no-such-option >/dev/null 2>&1; then
      echo "$script accepted --no-such-option"; problems=$((problems + 1))
    else
      [ "$?" -eq 2 ] || { echo "$script --no-such-option: exit code not 2"; problems=$((problems + 1)); }
    fi
    # "  --option VALUE  text" / "  --flag  text" lines of --help.
    while read -r opt value; do
      [ "$opt" != "--help" ] || continue
      extra=()
      [ "$opt" = "--db" ] && extra=(--logical)
      # shellcheck disable=SC2207  # base_args prints words
      local base=($(base_args "$script"))
      local argv=("${base[@]}" "${extra[@]}" "$opt")
      [ -z "$value" ] || argv+=("x")
      [ "$opt" != "--k8s" ] || argv+=(--dry-run)
      if [ "$opt" = "--k8s" ] && [ "$(basename "$script")" = restore.sh ]; then
        argv=(--k8s --dry-run)   # --pgdata is the template's with --k8s
      fi
      rm -f "$GRAVL_ARGS_FILE"
      if ! out="$("$script" "${argv[@]}" 2>&1)"; then
        echo "$(basename "$script") ${argv[*]}: refused an option its --help offers: $out"
        problems=$((problems + 1))
      fi
    done < <(sed -n 's/^  \(--[a-z][a-z0-9-]*\)\( [A-Z][A-Z]*\)\{0,1\}\( .*\)\{0,1\}$/\1 \2/p' <<<"$help")
  done
  return "$problems"
}

echo "== shellcheck"
mapfile -t all < <(cd "$src" && git ls-files '*.sh' 2>/dev/null)
if [ "${#all[@]}" -eq 0 ]; then  # not a git checkout
  mapfile -t all < <(cd "$src" && find . -name '*.sh' -not -path './build*' -not -path '*/node_modules/*')
fi
all+=(scripts/lib/common.sh)
(cd "$src/scripts" && shellcheck ./*.sh lib/common.sh) || fail "shellcheck: the operator scripts"
(cd "$src" && shellcheck "${all[@]}") || fail "shellcheck: the project's shell scripts"
echo "   ${#all[@]} files"

echo "== options of the operator scripts"
if ! problems="$(check_options "$src/scripts")"; then
  fail "options: $problems"
fi

echo "== options reach gravl-dr"
expect_args() {  # expect_args "expected args, one per line" script args...
  local expected="$1"; shift
  rm -f "$GRAVL_ARGS_FILE"
  "$@" >/dev/null 2>&1 || { fail "$*: exit $?"; return; }
  [ "$(cat "$GRAVL_ARGS_FILE" 2>/dev/null)" = "$expected" ] ||
    fail "$*: gravl-dr got [$(tr '\n' ' ' < "$GRAVL_ARGS_FILE" 2>/dev/null)], expected [$(tr '\n' ' ' <<<"$expected")]"
}
expect_args $'--config\n/etc/x.yaml\n--repo\neu-north-1\n--log-level\ndebug\nbackup\n--type\nfull\n--dry-run' \
  "$src/scripts/backup.sh" --full --region eu-north-1 --dry-run --debug --config /etc/x.yaml
expect_args $'--max-loss\n0\nfailover\n--to\nus-east-1\n--force' \
  "$src/scripts/failover.sh" --to us-east-1 --max-loss 0 --force
expect_args $'switchover\n--to\neu-north-1\n--dry-run' \
  "$src/scripts/failover.sh" --to eu-north-1 --switchover --dry-run
expect_args $'restore\n--pgdata\n/srv/pitr/data\n--target-time\n2026-11-30 10:15:00+00\n--target-exclusive' \
  "$src/scripts/restore.sh" --pgdata /srv/pitr/data --target-time '2026-11-30 10:15:00+00' --target-exclusive
expect_args $'--repo\nus-east-1\ntest-restore\n--set\nL\n--keep' \
  "$src/scripts/test-restore.sh" --set L --region us-east-1 --keep
expect_args $'failback\n--to\neu-north-1\n--no-switchover' \
  "$src/scripts/failback.sh" --to eu-north-1 --no-switchover

echo "== --k8s: a Job from the CronJob, the arguments replaced"
rm -f "$work/k/"*
"$src/scripts/backup.sh" --k8s --namespace ops --full --region 'eu "north"' >/dev/null 2>&1 ||
  fail "backup.sh --k8s: exit $?"
grep -q -- '--namespace ops create job gravl-dr-backup-manual-[0-9]* --from=cronjob/gravl-dr-backup --dry-run=client -o json' "$work/k/calls" ||
  fail "backup.sh --k8s did not make a Job from cronjob/gravl-dr-backup: $(cat "$work/k/calls")"
expected='[{"op":"replace","path":"/spec/template/spec/containers/0/args","value":["--config","/etc/gravl-dr/gravl-dr.yaml","--repo","eu \"north\"","backup","--type","full"]}]'
[ "$(cat "$work/k/patch.json")" = "$expected" ] || fail "backup.sh --k8s patch: $(cat "$work/k/patch.json")"
command -v jq >/dev/null && { jq -e . "$work/k/patch.json" >/dev/null || fail "the patch is not JSON"; }
grep -q '"kind":"Job"' "$work/k/created.json" || fail "backup.sh --k8s created no Job"
grep -q -- 'logs --follow job/gravl-dr-backup-manual-' "$work/k/calls" || fail "backup.sh --k8s did not follow the log"
rm -f "$work/k/"*
"$src/scripts/test-restore.sh" --k8s >/dev/null 2>&1 || fail "test-restore.sh --k8s: exit $?"
grep -q -- '--from=cronjob/gravl-dr-restore-test' "$work/k/calls" || fail "test-restore.sh --k8s: not from the drill CronJob"
rm -f "$work/k/"*
"$src/scripts/restore.sh" --k8s --name gravl-dr-restore-x --target-time '2026-11-30 10:15:00+00' >/dev/null 2>&1 ||
  fail "restore.sh --k8s: exit $?"
expected='[{"op":"replace","path":"/spec/template/spec/containers/0/args","value":["--config","/etc/gravl-dr/gravl-dr.yaml","restore","--pgdata","/restore/data","--target-time","2026-11-30 10:15:00+00"]}]'
[ "$(cat "$work/k/patch.json")" = "$expected" ] || fail "restore.sh --k8s patch: $(cat "$work/k/patch.json")"
# (the stand-in patch passes the template through unchanged)
if ! grep -q '^  name: gravl-dr-restore-x$' "$work/k/created.json" ||
    grep -v '^#' "$work/k/created.json" | grep -q 'RESTORE_JOB_NAME'; then
  fail "restore.sh --k8s: the template's name was not set: $(grep -m1 'name:' "$work/k/created.json")"
fi
if "$src/scripts/backup.sh" --k8s --config /etc/x.yaml >/dev/null 2>&1; then
  fail "backup.sh --k8s --config: accepted a local config file for a Job"
fi

echo "== planted mistakes are caught"
cp -r "$src/scripts" "$work/broken-line"
# shellcheck disable=SC2016  # the planted line, as text
echo 'if [ "$1" = x; then echo; fi' >> "$work/broken-line/backup.sh"
if (cd "$work/broken-line" && shellcheck ./*.sh lib/common.sh >/dev/null 2>&1); then
  fail "planted: a broken shell line in backup.sh passed shellcheck"
else
  echo "   a broken shell line: caught by shellcheck"
fi
cp -r "$src/scripts" "$work/removed-option"
sed -i '/^    --region) /d' "$work/removed-option/backup.sh"
if check_options "$work/removed-option" >/dev/null; then
  fail "planted: backup.sh lost --region from its parser (still in --help) and the check passed"
else
  echo "   an option removed from a parser: caught"
fi

if [ "$failures" -ne 0 ]; then
  echo "scripts check: $failures failure(s)" >&2
  exit 1
fi
echo "scripts check: passed"
