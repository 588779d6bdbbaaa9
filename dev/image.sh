#!/usr/bin/env bash
# Builds the gravl-dr container image on this machine without any registry, smoke-checks it
# and runs a restore drill with it (docs/container.md).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: dev/image.sh [options]

Builds the gravl-dr container image here, without a registry:
  1. a Debian 12 base root file system made with Debian's own mmdebstrap (minbase, from the
     mirror this machine's apt uses), cached in the work directory;
  2. the Containerfile's two stages built with podman on that base (--pull=never), tagged
     localhost/gravl-dr:<version> and saved as an OCI archive;
  3. a smoke check: gravl-dr --version, --help, the user, the libraries, in the image;
  4. a restore drill: a throwaway PostgreSQL 15 cluster on 127.0.0.1 (as postgres, WAL
     archived by the image's gravl-dr), a local-directory repository, a full backup, then
     `gravl-dr test-restore` INSIDE the image (host network, read-only root, the
     repository mounted), which must exit 0 and report ok: true.
If the container runtime cannot run containers here, the exact error is recorded and the
same two stages are built as root file systems with mmdebstrap + chroot instead (same
package lists and install steps: dev/image-packages.txt, dev/image-stage.sh); the smoke
check and the drill then run with chroot --userspec=10001:10001, and an OCI image is made
from the runtime root file system with umoci.

Options:
  --mode auto|podman|chroot   auto (default): podman, else the chroot fallback
  --rev REV                   build CMakeLists.txt and src/ of commit REV (default: the
                              work tree as it is)
  --no-drill                  build and smoke-check only
  --refresh-base              make the base root file system again (else it is reused for
                              GRAVL_IMAGE_BASE_MAX_AGE_DAYS days, default 7)
  --workdir DIR               cache and outputs (default $GRAVL_IMAGE_WORKDIR or
                              /var/tmp/gravl-image)
  --jobs N                    compile jobs (default 2; the compile runs with nice -n 19)
  --keep                      keep the drill's cluster directory
  -h, --help                  this text

Environment: GRAVL_IMAGE_WORKDIR, GRAVL_IMAGE_BASE_MAX_AGE_DAYS, GRAVL_IMAGE_RUNTIMES (the
OCI runtimes podman may use, in order; default "crun runc").

Needs root (mmdebstrap, podman and chroot do) and Debian 12; installs mmdebstrap, podman,
buildah, runc, umoci, jq and PostgreSQL 15 with apt-get --no-install-recommends if missing.
Outputs in the work directory: out/gravl-dr-<version>.oci.tar, summary.txt, logs/.
EOF
}

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORKDIR="${GRAVL_IMAGE_WORKDIR:-/var/tmp/gravl-image}"
MODE=auto
REV=""
DRILL=1
REFRESH_BASE=0
JOBS=2
KEEP=0
BASE_MAX_AGE_DAYS="${GRAVL_IMAGE_BASE_MAX_AGE_DAYS:-7}"
STANZA=image-drill   # its own stanza: the host lock (abstract socket) is per stanza

while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE="${2:?--mode needs a value}"; shift 2 ;;
    --rev) REV="${2:?--rev needs a value}"; shift 2 ;;
    --no-drill) DRILL=0; shift ;;
    --refresh-base) REFRESH_BASE=1; shift ;;
    --workdir) WORKDIR="${2:?--workdir needs a value}"; shift 2 ;;
    --jobs) JOBS="${2:?--jobs needs a value}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$MODE" in auto | podman | chroot) ;; *) echo "image.sh: --mode auto|podman|chroot" >&2; exit 2 ;; esac
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "image.sh: --jobs needs a positive number" >&2; exit 2; }

LOGS="$WORKDIR/logs"
OUT="$WORKDIR/out"
SUMMARY="$WORKDIR/summary.txt"
STAGE_FILES=(dev/image-packages.txt dev/image-stage.sh)
STAGE_DIR=/usr/local/share/gravl-dr/image   # where the Containerfile puts STAGE_FILES
CLEAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PGBIN=/usr/lib/postgresql/15/bin

log() { printf '[image.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Runs a long step with its output in logs/NAME.log; on failure shows the log's end.
logged() {
  local name="$1"
  shift
  if ! "$@" >"$LOGS/$name.log" 2>&1; then
    log "step '$name' failed; the end of $LOGS/$name.log:"
    tail -n 40 "$LOGS/$name.log" >&2
    return 1
  fi
}

# Runs a command as a background job and waits for it, so that a TERM or INT to this script
# acts at once (bash runs a trap only after its foreground command ends); cleanup then sends
# the job TERM (podman run passes it on to gravl-dr, which stops its server).
BG_PID=""
fg_wait() {
  local rc=0
  "$@" &
  BG_PID=$!
  wait "$BG_PID" || rc=$?
  BG_PID=""
  return "$rc"
}

declare -A TIME=()   # seconds per step, for the summary
RUNTIME_ERRORS=()    # exact errors of the container runtime, when it cannot run
BUILT_WITH=""
IMAGE_REF=""
IMAGE_SIZE=""
ARTIFACT=""
SMOKE=""
DRILL_RESULT="not run"
ARCHIVE_BIN=""

# ---------------------------------------------------------------- cleanup (also on failure)
DRILL_DIR=""
DRILL_REPO=""
PG_STARTED=0
POLICY_ADDED=0
CONTAINERS=()
exec 9>&2   # the script's stderr, for cleanup's messages whatever is redirected then
cleanup() {
  local rc=$?
  set +e
  exec 2>&9
  local c
  if [ -n "$BG_PID" ] && kill -0 "$BG_PID" 2>/dev/null; then
    log "stopping $BG_PID (TERM, then KILL after 60 s)"
    kill -TERM "$BG_PID"
    for _ in $(seq 120); do kill -0 "$BG_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$BG_PID" 2>/dev/null
  fi
  for c in "${CONTAINERS[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1; done
  if [ "$PG_STARTED" = 1 ]; then
    (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DRILL_DIR/pgdata" -m immediate stop) \
      >/dev/null 2>&1
  fi
  # The chroot steps mount only inside their own mount namespaces (unshare), so nothing
  # should be left; unmount whatever is, deepest first, all the same.
  if [ -d "$WORKDIR" ]; then
    findmnt -rn -o TARGET | grep -F "$WORKDIR/" | sort -r | while read -r m; do
      umount -l "$m"
    done
  fi
  if [ -n "$DRILL_DIR" ] && [ -d "$DRILL_DIR" ]; then
    if [ "$KEEP" = 1 ] || [ "$rc" -ne 0 ]; then log "kept $DRILL_DIR"; else rm -rf "$DRILL_DIR"; fi
  fi
  [ "$POLICY_ADDED" = 0 ] || rm -f /usr/sbin/policy-rc.d
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- host prerequisites
[ "$(id -u)" -eq 0 ] || die "run as root: mmdebstrap, podman and chroot need it"
[ -r /etc/debian_version ] || die "this needs a Debian machine (apt, mmdebstrap)"
mkdir -p "$LOGS" "$OUT"

ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  # No service may start (postgresql, podman's units): policy-rc.d says so to invoke-rc.d.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_ADDED=1
  fi
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"; } >"$LOGS/apt-host.log" 2>&1; then
    tail -n 20 "$LOGS/apt-host.log" >&2
    die "apt-get install ${missing[*]}"
  fi
  [ "$POLICY_ADDED" = 0 ] || rm -f /usr/sbin/policy-rc.d
  POLICY_ADDED=0
}

host_packages=(mmdebstrap umoci jq util-linux git)
[ "$MODE" = chroot ] || host_packages+=(podman runc)
[ "$DRILL" = 0 ] || host_packages+=(postgresql-15 postgresql-client-15)
ensure_packages "${host_packages[@]}"

# ---------------------------------------------------------------- version, revision, context
VERSION="$(sed -nE 's/^project\(gravl-dr VERSION ([0-9.]+).*/\1/p' "$ROOT/CMakeLists.txt")"
[ -n "$VERSION" ] || die "no version in CMakeLists.txt's project()"
IMAGE="localhost/gravl-dr:$VERSION"
CONTEXT="$WORKDIR/context"
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT"
if [ -n "$REV" ]; then
  REVISION="$(git -C "$ROOT" rev-parse --verify "$REV^{commit}")" || die "no commit $REV"
  git -C "$ROOT" archive "$REVISION" CMakeLists.txt src | tar -C "$CONTEXT" -xf -
  SOURCE_DESC="commit $REVISION"
else
  REVISION="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  # The files that go into the image: tracked and untracked-but-not-ignored ones.
  (cd "$ROOT" && git ls-files -z -co --exclude-standard -- CMakeLists.txt src |
    tar --null -T - -cf -) | tar -C "$CONTEXT" -xf -
  if [ -n "$(git -C "$ROOT" status --porcelain -- CMakeLists.txt src 2>/dev/null)" ]; then
    REVISION="$REVISION-dirty"
  fi
  SOURCE_DESC="work tree at $REVISION"
fi
# The image's own build files always come from the work tree (they may postdate --rev).
mkdir -p "$CONTEXT/dev"
cp "$ROOT/Containerfile" "$CONTEXT/"
for f in "${STAGE_FILES[@]}"; do cp "$ROOT/$f" "$CONTEXT/$f"; done
chmod 755 "$CONTEXT/dev/image-stage.sh"
log "gravl-dr $VERSION from the $SOURCE_DESC"

# ---------------------------------------------------------------- 1. the Debian 12 base
# The mirror this machine's apt uses for SUITE (deb822 .sources first, then sources.list).
mirror_for() {
  local suite="$1" fallback="$2" m=""
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    m="$(awk -v RS= -v want="$suite" '{
        uris = ""; suites = ""
        n = split($0, line, "\n")
        for (i = 1; i <= n; i++) {
          if (line[i] ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", line[i]); uris = line[i] }
          if (line[i] ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", line[i]); suites = " " line[i] " " }
        }
        if (uris != "" && index(suites, " " want " ")) { split(uris, u, " "); print u[1]; exit }
      }' "$f")"
    [ -n "$m" ] && break
  done
  if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
    m="$(awk -v want="$suite" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == want) { print $i; exit } }' /etc/apt/sources.list)"
  fi
  echo "${m:-$fallback}"
}
MIRROR="$(mirror_for bookworm http://deb.debian.org/debian)"
SECURITY="$(mirror_for bookworm-security http://deb.debian.org/debian-security)"
BASE_SOURCES=("deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main"
  "deb $SECURITY bookworm-security main")
BASE_TAR="$WORKDIR/base/bookworm-minbase.tar"
BASE_STAMP="$WORKDIR/base/bookworm-minbase.sources"
mkdir -p "$WORKDIR/base"
base_is_fresh() {
  [ "$REFRESH_BASE" = 0 ] && [ -s "$BASE_TAR" ] && [ -r "$BASE_STAMP" ] &&
    [ "$(cat "$BASE_STAMP")" = "$(printf '%s\n' "${BASE_SOURCES[@]}")" ] &&
    [ -z "$(find "$BASE_TAR" -mtime "+$BASE_MAX_AGE_DAYS")" ]
}
t=$(now)
if base_is_fresh; then
  log "base: cached $BASE_TAR"
  TIME[base]="cached"
else
  log "base: mmdebstrap --variant=minbase bookworm from $MIRROR"
  rm -rf "$BASE_TAR.tmp.tar"
  logged mmdebstrap fg_wait nice -n 19 mmdebstrap --variant=minbase --mode=root --format=tar \
    bookworm "$BASE_TAR.tmp.tar" "${BASE_SOURCES[@]}" || die "mmdebstrap"
  mv "$BASE_TAR.tmp.tar" "$BASE_TAR"
  printf '%s\n' "${BASE_SOURCES[@]}" >"$BASE_STAMP"
  TIME[base]="$(since "$t")"
fi

# ---------------------------------------------------------------- 2a. podman
BASE_IMAGE=localhost/gravl-dr-base:bookworm
PODMAN_GLOBAL=()   # e.g. --runtime runc (podman's own flag)
RUN_OPTS=()        # e.g. --ulimit ... (podman run)
BUILD_OPTS=()      # the same for podman build

podman_import_base() {  # again only when the tar changed (stamp: tar mtime+size, image id)
  local stamp="$WORKDIR/base/imported" tar_id
  tar_id="$(stat -c '%Y-%s' "$BASE_TAR")"
  if podman image exists "$BASE_IMAGE" && [ "$(cat "$stamp" 2>/dev/null)" = \
    "$tar_id $(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")" ]; then
    return 0
  fi
  log "podman import $BASE_TAR as $BASE_IMAGE"
  if ! logged podman-import podman import --message "Debian 12 minbase (mmdebstrap)" \
    "$BASE_TAR" "$BASE_IMAGE"; then
    RUNTIME_ERRORS+=("podman import: $(tail -n 3 "$LOGS/podman-import.log" | tr '\n' ' ')")
    return 1
  fi
  echo "$tar_id $(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")" >"$stamp"
}

# Finds runtime flags that can start a container here: crun (Debian's default), then runc;
# with the default rlimits, then with the host's own (a container may not raise them
# without CAP_SYS_RESOURCE). Records every error.
podman_probe() {
  local nofile nproc rt lim out
  nofile="$(ulimit -Hn)"
  nproc="$(ulimit -Hu)"
  [ "$nofile" = unlimited ] && nofile=1048576
  { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
  for rt in ${GRAVL_IMAGE_RUNTIMES:-crun runc}; do
    if ! command -v "$rt" >/dev/null; then
      RUNTIME_ERRORS+=("$rt: not installed")
      continue
    fi
    for lim in "" "--ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc"; do
      local opts=()
      read -r -a opts <<<"$lim"
      if out="$(podman --runtime "$rt" run --rm --network host "${opts[@]}" "$BASE_IMAGE" true 2>&1)"; then
        PODMAN_GLOBAL=(--runtime "$rt")
        RUN_OPTS=("${opts[@]}")
        BUILD_OPTS=(--runtime "$rt" "${opts[@]}")
        log "container runtime: $rt ${lim:-(default rlimits)}"
        return 0
      fi
      RUNTIME_ERRORS+=("podman --runtime $rt run${lim:+ $lim}: $out")
      log "container runtime $rt ${lim:-(default rlimits)} cannot start a container: $out"
    done
  done
  return 1
}

podman_build() {
  local common=(build --pull=never --network host --layers --format oci
    -f "$CONTEXT/Containerfile"
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "JOBS=$JOBS")
  local t old=()
  # The images these tags name now: removed after the build if replaced (their cached
  # layers that the new images share stay).
  mapfile -t old < <(podman image inspect --format '{{.Id}}' "localhost/gravl-dr-build:$VERSION" \
    "$IMAGE" 2>/dev/null || true)
  t=$(now)
  log "podman build: build stage (compile, nice -n 19, -j$JOBS; log: $LOGS/build-stage.log)"
  logged build-stage fg_wait nice -n 19 podman "${PODMAN_GLOBAL[@]}" "${common[@]}" \
    "${BUILD_OPTS[@]}" --target build -t "localhost/gravl-dr-build:$VERSION" "$CONTEXT" ||
    die "build stage"
  TIME[build_stage]="$(since "$t")"
  t=$(now)
  log "podman build: runtime stage (log: $LOGS/runtime-stage.log)"
  logged runtime-stage fg_wait nice -n 19 podman "${PODMAN_GLOBAL[@]}" "${common[@]}" \
    "${BUILD_OPTS[@]}" --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
    -t "$IMAGE" "$CONTEXT" || die "runtime stage"
  TIME[runtime_stage]="$(since "$t")"
  IMAGE_REF="$IMAGE"
  IMAGE_SIZE="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
  local id new
  new="$(podman image inspect --format '{{.Id}}' "localhost/gravl-dr-build:$VERSION" "$IMAGE")"
  for id in "${old[@]}"; do
    grep -qx "$id" <<<"$new" || podman rmi "$id" >/dev/null 2>&1 || true
  done
  t=$(now)
  ARTIFACT="$OUT/gravl-dr-$VERSION.oci.tar"
  rm -f "$ARTIFACT"
  logged save podman save --format oci-archive -o "$ARTIFACT" "$IMAGE" || die "podman save"
  TIME[save]="$(since "$t")"
}

# Runs the image's gravl-dr (its entrypoint) with ARGS; the drill's repository, when set,
# is mounted at /repo. As k8s/backup's pods run it: read-only root, no capabilities, no
# privilege escalation, the drill's scratch directory a volume of its own (TMPDIR=/scratch).
podman_gravl() {
  local name="gravl-image-$$-$RANDOM" mounts=()
  [ -z "$DRILL_REPO" ] || mounts=(-v "$DRILL_REPO:/repo" -e GRAVL_DR_REPO_PATH=/repo
    -e "GRAVL_DR_STANZA=$STANZA" --tmpfs "/scratch:rw,size=2g,mode=1777" -e TMPDIR=/scratch)
  CONTAINERS+=("$name")
  fg_wait podman "${PODMAN_GLOBAL[@]}" run --rm --name "$name" --network host --read-only \
    --cap-drop ALL --security-opt no-new-privileges "${RUN_OPTS[@]}" "${mounts[@]}" \
    "$IMAGE" "$@"
}
podman_sh() {  # a shell command in the image, as its user
  podman "${PODMAN_GLOBAL[@]}" run --rm --network host "${RUN_OPTS[@]}" --entrypoint /bin/sh \
    "$IMAGE" -c "$1"
}
podman_extract_binary() {
  local cid
  cid="$(podman create "$IMAGE")"
  podman cp "$cid:/usr/local/bin/gravl-dr" "$1"
  podman rm "$cid" >/dev/null
}

# ---------------------------------------------------------------- 2b. chroot fallback
CHROOT="$WORKDIR/chroot"
BUILD_ROOT="$CHROOT/build-root"
RUNTIME_ROOT="$CHROOT/runtime-root"

# Runs a command chrooted into ROOT (as USERSPEC, or root when it is empty), in a mount
# namespace of its own: /proc, /dev, a fresh /dev/shm, and the drill's repository at /repo
# are mounted only there and vanish with it, also when it fails. The environment is only
# PATH, LANG and the VAR=VALUE arguments before the command. in_root_niced: at nice 19.
NICE_ROOT=()
in_root_niced() { local NICE_ROOT=(nice -n 19); in_root "$@"; }
in_root() {
  local root="$1" user="$2"
  shift 2
  # shellcheck disable=SC2016 # expanded by the inner shell
  fg_wait "${NICE_ROOT[@]}" unshare --mount --propagation private -- /bin/sh -ec '
    r="$1"; u="$2"; repo="$3"; shift 3
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mount -t tmpfs -o mode=1777,size=512m shm "$r/dev/shm"
    if [ -n "$repo" ]; then mkdir -p "$r/repo"; mount --bind "$repo" "$r/repo"; fi
    if [ -n "$u" ]; then exec chroot --userspec="$u" "$r" "$@"; fi
    exec chroot "$r" "$@"' sh "$root" "$user" "$DRILL_REPO" \
    env -i PATH="$CLEAN_PATH" LANG=C.UTF-8 "$@"
}

unpack_base() {  # a fresh root file system from the base, with the stage files
  rm -rf "$1"
  mkdir -p "$1"
  tar -C "$1" --numeric-owner -xpf "$BASE_TAR"
  mkdir -p "$1$STAGE_DIR"
  install -m 0644 "$CONTEXT/dev/image-packages.txt" "$1$STAGE_DIR/"
  install -m 0755 "$CONTEXT/dev/image-stage.sh" "$1$STAGE_DIR/"
  cp -L /etc/resolv.conf "$1/etc/resolv.conf"   # apt inside needs a resolver
}

chroot_build() {
  local t stamp
  t=$(now)
  # The build root with its packages is reused while the base and the lists are the same;
  # the compile then only rebuilds what changed (tar keeps the sources' mtimes).
  stamp="$(stat -c '%Y-%s' "$BASE_TAR") $(cat "$CONTEXT/dev/image-packages.txt" \
    "$CONTEXT/dev/image-stage.sh" | sha256sum | cut -c1-16)"
  if [ "$(cat "$BUILD_ROOT.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "chroot: build stage packages (log: $LOGS/chroot-build-deps.log)"
    unpack_base "$BUILD_ROOT"
    logged chroot-build-deps in_root_niced "$BUILD_ROOT" "" \
      "$STAGE_DIR/image-stage.sh" build-deps || die "chroot build-deps"
    echo "$stamp" >"$BUILD_ROOT.stamp"
  else
    install -m 0755 "$CONTEXT/dev/image-stage.sh" "$BUILD_ROOT$STAGE_DIR/"
  fi
  rm -rf "$BUILD_ROOT/src" "$BUILD_ROOT/out"
  mkdir -p "$BUILD_ROOT/src"
  tar -C "$CONTEXT" -cf - CMakeLists.txt src | tar -C "$BUILD_ROOT/src" -xpf -
  log "chroot: compile (nice -n 19, -j$JOBS; log: $LOGS/chroot-compile.log)"
  logged chroot-compile in_root_niced "$BUILD_ROOT" "" JOBS="$JOBS" \
    "$STAGE_DIR/image-stage.sh" compile /src /build /out || die "chroot compile"
  TIME[build_stage]="$(since "$t")"

  t=$(now)
  log "chroot: runtime stage (log: $LOGS/chroot-runtime.log)"
  unpack_base "$RUNTIME_ROOT"
  logged chroot-runtime in_root_niced "$RUNTIME_ROOT" "" \
    "$STAGE_DIR/image-stage.sh" runtime || die "chroot runtime stage"
  install -m 0755 "$BUILD_ROOT/out/gravl-dr" "$RUNTIME_ROOT/usr/local/bin/gravl-dr"
  : >"$RUNTIME_ROOT/etc/resolv.conf"   # as in an image: the runtime provides it
  TIME[runtime_stage]="$(since "$t")"
  IMAGE_SIZE="$(du -sb --exclude=./proc --exclude=./dev "$RUNTIME_ROOT" | cut -f1)"
  IMAGE_REF="$RUNTIME_ROOT (root file system)"

  # The same image as an OCI layout + archive, made with umoci from the runtime root.
  t=$(now)
  log "umoci: OCI image from the runtime root file system (log: $LOGS/umoci.log)"
  local layout="$CHROOT/oci" bundle="$CHROOT/bundle"
  rm -rf "$layout" "$bundle"
  # The runtime stage's LABEL and ENV values, read from the Containerfile (its ARG defaults
  # filled in), so that both images say the same.
  local cf="$CONTEXT/Containerfile" labels=() envs=() kv name
  local -A vals=([VERSION]="$VERSION" [REVISION]="$REVISION"
    [BASE_IMAGE]="debian:bookworm (mmdebstrap minbase)")
  for name in SOURCE LICENSES; do
    vals[$name]="$(sed -nE "s/^ARG $name=\"?([^\"]*)\"?\$/\1/p" "$cf" | tail -n 1)"
  done
  while IFS= read -r kv; do
    for name in "${!vals[@]}"; do kv="${kv//"\${$name}"/${vals[$name]}}"; done
    kv="${kv/=\"/=}"
    labels+=(--config.label "${kv%\"}")
  done < <(grep -oE 'org\.opencontainers\.image\.[a-z.]+="[^"]*"' "$cf")
  while IFS= read -r kv; do envs+=(--config.env "$kv"); done < <(awk '
    /^ENV / { on = 1; sub(/^ENV /, "") }
    on { line = $0; more = sub(/\\$/, "", line); n = split(line, w, " ")
         for (i = 1; i <= n; i++) print w[i]; if (!more) on = 0 }' "$cf")
  if [ ${#labels[@]} -lt 12 ] || [ ${#envs[@]} -lt 2 ]; then die "no LABEL/ENV read from $cf"; fi
  {
    umoci init --layout "$layout" &&
      umoci new --image "$layout:$VERSION" &&
      umoci unpack --image "$layout:$VERSION" "$bundle" &&
      tar -C "$RUNTIME_ROOT" --numeric-owner -cf - . | tar -C "$bundle/rootfs" --numeric-owner -xpf - &&
      umoci repack --image "$layout:$VERSION" "$bundle" &&
      umoci config --image "$layout:$VERSION" --os linux --architecture amd64 \
        --config.user 10001:10001 --config.workingdir /var/lib/gravl-dr \
        --config.entrypoint /usr/local/bin/gravl-dr --config.cmd --help \
        --config.env "PATH=$CLEAN_PATH" "${envs[@]}" "${labels[@]}" &&
      umoci gc --layout "$layout"
  } >"$LOGS/umoci.log" 2>&1 || { tail -n 20 "$LOGS/umoci.log" >&2; die "umoci"; }
  rm -rf "$bundle"
  ARTIFACT="$OUT/gravl-dr-$VERSION.oci.tar"
  tar -C "$layout" -cf "$ARTIFACT" .
  TIME[save]="$(since "$t")"
}

chroot_gravl() {  # the runtime root's gravl-dr as uid 10001, with the image's environment
  local envs=(HOME=/var/lib/gravl-dr "GRAVL_DR_PG_BIN_DIR=$PGBIN")
  [ -z "$DRILL_REPO" ] || envs+=(GRAVL_DR_REPO_PATH=/repo "GRAVL_DR_STANZA=$STANZA")
  in_root "$RUNTIME_ROOT" 10001:10001 "${envs[@]}" \
    /bin/sh -c 'cd /var/lib/gravl-dr && exec /usr/local/bin/gravl-dr "$@"' gravl-dr "$@"
}
chroot_sh() {
  in_root "$RUNTIME_ROOT" 10001:10001 HOME=/var/lib/gravl-dr GRAVL_DR_PG_BIN_DIR="$PGBIN" \
    /bin/sh -c "$1"
}
chroot_extract_binary() { cp "$RUNTIME_ROOT/usr/local/bin/gravl-dr" "$1"; }

# ---------------------------------------------------------------- build
use_podman=0
if [ "$MODE" != chroot ]; then
  if podman_import_base && podman_probe; then
    use_podman=1
  elif [ "$MODE" = podman ]; then
    die "the container runtime cannot start containers here: ${RUNTIME_ERRORS[*]}"
  else
    log "falling back to mmdebstrap + chroot"
  fi
fi
if [ "$use_podman" = 1 ]; then
  BUILT_WITH="podman $(podman --version | awk '{print $3}') (${PODMAN_GLOBAL[*]} ${RUN_OPTS[*]})"
  podman_build
  gravl() { podman_gravl "$@"; }
  in_image_sh() { podman_sh "$@"; }
  extract_binary() { podman_extract_binary "$@"; }
else
  BUILT_WITH="mmdebstrap + chroot (runtime root file system), OCI image with umoci"
  chroot_build
  gravl() { chroot_gravl "$@"; }
  in_image_sh() { chroot_sh "$@"; }
  extract_binary() { chroot_extract_binary "$@"; }
fi

# ---------------------------------------------------------------- 3. smoke check
log "smoke check"
t=$(now)
SMOKE="$(gravl --version 2>&1)" || die "gravl-dr --version in the image: $SMOKE"
[[ "$SMOKE" == "gravl-dr $VERSION"* ]] || die "gravl-dr --version printed '$SMOKE'"
help_text="$(gravl --help 2>&1)" || die "gravl-dr --help in the image: $help_text"
help_line="$(head -n 1 <<<"$help_text")"
# shellcheck disable=SC2016 # expanded in the image
checks="$(in_image_sh 'set -e
  id
  if ldd /usr/local/bin/gravl-dr | grep "not found"; then exit 1; fi
  "$GRAVL_DR_PG_BIN_DIR/postgres" --version
  "$GRAVL_DR_PG_BIN_DIR/pg_dump" --version
  "$GRAVL_DR_PG_BIN_DIR/pg_rewind" --version
  test -z "$(ls -A /etc/postgresql 2>/dev/null)"
  echo "no PostgreSQL cluster in the image"
  test -z "$(ls -A /var/lib/apt/lists 2>/dev/null)"
  echo "no apt lists"
  echo "locales:" $(locale -a)' 2>&1)" ||
  die "smoke check in the image: $checks"
grep -q '^uid=10001(gravl) gid=10001(gravl)' <<<"$checks" || die "the image does not run as gravl (10001): $checks"
if [ "$use_podman" = 1 ]; then
  config="$(podman image inspect --format 'User={{.Config.User}} Entrypoint={{json .Config.Entrypoint}} Cmd={{json .Config.Cmd}} WorkingDir={{.Config.WorkingDir}}' "$IMAGE")"
  [[ "$config" == *'Entrypoint=["/usr/local/bin/gravl-dr"]'* ]] || die "entrypoint: $config"
  checks="$checks"$'\n'"$config"
fi
TIME[smoke]="$(since "$t")"
SMOKE="$SMOKE"$'\n'"--help: $help_line"$'\n'"$checks"
log "smoke check passed: $(head -n 1 <<<"$SMOKE")"

# ---------------------------------------------------------------- 4. restore drill
run_drill() {
  DRILL_DIR="$(mktemp -d /tmp/gravl-image-drill-XXXXXX)"
  chmod 755 "$DRILL_DIR"
  chown postgres: "$DRILL_DIR"
  local bin="$DRILL_DIR/bin/gravl-dr" pgdata="$DRILL_DIR/pgdata" port=55432
  mkdir -p "$DRILL_DIR/bin"
  # archive_command runs as postgres on the host: use the image's own binary (the same
  # Debian 12 libraries are on this host); if it cannot run here, the host build's.
  extract_binary "$bin"
  chmod 755 "$DRILL_DIR/bin" "$bin"
  ARCHIVE_BIN="the image's gravl-dr, run on the host as postgres"
  if ! runuser -u postgres -- "$bin" --version >/dev/null 2>&1; then
    log "the image's binary does not run on this host; archive_command uses build/src/gravl-dr"
    cp "$ROOT/build/src/gravl-dr" "$bin"
    ARCHIVE_BIN="build/src/gravl-dr (the image's binary does not run on this host)"
  fi
  as_pg() { (cd / && runuser -u postgres -- "$@"); }
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  local conn="host=127.0.0.1 port=$port user=postgres dbname=postgres"
  local config="$DRILL_DIR/gravl-dr.yaml"
  # An explicit configuration: a /etc/gravl-dr/gravl-dr.yaml on this host stays out of it.
  cat >"$config" <<YAML
stanza: $STANZA
pg:
  conninfo: "$conn"
repos:
  - { name: local, type: posix, path: $DRILL_DIR/repo }
YAML
  chmod 644 "$config"
  local g=("$bin" --config "$config")
  local psql=("$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -d "$conn")

  log "drill: throwaway PostgreSQL 15 on 127.0.0.1:$port in $DRILL_DIR (as postgres)"
  as_pg "$PGBIN/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$LOGS/drill-initdb.log" 2>&1 || die "initdb (see $LOGS/drill-initdb.log)"
  cat >>"$pgdata/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DRILL_DIR'
archive_mode = on
archive_command = '$bin --config $config archive-push %p'
CONF
  PG_STARTED=1
  as_pg "$PGBIN/pg_ctl" -D "$pgdata" -l "$DRILL_DIR/server.log" -w start >/dev/null ||
    die "the throwaway cluster did not start: $(tail -n 5 "$DRILL_DIR/server.log")"
  {
    as_pg "${g[@]}" stanza-create &&
      as_pg "$PGBIN/pgbench" -i -s 2 --foreign-keys -q "$conn" &&
      as_pg "${psql[@]}" -c "CREATE TABLE orders(id int PRIMARY KEY, item text NOT NULL)" \
        -c "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 5000) g" &&
      as_pg "${g[@]}" backup --type full &&
      as_pg "${psql[@]}" -c "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(5001, 6000) g"
  } >"$LOGS/drill-setup.log" 2>&1 || { tail -n 30 "$LOGS/drill-setup.log" >&2; die "drill setup"; }
  # Everything up to now reaches the repository, then the cluster goes away: the drill only
  # needs the repository.
  local seg last
  seg="$(as_pg "${psql[@]}" -c "SELECT pg_walfile_name(pg_switch_wal())")"
  for _ in $(seq 300); do
    last="$(as_pg "${psql[@]}" -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")"
    [[ "$last" > "$seg" || "$last" == "$seg" ]] && break
    sleep 0.2
  done
  [[ "$last" > "$seg" || "$last" == "$seg" ]] || die "WAL $seg was not archived (last: $last)"
  as_pg "$PGBIN/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null
  PG_STARTED=0
  # In a deployment the repository belongs to the user gravl-dr runs as (10001 here).
  chown -R 10001:10001 "$DRILL_DIR/repo"
  DRILL_REPO="$DRILL_DIR/repo"

  log "drill: gravl-dr test-restore in the image (log: $LOGS/drill.log)"
  local t rc=0
  t=$(now)
  gravl --output json test-restore >"$OUT/drill.json" 2>"$LOGS/drill.log" || rc=$?
  TIME[drill]="$(since "$t")"
  local ok rto total checks_text
  ok="$(jq -r '.ok' "$OUT/drill.json" 2>/dev/null || echo "no JSON")"
  rto="$(jq -r '.rto_s | . * 10 | round / 10' "$OUT/drill.json" 2>/dev/null || echo "?")"
  total="$(jq -r '.timings.total_s | . * 10 | round / 10' "$OUT/drill.json" 2>/dev/null || echo "?")"
  checks_text="$(jq -r '.checks[] | "    [\(if .ok then "ok" else "FAIL" end)] \(.check): \(.detail)"' \
    "$OUT/drill.json" 2>/dev/null || true)"
  DRILL_RESULT="exit $rc, ok: $ok, label $(jq -r '.label' "$OUT/drill.json" 2>/dev/null); measured RTO ${rto}s, drill total ${total}s (gravl-dr), ${TIME[drill]}s wall clock"$'\n'"$checks_text"
  if [ "$rc" -ne 0 ] || [ "$ok" != true ]; then
    tail -n 30 "$LOGS/drill.log" >&2
    die "the restore drill in the image failed: $DRILL_RESULT"
  fi
  # The drill's report went into the repository, as uid 10001: info shows it.
  gravl --output json info >"$OUT/drill-info.json" 2>>"$LOGS/drill.log" ||
    die "gravl-dr info after the drill"
  log "drill passed: RTO ${rto}s"
}
[ "$DRILL" = 0 ] || run_drill

# ---------------------------------------------------------------- 5. summary
human() { numfmt --to=iec --suffix=B "$1" 2>/dev/null || echo "$1 bytes"; }
secs() { if [[ "${1:-}" =~ ^[0-9.]+$ ]]; then echo "$1 s"; else echo "${1:-not run}"; fi; }
{
  echo "gravl-dr image $VERSION ($SOURCE_DESC), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "built with:     $BUILT_WITH"
  if [ ${#RUNTIME_ERRORS[@]} -gt 0 ]; then
    echo "runtime errors:"
    printf '    %s\n' "${RUNTIME_ERRORS[@]}"
  fi
  echo "image:          $IMAGE_REF"
  echo "image size:     $(human "$IMAGE_SIZE") uncompressed ($IMAGE_SIZE bytes)"
  echo "OCI archive:    $ARTIFACT ($(human "$(stat -c %s "$ARTIFACT")"))"
  echo "base:           $(secs "${TIME[base]}") (mmdebstrap --variant=minbase bookworm, $MIRROR)"
  echo "build stage:    $(secs "${TIME[build_stage]}") (build packages + compile of gravl-dr)"
  echo "runtime stage:  $(secs "${TIME[runtime_stage]}")"
  echo "OCI export:     $(secs "${TIME[save]}")"
  echo "smoke check:    $(secs "${TIME[smoke]}")"
  while IFS= read -r line; do echo "    $line"; done <<<"$SMOKE"
  echo "restore drill:  $DRILL_RESULT"
  [ -z "$ARCHIVE_BIN" ] || echo "    stanza-create, archive_command and backup: $ARCHIVE_BIN"
} | tee "$SUMMARY"
