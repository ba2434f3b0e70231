#!/usr/bin/env bash
# HTTP throughput of the local server: 64 clients (wrk) against one media's GET and a 50-item list,
# as plain JSON, gzip and brotli, and as a lean list (`fields=`), with response sizes.
#
#   bench/api-load.sh [SECONDS]        (default 10 s a run)
#
# Starts the release server on a fresh data folder and a free port, uploads 50 photos through the
# API, waits until they are processed, then runs wrk once per case. Needs wrk (apt-get install wrk),
# curl and python3. Prints one table row per case; paste it into docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }

cargo build --release -q -p phoenix-local
data=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
api="http://127.0.0.1:$port"
PHOENIX_DATA_DIR="$data" PHOENIX_ADDR="127.0.0.1:$port" RUST_LOG=warn target/release/phoenix-local >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
until curl -fsS "$api/v1/health" >/dev/null 2>&1; do sleep 0.2; done
token=$(target/release/phoenix-local token admin)
photo=../shared/testdata/photos/grayscale.jpg
size=$(wc -c <"$photo")

json() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1:]: v=v[k]
print(v)' "$@"; }
for _ in $(seq 50); do
  created=$(curl -fsS -X POST "$api/v1/models/bench/media/uploads" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "{\"filename\":\"p.jpg\",\"content_type\":\"image/jpeg\",\"bytes\":$size}")
  curl -fsS -X PUT "$(echo "$created" | json upload url)" -H 'Content-Type: image/jpeg' --data-binary @"$photo" -o /dev/null
  media=$(echo "$created" | json media_id)
done
until [ "$(curl -fsS "$api/v1/models/bench/media?status=pending_review&limit=100" -H "Authorization: Bearer $token" \
  | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')" = 50 ]; do sleep 1; done

one="$api/v1/models/bench/media/$media"
list="$api/v1/models/bench/media?limit=50"
lean="$api/v1/models/bench/media?limit=50&fields=status,caption,placeholder"
printf '| case | response bytes | req/s | p50 | p99 |\n|---|---|---|---|---|\n'
run() {
  local name=$1 url=$2 encoding=$3
  local bytes
  bytes=$(curl -fsS -o /dev/null -w '%{size_download}' "$url" -H "Authorization: Bearer $token" ${encoding:+-H "Accept-Encoding: $encoding"})
  local out
  out=$(wrk -t2 -c64 -d"${seconds}s" --latency -H "Authorization: Bearer $token" ${encoding:+-H "Accept-Encoding: $encoding"} "$url")
  local rps p50 p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print int($2)}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$bytes" "$rps" "$p50" "$p99"
}
run "GET one media" "$one" ""
run "GET one media, gzip" "$one" "gzip"
run "list of 50" "$list" ""
run "list of 50, gzip" "$list" "gzip"
run "list of 50, br" "$list" "br"
run "list of 50, fields=status,caption,placeholder" "$lean" ""
run "list of 50, fields=…, gzip" "$lean" "gzip"
