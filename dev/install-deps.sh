#!/usr/bin/env bash
# Installs everything gravl-dr needs to build and test, from Debian 12 packages.
# Idempotent: a machine that already has every package skips apt entirely.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  libpq-dev libcurl4-openssl-dev libssl-dev libzstd-dev liblz4-dev zlib1g-dev libxxhash-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libyaml-cpp-dev prometheus-cpp-dev libcivetweb-dev
  libgtest-dev libgmock-dev libbenchmark-dev libexpected-dev
  postgresql-15 postgresql-contrib postgresql-client-15
  clang-format util-linux procps bc time zstd pgbackrest
  # The operator scripts' checks (shellcheck) and the runbooks' commands (jq).
  shellcheck jq
  # The monitoring tests: a real Prometheus (promtool) and Alertmanager.
  prometheus prometheus-alertmanager
  # Automatic failover's consensus store (the watch tests start a 3-member cluster).
  etcd-server etcd-client
)

# Node.js runs the S3 test support (s3rver, the verifying gateway, the AWS SDK peers). A
# machine that already has node and npm (e.g. from NodeSource) keeps them.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

# The manifest checks render the kustomize overlays with kubectl's built-in kustomize, which
# must be v4.1 or newer (kubectl >= 1.22): Debian 12's kubernetes-client (1.20) is too old, so
# it is not installed here; the machine image's kubectl is used (tests/k8s/check.sh says so
# when there is none).
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root (missing: ${missing[*]})" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages with services (prometheus, alertmanager, postgresql) must not start them here: the
# tests start their own on free ports. policy-rc.d says so to invoke-rc.d, for this install.
policy_added=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  policy_added=1
fi
trap '[ -z "$policy_added" ] || $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
echo "install-deps: done"
