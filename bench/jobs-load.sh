#!/usr/bin/env bash
# Background jobs under load on the local stack: a model-wide regenerate of N media (every preset
# rebuilt), its items/s, the server's peak memory, and submit → running latency on each lane while
# it runs (probe jobs every half second on both lanes), plus how long a new upload takes to be
# processed during the regenerate against the same upload on an idle server.
#
#   bench/jobs-load.sh [N]        (default 500 media)
#
# Starts the release server on a fresh data folder and a free port, uploads N photos through the
# API and waits until they are processed, then runs the regenerate. Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-500}

cargo build --release -q -p phoenix-local
data=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
api="http://127.0.0.1:$port"
PHOENIX_DATA_DIR="$data" PHOENIX_ADDR="127.0.0.1:$port" RUST_LOG=warn target/release/phoenix-local >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
until curl -fsS "$api/v1/health" >/dev/null 2>&1; do sleep 0.2; done
API="$api" PID="$server" COUNT="$count" TOKEN="$(target/release/phoenix-local token admin)" \
  PHOTO=../shared/testdata/photos/adobe-rgb.jpg python3 bench/jobs_load.py
