#!/usr/bin/env bash
# tests/s3/setup.sh — installs the Node.js test support (s3rver, AWS SDK, smithy signer) into
# tests/s3/node_modules from the committed package-lock.json.  Idempotent: runs `npm ci` only
# when node_modules is missing or older than package-lock.json / package.json.
# Needs node >= 18.19 and npm (Debian 12: apt-get install nodejs npm).  All npm output goes to
# stderr; exit status non-zero on any problem.
set -euo pipefail

src="${BASH_SOURCE[0]}"
case "$src" in */*) here="${src%/*}" ;; *) here=. ;; esac
here="$(cd "$here" && pwd)"
cd "$here"

die() { echo "tests/s3/setup.sh: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node not found on PATH; install Node.js >= 18.19 (Debian 12: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH; install it (Debian 12: apt-get install npm)"

# shellcheck disable=SC2016  # JavaScript, not shell
node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  if (maj < 18 || (maj === 18 && min < 19)) {
    console.error(`tests/s3/setup.sh: node ${process.version} is too old; need >= 18.19`);
    process.exit(1);
  }' || exit 1

stamp="node_modules/.gravl-setup-stamp"
needs_install() {
  [ -f "$stamp" ] || return 0
  [ "$stamp" -nt package-lock.json ] || return 0
  [ "$stamp" -nt package.json ] || return 0
  return 1
}

# Serialise concurrent callers (e.g. ctest -j) on a lock file next to this script.
exec 9>"$here/.setup.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

if needs_install; then
  echo "tests/s3/setup.sh: installing node modules (npm ci)..." >&2
  npm ci --no-audit --no-fund 1>&2 || die "npm ci failed"
  touch "$stamp"
fi

# s3rver needs DES (ListObjectsV2 tokens) from OpenSSL's legacy provider.
node --openssl-legacy-provider -e '
  require("crypto").createCipheriv("des", Buffer.alloc(8), Buffer.alloc(8));
  require("s3rver"); require("@smithy/signature-v4"); require("@aws-sdk/client-s3");
' || die "node --openssl-legacy-provider cannot load the modules or the legacy (DES) cipher"
