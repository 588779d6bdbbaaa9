#!/usr/bin/env bash
# S3 driver benchmark: upload and download throughput and peak memory for one large object
# (1 GiB by default), gravl-dr's driver side by side with the AWS JavaScript SDK v3 in the
# same run, both against s3rver behind the verifying gateway on 127.0.0.1 (every request's
# SigV4 signature and payload hash is checked, as AWS does).
#
# The endpoint is local and single-threaded (node), so the absolute figures measure the
# emulator as much as the clients; the ratio between the two clients on the same endpoint and
# gravl-dr's peak memory are the meaningful results.
#
# Usage: bench/s3_bench.sh [SIZE_MIB=1024] [PART_SIZE_MIB=8] [CONCURRENCY=4]
# Writes bench/results/s3-<time>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1024}
PART=${2:-8}
CONC=${3:-4}
BENCH="$PWD/build/bench/gravl_s3_bench"
[ -x "$BENCH" ] || { echo "build first: ./dev/build.sh" >&2; exit 1; }
./tests/s3/setup.sh
WORK="$(mktemp -d /tmp/gravl-s3bench-XXXXXX)"
GW_PID=""
cleanup() { [ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

export GATEWAY_ACCESS_KEY_ID=AKIDGRAVLBENCH000001
GATEWAY_SECRET_ACCESS_KEY="bench/$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
export GATEWAY_SECRET_ACCESS_KEY
export AWS_ACCESS_KEY_ID=$GATEWAY_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$GATEWAY_SECRET_ACCESS_KEY
mkdir -p "$WORK/s3rver"
node --openssl-legacy-provider tests/s3/gateway.js --dir "$WORK/s3rver" --bucket bench \
  --no-stdin-watch > "$WORK/ready" 2> "$WORK/gateway.log" &
GW_PID=$!
for _ in $(seq 300); do grep -q port "$WORK/ready" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -E 's/.*"port": *([0-9]+).*/\1/' "$WORK/ready")
[ -n "$PORT" ] || { cat "$WORK/gateway.log" >&2; exit 1; }
ENDPOINT="http://127.0.0.1:$PORT"
echo "== gateway on $ENDPOINT; object $SIZE MiB, parts $PART MiB x $CONC in flight" >&2

echo "== gravl-dr driver" >&2
GRAVL=$("$BENCH" "$ENDPOINT" bench "$SIZE" "$PART" "$CONC")
echo "$GRAVL" >&2

echo "== AWS JavaScript SDK v3 (interop.js: multipart in 8 MiB parts)" >&2
head -c $((SIZE * 1024 * 1024)) /dev/urandom > "$WORK/object"
sdk_run() {  # prints "seconds peak_rss_kib"
  /usr/bin/time -f "%e %M" -o "$WORK/time" node --openssl-legacy-provider tests/s3/interop.js \
    "$@" --endpoint "$ENDPOINT" --bucket bench --key sdk/object --path-style >/dev/null
  cat "$WORK/time"
}
read -r SDK_UP SDK_UP_RSS < <(sdk_run put --file "$WORK/object")
rm -f "$WORK/object.back"
read -r SDK_DOWN SDK_DOWN_RSS < <(sdk_run get --file "$WORK/object.back")
cmp -s "$WORK/object" "$WORK/object.back" || { echo "SDK round trip differs" >&2; exit 1; }
echo "SDK upload ${SDK_UP}s (peak ${SDK_UP_RSS} KiB), download ${SDK_DOWN}s (peak ${SDK_DOWN_RSS} KiB)" >&2

mkdir -p bench/results
OUT="bench/results/s3-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$GRAVL" "$SIZE" "$SDK_UP" "$SDK_DOWN" "$SDK_UP_RSS" "$SDK_DOWN_RSS" > "$OUT" <<'PY'
import json, sys
g = json.loads(sys.argv[1]); size = float(sys.argv[2])
up, down, up_rss, down_rss = map(float, sys.argv[3:7])
res = {
  "object_mib": size,
  "gravl": g,
  "aws_sdk_js": {"upload_seconds": up, "download_seconds": down,
                 "upload_mib_per_s": size / up, "download_mib_per_s": size / down,
                 "peak_rss_mib_upload": up_rss / 1024, "peak_rss_mib_download": down_rss / 1024},
  "ratios": {
    "upload_throughput_gravl_over_sdk": (size / g["upload_seconds"]) / (size / up),
    "download_throughput_gravl_over_sdk": (size / g["download_seconds"]) / (size / down),
    "peak_rss_gravl_over_sdk": g["peak_rss_mib"] / (max(up_rss, down_rss) / 1024),
  },
}
print(json.dumps(res, indent=2))
PY
cat "$OUT"
echo "wrote $OUT" >&2
