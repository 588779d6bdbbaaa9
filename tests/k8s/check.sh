#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests under k8s/ (no cluster needed):
#   1. setup.sh: installs the node modules of tests/k8s from the committed package-lock.json
#      (npm ci, only when node_modules is missing or older than package.json / package-lock.json);
#   2. validate.js: every object under k8s/, the restore Job template filled in with sample
#      values, and every kustomization rendered with kustomize (the base, k8s/monitoring and
#      the overlays), against the Kubernetes and prometheus-operator schemas with unknown
#      fields as errors; the project's rules for gravl-dr pods; references; the regions'
#      configurations; and the YAML examples of docs/k8s-architecture.md (schemas);
#   3. extract-commands.js: the JSON of every gravl-dr command the manifests run;
#   4. check-commands.js (when a gravl-dr binary is given): every such command parsed by the
#      real binary with its configuration loaded, stopped before it touches a repository;
#   5. negative self-checks: misspelled fields planted in a copy of k8s/ (concurrencyPolicy in
#      the backup CronJob, runAsNonRoot in its pod securityContext, a field of the drill
#      CronJob and one of the ServiceMonitor) must make validate.js fail naming each field, and
#      (with the binary) a wrong option value and a misspelled configuration key must make
#      check-commands.js fail. A planted mistake that passes fails this script.
# Usage: tests/k8s/check.sh [PROJECT_SOURCE_DIR [GRAVL_DR_BINARY]]
#   PROJECT_SOURCE_DIR defaults to two levels up; GRAVL_DR_BINARY defaults to $GRAVL_DR, else
#   step 4 and its negative check are skipped (and say so).
# Needs node >= 18 with npm (Debian 12: apt-get install nodejs npm) and kustomize v4.1 or newer:
# kubectl's built-in one (kubectl >= 1.22) or a standalone kustomize on PATH, or
# GRAVL_KUSTOMIZE="kustomize build". Debian 12's kubernetes-client (kubectl 1.20, kustomize
# v2.0.3) is too old and refused with a message. Exits non-zero on any failure.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src_dir=${1:-"${script_dir}/../.."}
src_dir=$(cd "${src_dir}" && pwd)
binary=${2:-${GRAVL_DR:-}}
k8s_dir="${src_dir}/k8s"
started=${SECONDS}

fail() {
  echo "check.sh: FAIL: $*" >&2
  exit 1
}
step() {
  echo "check.sh: $*"
}

[[ -d "${k8s_dir}" ]] || fail "no k8s/ directory in ${src_dir}"
if [[ -n "${binary}" ]]; then
  [[ -x "${binary}" ]] || fail "the gravl-dr binary ${binary} is not an executable file"
  binary=$(realpath -- "${binary}")
fi

# --- 1. node modules ------------------------------------------------------------------------------
"${script_dir}/setup.sh" || fail "cannot install the node modules of tests/k8s (above)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gravl-dr-k8s.XXXXXX")
trap 'rm -rf "${tmp}"' EXIT

# --- 2. validate --------------------------------------------------------------------------------
step "validating ${k8s_dir} and the examples of docs/k8s-architecture.md"
if ! node "${script_dir}/validate.js" --k8s "${k8s_dir}" --docs "${src_dir}/docs/k8s-architecture.md" \
  >"${tmp}/validate.out" 2>&1; then
  cat "${tmp}/validate.out"
  fail "validate.js found problems (above)"
fi
cat "${tmp}/validate.out"
documents=$(sed -n -E 's/^validate\.js: all ([0-9]+) documents valid$/\1/p' "${tmp}/validate.out")
[[ -n "${documents}" ]] || fail "validate.js did not report its result"

# --- 3. extract the commands --------------------------------------------------------------------
step "extracting the gravl-dr commands"
node "${script_dir}/extract-commands.js" --k8s "${k8s_dir}" >"${tmp}/commands.json" ||
  fail "extract-commands.js failed"
# shellcheck disable=SC2016  # JavaScript template literals, not shell expansions
summary=$(node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const sources = Object.keys(j.config);
  const bad = j.workloads.filter((w) => JSON.stringify(w.command) !== "[\"gravl-dr\"]" || w.args[0] !== "--config");
  if (j.format !== 1 || sources.length < 3 || j.workloads.length === 0 || bad.length) {
    console.error(`unexpected output: format ${j.format}, configs [${sources}], ${j.workloads.length} workloads, ${bad.length} not gravl-dr --config ...`);
    process.exit(1);
  }
  console.log(`${j.workloads.length} containers, configurations of ${sources.join(", ")}`);
  for (const w of j.workloads) console.error(`  ${w.file}: ${w.kind}/${w.name}: gravl-dr ${w.args.join(" ")}`);
' "${tmp}/commands.json") || fail "extract-commands.js's JSON is not what the integration test expects"
step "extract-commands.js: ${summary}"

# --- 4. the commands through the real binary ----------------------------------------------------
commands_result="skipped (no gravl-dr binary given: tests/k8s/check.sh SRC_DIR BINARY, or GRAVL_DR)"
if [[ -n "${binary}" ]]; then
  step "parsing every command with ${binary} (offline)"
  node "${script_dir}/check-commands.js" "${binary}" --k8s "${k8s_dir}" ||
    fail "a command of the manifests does not parse or does not load its configuration (above)"
  commands_result="every command parses and loads its configuration"
else
  step "SKIP: ${commands_result}"
fi

# --- 5. negative self-checks --------------------------------------------------------------------
# plant FILE PATTERN REPLACEMENT: replaces the first line matching PATTERN (sed -E) in FILE and
# fails if nothing changed, so that a planted mistake can never silently be absent.
plant() {
  local file="$1" pattern="$2" replacement="$3"
  cp "${file}" "${file}.orig"
  sed -E -i "0,/${pattern}/s//${replacement}/" "${file}"
  if cmp -s "${file}" "${file}.orig"; then
    fail "negative check: '${pattern}' not found in ${file#"${tmp}/"}; update check.sh"
  fi
  rm -f "${file}.orig"
}

step "negative check: misspelled fields must fail validation"
mkdir -p "${tmp}/neg1"
cp -R "${k8s_dir}" "${tmp}/neg1/k8s"
plant "${tmp}/neg1/k8s/backup/postgres-backup-cronjob.yaml" '^  concurrencyPolicy:' '  concurencyPolicy:'
plant "${tmp}/neg1/k8s/backup/postgres-backup-cronjob.yaml" 'runAsNonRoot: true' 'runAsNonRot: true'
plant "${tmp}/neg1/k8s/backup/postgres-test-cronjob.yaml" 'terminationGracePeriodSeconds:' 'terminationGracePeriodSecond:'
plant "${tmp}/neg1/k8s/backup/exporter.yaml" 'scrapeTimeout:' 'scrapeTimout:'
if node "${script_dir}/validate.js" --k8s "${tmp}/neg1/k8s" >"${tmp}/neg1.out" 2>&1; then
  cat "${tmp}/neg1.out"
  fail "negative check: validate.js PASSED manifests with planted misspellings: unknown fields are not detected"
fi
for expected in \
  "k8s/backup/postgres-backup-cronjob.yaml, document 1 (CronJob/gravl-dr-backup), line [0-9]+: spec.concurencyPolicy: unknown field 'concurencyPolicy'" \
  "k8s/backup/postgres-backup-cronjob.yaml, document 1 (CronJob/gravl-dr-backup), line [0-9]+: spec.jobTemplate.spec.template.spec.securityContext.runAsNonRot: unknown field 'runAsNonRot'" \
  "k8s/backup/postgres-test-cronjob.yaml, document 1 (CronJob/gravl-dr-restore-test), line [0-9]+: spec.jobTemplate.spec.template.spec.terminationGracePeriodSecond: unknown field" \
  "k8s/backup/exporter.yaml, document 3 (ServiceMonitor/gravl-dr-exporter), line [0-9]+: spec.endpoints\[0\].scrapeTimout: unknown field" \
  "k8s/overlays/us-east-1 (rendered), document [0-9]+ (CronJob/gravl-dr-backup), line [0-9]+: spec.concurencyPolicy: unknown field"; do
  if ! grep -q -E -- "${expected//(/\\(}" "${tmp}/neg1.out"; then
    cat "${tmp}/neg1.out"
    fail "negative check: validate.js failed, but without the expected error: ${expected}"
  fi
done
step "negative check passed: validate.js rejects each planted misspelling, naming file, document, line and field:"
grep -E "^       k8s/backup/[a-z-]+\.yaml, .*unknown field" "${tmp}/neg1.out" | sed 's/^ */    /'

negative_commands="skipped (no binary)"
if [[ -n "${binary}" ]]; then
  step "negative check: a wrong option value and a misspelled configuration key must fail check-commands.js"
  mkdir -p "${tmp}/neg2"
  cp -R "${k8s_dir}" "${tmp}/neg2/k8s"
  plant "${tmp}/neg2/k8s/backup/postgres-backup-cronjob.yaml" '"--type", "full"' '"--type", "fulll"'
  plant "${tmp}/neg2/k8s/overlays/us-east-1/gravl-dr.yaml" '^  pitr_window:' '  pitr_windw:'
  if node "${script_dir}/check-commands.js" "${binary}" --k8s "${tmp}/neg2/k8s" >"${tmp}/neg2.out" 2>&1; then
    cat "${tmp}/neg2.out"
    fail "negative check: check-commands.js PASSED a wrong option value and a misspelled configuration key"
  fi
  grep -q -E '^FAIL k8s/backup/postgres-backup-cronjob.yaml CronJob/gravl-dr-backup .*--type fulll' "${tmp}/neg2.out" ||
    { cat "${tmp}/neg2.out"; fail "negative check: check-commands.js did not reject 'backup --type fulll'"; }
  grep -q -E "unknown key 'retention.pitr_windw'" "${tmp}/neg2.out" ||
    { cat "${tmp}/neg2.out"; fail "negative check: check-commands.js did not reject the configuration key 'retention.pitr_windw'"; }
  grep -q -E '^ok   k8s/overlays/eu-north-1 Deployment/gravl-dr-exporter' "${tmp}/neg2.out" ||
    { cat "${tmp}/neg2.out"; fail "negative check: check-commands.js rejected an unchanged command too"; }
  negative_commands="a wrong option value and a misspelled configuration key are rejected"
  step "negative check passed: ${negative_commands}"
fi

echo
echo "check.sh: summary ($((SECONDS - started)) s)"
echo "  manifests:      ${documents} documents valid (schemas, unknown fields, rules, references, regions, doc examples)"
echo "  commands:       ${summary}"
echo "  real binary:    ${commands_result}"
echo "  negative:       planted misspellings rejected by validate.js; binary: ${negative_commands}"
echo "check.sh: OK"
