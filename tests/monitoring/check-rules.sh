#!/usr/bin/env bash
# Checks the monitoring artefacts of gravl-dr:
#   1. extracts the Prometheus rule file from the PrometheusRule
#      k8s/monitoring/prometheus-rules-dr.yaml (everything under `spec:`, de-indented by two
#      spaces) and checks it with `promtool check rules`;
#   2. checks that every alert has a runbook that exists and a firing and a non-firing case in
#      tests/monitoring/rules-test.yaml, then runs `promtool test rules` on it;
#   3. negative self-check: with GravlWalArchiveLag's threshold broken (900 -> 9000000) the
#      same tests must fail, and only on that alert - so the tests can fail;
#   4. parses the Grafana dashboard k8s/monitoring/dashboards/gravl-disaster-recovery.json and
#      checks its variables and datasources (with node, else jq; skipped if neither exists).
# Usage: tests/monitoring/check-rules.sh [PROJECT_SOURCE_DIR]   (default: two levels up)
# PROMTOOL may name the promtool binary. Exits non-zero on any failure.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src_dir=${1:-"${script_dir}/../.."}
src_dir=$(cd "${src_dir}" && pwd)

rules_source="${src_dir}/k8s/monitoring/prometheus-rules-dr.yaml"
rules_test="${src_dir}/tests/monitoring/rules-test.yaml"
dashboard="${src_dir}/k8s/monitoring/dashboards/gravl-disaster-recovery.json"
runbook_prefix="https://github.com/gravl-dr/gravl-dr/blob/main/"
# The integration test of the exporter rewrites this line to shorten the alert: keep it exact.
wal_lag_expr='expr: max by (stanza) (gravl_wal_archive_lag_seconds) > 900'

fail() {
  echo "check-rules: FAIL: $*" >&2
  exit 1
}
step() {
  echo "check-rules: $*"
}

promtool=${PROMTOOL:-promtool}
if ! command -v "${promtool}" >/dev/null 2>&1; then
  fail "promtool not found (PROMTOOL=${promtool}); install prometheus: dev/install-deps.sh (Debian/Ubuntu: apt-get install prometheus)"
fi
promtool_path=$(command -v "${promtool}")
promtool_version=$("${promtool}" --version 2>&1 | head -n 1) || true
step "using ${promtool_path} (${promtool_version})"

for f in "${rules_source}" "${rules_test}" "${dashboard}"; do
  [[ -f "${f}" ]] || fail "missing ${f}"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gravl-dr-rules.XXXXXX")
trap 'rm -rf "${tmp}"' EXIT

# --- 1. Extract spec: and check the rules --------------------------------------------------
# `spec:` must be the last top-level key, `groups:` its only child.
extracted="${tmp}/prometheus-rules-dr.rules.yaml"
awk '
  in_spec && /^[^ #]/ { print "top-level key after spec: " $0 > "/dev/stderr"; bad = 1 }
  in_spec { sub(/^  /, ""); print }
  /^spec:[[:space:]]*$/ { in_spec = 1 }
  END { if (!in_spec) { print "no spec: line" > "/dev/stderr"; bad = 1 } exit bad }
' "${rules_source}" >"${extracted}" || fail "cannot extract spec: from ${rules_source}"
first_line=$(awk '!/^[[:space:]]*(#.*)?$/ { print; exit }' "${extracted}")
[[ "${first_line}" == "groups:" ]] || fail "spec: of ${rules_source} must hold only groups: (found '${first_line}')"
if awk '/^[^ #]/ && !/^groups:/ { found = 1 } END { exit !found }' "${extracted}"; then
  fail "spec: of ${rules_source} has another key besides groups:"
fi
step "extracted spec.groups of ${rules_source#"${src_dir}/"} into a rule file"

"${promtool}" check rules "${extracted}" || fail "promtool check rules failed"

grep -q -F -x "          ${wal_lag_expr}" "${rules_source}" \
  || fail "GravlWalArchiveLag must keep the exact line '${wal_lag_expr}'"

# --- 2. Every alert: a runbook that exists, a firing and a non-firing test case --------------
sed -n -E 's/^[[:space:]]*- alert:[[:space:]]*([A-Za-z0-9_]+)[[:space:]]*$/\1/p' "${extracted}" >"${tmp}/alerts"
mapfile -t alerts <"${tmp}/alerts"
((${#alerts[@]} > 0)) || fail "no alerts found in ${rules_source}"

sed -n -E 's/^[[:space:]]*runbook_url:[[:space:]]*"?([^"]*)"?[[:space:]]*$/\1/p' "${extracted}" >"${tmp}/runbooks"
mapfile -t runbooks <"${tmp}/runbooks"
((${#runbooks[@]} == ${#alerts[@]})) || fail "${#alerts[@]} alerts but ${#runbooks[@]} runbook_url annotations"
for url in "${runbooks[@]}"; do
  [[ "${url}" == "${runbook_prefix}"* ]] || fail "runbook_url ${url} does not start with ${runbook_prefix}"
  rel=${url#"${runbook_prefix}"}
  [[ -f "${src_dir}/${rel%%#*}" ]] || fail "runbook ${rel%%#*} does not exist"
  if [[ "${rel}" == *"#"* ]]; then
    # The anchor must be a heading of the file (GitHub's slug: lower case, spaces to '-',
    # punctuation dropped).
    anchor=${rel#*#}
    sed -n -E 's/^#+[[:space:]]+//p' "${src_dir}/${rel%%#*}" |
      tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9 _-]//g; s/ /-/g' | grep -qx -- "${anchor}" ||
      fail "runbook ${rel%%#*} has no heading for #${anchor}"
  fi
done

# alertname -> "fires" / "silent" per test case (silent: exp_alerts: [] or no exp_alerts).
awk '
  function flush() { if (name != "") print name, (fires ? "fires" : "silent"); name = "" }
  /^[[:space:]]*(- )?eval_time:/ { flush() }
  /^[[:space:]]*alertname:/ { name = $2; fires = 0 }
  /^[[:space:]]*- exp_labels:/ { fires = 1 }
  END { flush() }
' "${rules_test}" | sort -u >"${tmp}/cases"
for alert in "${alerts[@]}"; do
  grep -q -x "${alert} fires" "${tmp}/cases" || fail "no test case in which ${alert} fires"
  grep -q -x "${alert} silent" "${tmp}/cases" || fail "no test case in which ${alert} does not fire"
done
step "${#alerts[@]} alerts, each with an existing runbook and a firing and a non-firing test case"

cp "${rules_test}" "${tmp}/rules-test.yaml"
(cd "${tmp}" && "${promtool}" test rules rules-test.yaml) || fail "promtool test rules failed"

# --- 3. Negative self-check: a broken threshold must make the tests fail --------------------
mkdir "${tmp}/broken"
sed 's/(gravl_wal_archive_lag_seconds) > 900$/(gravl_wal_archive_lag_seconds) > 9000000/' \
  "${extracted}" >"${tmp}/broken/prometheus-rules-dr.rules.yaml"
grep -q -F '(gravl_wal_archive_lag_seconds) > 9000000' "${tmp}/broken/prometheus-rules-dr.rules.yaml" \
  || fail "negative self-check: could not break GravlWalArchiveLag's threshold"
cp "${rules_test}" "${tmp}/broken/rules-test.yaml"
if (cd "${tmp}/broken" && "${promtool}" test rules rules-test.yaml) >"${tmp}/broken.log" 2>&1; then
  cat "${tmp}/broken.log"
  fail "negative self-check: the tests passed with GravlWalArchiveLag's threshold at 9000000"
fi
failed_alerts=$(sed -n -E 's/^[[:space:]]*alertname: ([A-Za-z0-9_]+),.*/\1/p' "${tmp}/broken.log" | sort -u | tr '\n' ' ')
[[ "${failed_alerts}" == "GravlWalArchiveLag " ]] || {
  cat "${tmp}/broken.log"
  fail "negative self-check: expected only GravlWalArchiveLag to fail, got: ${failed_alerts:-(none)}"
}
step "negative self-check: with GravlWalArchiveLag at > 9000000 the rule tests fail as they must"

# --- 4. The Grafana dashboard ---------------------------------------------------------------
# Parses, uid gravl-dr, the variables datasource and stanza, every panel and target on
# ${datasource}, queries using no variable but $stanza, $__rate_interval, $__range, $__interval.
if command -v node >/dev/null 2>&1; then
  node - "${dashboard}" <<'EOF' || fail "dashboard check failed"
const fs = require('fs');
const file = process.argv[2];
const d = JSON.parse(fs.readFileSync(file, 'utf8'));
const errors = [];
if (d.uid !== 'gravl-dr') errors.push(`uid is ${d.uid}, not gravl-dr`);
if (!(d.schemaVersion >= 37)) errors.push(`schemaVersion ${d.schemaVersion} < 37`);
const vars = (d.templating && d.templating.list) || [];
const ds = vars.find(v => v.name === 'datasource');
const stanza = vars.find(v => v.name === 'stanza');
if (!ds || ds.type !== 'datasource' || ds.query !== 'prometheus') errors.push('variable datasource (type datasource, query prometheus) missing');
if (!stanza || stanza.type !== 'query') errors.push('variable stanza (type query) missing');
const allowed = new Set(['stanza', '__rate_interval', '__range', '__interval']);
const panels = [];
const walk = ps => (ps || []).forEach(p => { panels.push(p); walk(p.panels); });
walk(d.panels);
let exprs = 0;
const ids = new Set();
for (const p of panels) {
  if (p.type === 'row') continue;
  if (ids.has(p.id)) errors.push(`panel id ${p.id} used twice`);
  ids.add(p.id);
  const pds = p.datasource || {};
  if (pds.type !== 'prometheus' || pds.uid !== '${datasource}') errors.push(`panel "${p.title}": datasource must be {"type":"prometheus","uid":"\${datasource}"}`);
  if (!(p.targets && p.targets.length)) errors.push(`panel "${p.title}" has no targets`);
  for (const t of p.targets || []) {
    const tds = t.datasource || pds;
    if (tds.uid !== '${datasource}') errors.push(`panel "${p.title}" target ${t.refId}: hard-coded datasource`);
    if (!t.expr) { errors.push(`panel "${p.title}" target ${t.refId}: no expr`); continue; }
    exprs++;
    for (const m of t.expr.matchAll(/\$\{?(\w+)/g)) {
      if (!allowed.has(m[1])) errors.push(`panel "${p.title}" target ${t.refId}: variable $${m[1]} not allowed`);
    }
  }
}
if (errors.length) { console.error(errors.join('\n')); process.exit(1); }
console.log(`check-rules: dashboard ${d.uid}: ${panels.length} panels, ${exprs} queries, datasources and variables fine`);
EOF
elif command -v jq >/dev/null 2>&1; then
  jq -e '.uid == "gravl-dr" and ([.. | objects | select(has("datasource")) | .datasource
         | select(type == "object") | .uid] | all(. == "${datasource}"))' "${dashboard}" >/dev/null \
    || fail "dashboard check failed (jq)"
  step "dashboard parses (jq; install node for the full check)"
else
  step "SKIP dashboard check: neither node nor jq is installed"
fi

step "OK"
