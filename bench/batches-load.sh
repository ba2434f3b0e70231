#!/usr/bin/env bash
# Batch throughput on the local stack: a 10,000-item approve (submit to completed), and the same
# 1,000 changes made as one batch and as 1,000 single PATCH requests, as a ratio. Runs the
# ignored test `batches::throughput` of the system tests in release (the media are seeded straight
# into the store), and prints a table for docs/performance.md.
#
#   bench/batches-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -q -p phoenix-e2e --test system batches::throughput -- --ignored --nocapture 2>&1 | grep '^|'
