#!/usr/bin/env bash
# The test command: starts a moto server (S3, DynamoDB, SQS, EventBridge, Lambda, CloudFront, SSM) on a free port, points the AWS SDK at
# it through the standard environment, and runs the workspace's tests. Extra arguments go to
# `cargo test`, e.g. `infra/test.sh -p phoenix-storage --test conformance`; without -p/--package
# every package of the workspace is tested. Missing build tools are installed first (require.sh),
# and so are Chromium, which the browser test (tests/system/browser.rs) drives headless, and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
source infra/require.sh
# curl: the walkthrough test pastes the server's printed walkthrough (curl commands) into bash.
if [ -n "${PHOENIX_CHROMIUM:-}" ]; then
  require_build_tools curl
  [ -x "$PHOENIX_CHROMIUM" ] || { echo "PHOENIX_CHROMIUM=$PHOENIX_CHROMIUM is not an executable" >&2; exit 1; }
else
  # The system's package (Debian's `chromium`), installed as root where missing; otherwise the
  # command to run is printed and the tests do not start.
  require_build_tools chromium curl
  PHOENIX_CHROMIUM="$(command -v chromium)"
fi
export PHOENIX_CHROMIUM
echo "==> browser tests use $PHOENIX_CHROMIUM" >&2

VENV="$ROOT/.venv-moto"
# What the emulator needs; a venv made for another list is brought up to date.
MOTO_REQUIREMENTS=("moto[s3,sqs,dynamodb,events,awslambda,cloudfront,ssm,cloudwatch]==5.2.5" flask flask-cors)
if [ ! -x "$VENV/bin/moto_server" ] || [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "${MOTO_REQUIREMENTS[*]}" ]; then
  echo "==> installing moto into $VENV" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${MOTO_REQUIREMENTS[@]}"
  echo "${MOTO_REQUIREMENTS[*]}" >"$VENV/.requirements"
fi

PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
mkdir -p "$ROOT/target"
LOG="$ROOT/target/moto.log"

"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
MOTO_PID=$!
cleanup() {
  kill "$MOTO_PID" 2>/dev/null || true
  wait "$MOTO_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ready=0
for _ in $(seq 1 100); do
  if ! kill -0 "$MOTO_PID" 2>/dev/null; then
    break
  fi
  if "$VENV/bin/python" -c "import sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/moto-api/', timeout=1); sys.exit(0)" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ "$ready" != 1 ]; then
  echo "moto_server did not come up on port $PORT; last lines of $LOG:" >&2
  tail -n 40 "$LOG" >&2 || true
  exit 1
fi
echo "==> moto_server on 127.0.0.1:$PORT (pid $MOTO_PID, log $LOG)" >&2

export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true
export PHOENIX_S3_FORCE_PATH_STYLE=true

# `--workspace` unless the caller picked packages (cargo would otherwise test everything anyway).
scope=(--workspace)
for arg in "$@"; do
  case "$arg" in
    --) break ;;
    -p | -p* | --package | --package=*) scope=() ;;
  esac
done
cargo test "${scope[@]}" "$@"
