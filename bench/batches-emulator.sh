#!/usr/bin/env bash
# The emulator's batch figure: the system test `emulator_batches` (a batch on the AWS adapters,
# DynamoDB and SQS on moto server, drained into the batch worker) with 10,000 items instead of the
# suite's 1,000. Runs through infra/test.sh, which starts moto; prints the test's figure line.
#
#   bench/batches-emulator.sh [ITEMS]     (default 10000; a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
export PHOENIX_EMULATOR_BATCH_ITEMS="${1:-10000}"
infra/test.sh -p phoenix-e2e --test system emulator_batches -- --nocapture 2>&1 | grep -E 'approve on the emulator|test result|panicked'
