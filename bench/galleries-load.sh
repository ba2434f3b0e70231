#!/usr/bin/env bash
# Public gallery reads on the local stack: a 200-item gallery read by 64 concurrent clients: the
# first read after a publish, the served stored document (page and JSON), and 304 revalidations;
# p50/p99 and requests/s. Runs the ignored test `gallery_bench::public_reads` of the system tests
# in release and prints a table for docs/performance.md.
#
#   bench/galleries-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -q -p phoenix-e2e --test system gallery_bench::public_reads -- --ignored --nocapture 2>&1 \
  | grep -E '^\||^A [0-9]+-item'
