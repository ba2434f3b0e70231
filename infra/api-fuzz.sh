#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document against a fresh local server (schemathesis,
# from PyPI): generated requests for every operation, as an admin, bounded in count and time.
# Fails on any 5xx response or if the server logged a panic.
#
#   infra/api-fuzz.sh            # PHOENIX_API_FUZZ_EXAMPLES (default 40) examples per operation
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${PHOENIX_API_FUZZ_VENV:-.venv-api-fuzz}"
examples="${PHOENIX_API_FUZZ_EXAMPLES:-40}"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi

cargo build --locked -p phoenix-local
server=target/debug/phoenix-local
data="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
PHOENIX_DATA_DIR="$data/data" PHOENIX_ADDR="127.0.0.1:$port" RUST_LOG=warn "$server" >"$data/server.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fsS "$base/v1/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/v1/health" >/dev/null

token="$("$server" token admin)"
status=0
timeout 900 "$venv/bin/schemathesis" run "$base/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error \
  --max-examples "$examples" \
  --workers 1 \
  --seed 20261124 \
  --no-color || status=$?

if grep -q "panicked" "$data/server.log"; then
  echo "the server panicked during the API fuzz run:" >&2
  grep -B2 -A10 "panicked" "$data/server.log" >&2
  status=1
fi
exit "$status"
