#!/bin/sh
# make-cert.sh OUTDIR [DNSNAME]... — throwaway TLS material for gateway.js --tls-cert/--tls-key.
#
# Writes (overwriting) OUTDIR/ca.pem + OUTDIR/ca.key (a self-signed test CA) and
# OUTDIR/server.pem + OUTDIR/server.key (a server certificate signed by that CA; leaf only, no
# chain).  EC P-256 keys, valid for 2 days.  The server certificate's subjectAltName is
#   IP:127.0.0.1, DNS:localhost, DNS:*.localhost  (+ DNS:<name> for every extra argument).
# Note: neither libcurl nor Node accept a wildcard directly below a single-label name, so
# "*.localhost" does NOT match "bucket.localhost" for them; pass "bucket.localhost" explicitly
# for virtual-host style over TLS.
#
# Quiet on success; on failure openssl's output goes to stderr and the exit status is non-zero.
# Needs the openssl CLI (1.1.1 or 3.x).
set -eu

prog=make-cert.sh
die() { echo "$prog: $*" >&2; exit 1; }

if [ $# -lt 1 ] || [ -z "$1" ]; then echo "usage: $prog OUTDIR [DNSNAME]..." >&2; exit 2; fi
out=$1
shift
command -v openssl >/dev/null 2>&1 || die "openssl CLI not found"

san="IP:127.0.0.1,DNS:localhost,DNS:*.localhost"
for n in "$@"; do
  case $n in
    ''|*[!A-Za-z0-9.*-]*) die "bad DNS name '$n'" ;;
  esac
  san="$san,DNS:$n"
done

mkdir -p "$out" || die "cannot create $out"
# build everything in a scratch dir inside OUTDIR, then move into place (same file system)
work=$(mktemp -d "$out/.make-cert.XXXXXX") || die "cannot create a temporary directory in $out"
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM

log="$work/openssl.log"
run() {
  if ! "$@" >>"$log" 2>&1 </dev/null; then
    cat "$log" >&2
    die "failed: $*"
  fi
}

serial() { echo "0x$(openssl rand -hex 16)"; }

cat >"$work/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = gravl-dr test CA (throwaway)
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF

cat >"$work/server.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

umask 077
run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key"
run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/server.key"
umask 022
run openssl req -new -x509 -config "$work/ca.cnf" -key "$work/ca.key" -sha256 -days 2 \
  -set_serial "$(serial)" -out "$work/ca.pem"
run openssl req -new -config "$work/server.cnf" -key "$work/server.key" -sha256 -out "$work/server.csr"
run openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -sha256 -days 2 \
  -set_serial "$(serial)" -extfile "$work/server.cnf" -extensions v3_server -out "$work/server.pem"
run openssl verify -CAfile "$work/ca.pem" -purpose sslserver "$work/server.pem"

for f in ca.key ca.pem server.key server.pem; do
  mv -f "$work/$f" "$out/$f" || die "cannot write $out/$f"
done
