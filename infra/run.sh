#!/usr/bin/env bash
# The run command: the whole system on one machine with the local adapters (files on disk, SQLite,
# in-process queues). Installs missing build tools first (see require.sh). Arguments go to the
# server, e.g. `infra/run.sh token admin` or `infra/run.sh token model <model_id>`.
#
# It runs from the repository root whatever folder it is called from, so the data folder
# (PHOENIX_DATA_DIR, default `.phoenix-data`, relative to the working folder) is
# `<repo>/.phoenix-data`, and a relative PHOENIX_DATA_DIR is taken from the repository root too.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/require.sh
require_build_tools
exec cargo run --release -p phoenix-local -- "$@"
