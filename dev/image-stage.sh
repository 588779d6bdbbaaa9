#!/usr/bin/env bash
# One step of building the gravl-dr container image, run as root INSIDE the image's root file
# system: by the Containerfile's RUN lines, and by dev/image.sh's chroot fallback, so both
# build the same thing from the same package lists (dev/image-packages.txt, beside this
# script or $GRAVL_IMAGE_PACKAGES).
#
#   image-stage.sh build-deps                 install the build stage's packages
#   image-stage.sh compile SRC BUILD OUT      configure + build the gravl-dr target (Release,
#                                             no tests, no benchmarks), strip it into OUT/
#   image-stage.sh runtime                    install the runtime packages (PostgreSQL 15
#                                             without a cluster), create the user gravl (10001)
#
# Environment: JOBS (compile jobs, default 2), GRAVL_WERROR (ON|OFF, default OFF),
# PG_LOCALES (locales to generate for restored clusters, default "en_US.UTF-8"; "" for none),
# EXTRA_PACKAGES (more runtime packages, space separated).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
LIST="${GRAVL_IMAGE_PACKAGES:-$here/image-packages.txt}"
export DEBIAN_FRONTEND=noninteractive

packages() {  # the packages of one stage, comments removed
  awk -v stage="$1" '{ sub(/#.*/, "") } $1 == stage { print $2 }' "$LIST"
}

apt_begin() {
  # No service may start while packages are installed (there is no init in an image).
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  apt-get update -q
}

apt_end() {
  rm -f /usr/sbin/policy-rc.d
  apt-get clean
  rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old \
    /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
}

apt_install() { apt-get install -y -q --no-install-recommends "$@"; }

step_build_deps() {
  local pkgs
  mapfile -t pkgs < <(packages build)
  apt_begin
  apt_install "${pkgs[@]}"
  apt_end
}

step_compile() {
  local src="$1" build="$2" out="$3"
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_TESTING=OFF -DGRAVL_BUILD_INTEGRATION=OFF -DGRAVL_BUILD_BENCH=OFF \
    -DGRAVL_WERROR="${GRAVL_WERROR:-OFF}"
  nice -n 19 cmake --build "$build" -j "${JOBS:-2}" --target gravl-dr
  install -D -s -m 0755 "$build/src/gravl-dr" "$out/gravl-dr"
  "$out/gravl-dr" --version
}

step_runtime() {
  local pkgs extra loc
  mapfile -t pkgs < <(packages runtime)
  read -r -a extra <<<"${EXTRA_PACKAGES:-}"
  # Like debian:*-slim: no manuals or docs (their copyright files stay).
  cat >/etc/dpkg/dpkg.cfg.d/gravl-dr-slim <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
EOF
  apt_begin
  # postgresql-15's postinst creates a "main" cluster unless postgresql-common's
  # createcluster.conf says otherwise: install that first, then turn cluster creation off.
  apt_install postgresql-common
  sed -ri 's/^[#[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
    /etc/postgresql-common/createcluster.conf
  grep -qx 'create_main_cluster = false' /etc/postgresql-common/createcluster.conf
  apt_install "${pkgs[@]}" "${extra[@]}"
  # Restored clusters need their locales: generate the ones asked for (C.UTF-8 is built in).
  for loc in ${PG_LOCALES-en_US.UTF-8}; do
    if ! grep -q "^# *${loc} " /etc/locale.gen && ! grep -q "^${loc} " /etc/locale.gen; then
      echo "image-stage: unknown locale ${loc} (not in /etc/locale.gen)" >&2
      exit 1
    fi
    sed -i "s/^# *\(${loc} \)/\1/" /etc/locale.gen
  done
  if [ -n "${PG_LOCALES-en_US.UTF-8}" ]; then locale-gen; fi
  apt_end
  # No cluster, and no private key shared by every copy of the image (ssl-cert's snakeoil
  # pair: only a created cluster would use it).
  if [ -n "$(ls -A /etc/postgresql 2>/dev/null)" ] || [ -e /var/lib/postgresql/15 ]; then
    echo "image-stage: a PostgreSQL cluster was created" >&2
    exit 1
  fi
  rm -f /etc/ssl/private/ssl-cert-snakeoil.key /etc/ssl/certs/ssl-cert-snakeoil.pem
  # The user gravl-dr runs as; home and the default spool for async archiving are its own.
  groupadd -g 10001 gravl
  useradd -u 10001 -g 10001 -M -d /var/lib/gravl-dr -s /usr/sbin/nologin -c gravl-dr gravl
  install -d -o 10001 -g 10001 -m 0750 /var/lib/gravl-dr /var/spool/gravl-dr
  install -d -m 0755 /etc/gravl-dr
  # Every library of the server programs resolves (the binary itself is checked once copied).
  if ldd /usr/lib/postgresql/15/bin/postgres /usr/lib/postgresql/15/bin/pg_ctl | grep 'not found'; then
    exit 1
  fi
}

case "${1:-}" in
  build-deps) step_build_deps ;;
  compile)
    [ $# -eq 4 ] || { echo "usage: $0 compile SRC BUILD OUT" >&2; exit 2; }
    step_compile "$2" "$3" "$4"
    ;;
  runtime) step_runtime ;;
  *)
    echo "usage: $0 build-deps | compile SRC BUILD OUT | runtime" >&2
    exit 2
    ;;
esac
