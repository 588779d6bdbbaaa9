#!/usr/bin/env bash
# tests/k8s/setup.sh -- installs the Node.js modules of the manifest checks (kubernetes-models,
# @kubernetes-models/prometheus-operator, yaml) into tests/k8s/node_modules from the committed
# package-lock.json. Idempotent: runs `npm ci` only when node_modules is missing or older than
# package-lock.json / package.json (as tests/s3/setup.sh). Used by check.sh; run it before
# extract-commands.js on a fresh checkout. Needs node >= 18 and npm (Debian 12: apt-get install
# nodejs npm). npm's output goes to stderr; exit status non-zero on any problem.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "${here}"

die() {
  echo "tests/k8s/setup.sh: $*" >&2
  exit 1
}

command -v node >/dev/null 2>&1 || die "node not found on PATH; install Node.js >= 18 (Debian 12: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH; install it (Debian 12: apt-get install npm)"
# shellcheck disable=SC2016  # a JavaScript template literal, not a shell expansion
node -e '
  const maj = Number(process.versions.node.split(".")[0]);
  if (maj < 18) {
    console.error(`tests/k8s/setup.sh: node ${process.version} is too old; need >= 18`);
    process.exit(1);
  }' || exit 1

stamp="node_modules/.gravl-setup-stamp"
needs_install() {
  [[ -f "${stamp}" ]] || return 0
  [[ "${stamp}" -nt package-lock.json ]] || return 0
  [[ "${stamp}" -nt package.json ]] || return 0
  return 1
}

# Serialise concurrent callers (ctest -j) on a lock file next to this script.
exec 9>"${here}/.setup.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

if needs_install; then
  echo "tests/k8s/setup.sh: installing node modules (npm ci)..." >&2
  npm ci --no-audit --no-fund 1>&2 || die "npm ci failed"
  touch "${stamp}"
fi

node -e '
  require("kubernetes-models/batch/v1");
  require("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1");
  require("yaml");
' || die "the node modules cannot be loaded; remove ${here}/node_modules and run again"
