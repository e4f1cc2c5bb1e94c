#!/usr/bin/env bash
# Embedded metrics store: remote-write ingest rate (samples/s) and p50/p99 of a
# full Job right-sizing dashboard refresh (ranking variables + panel queries)
# over 24 h of 1,000 tasks, with the per-task recording rules evaluated over
# that day as the store's rule manager would have (see
# `fathom bench metrics --help` and docs/metrics.md for the method; goal: p99
# ≤ 2 s). Uses about 2 GiB of memory and a few minutes of CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${FATHOM_BIN:-$PWD/bin/fathom}"
[ -x "$bin" ] || go build -o "$bin" ./cmd/fathom
"$bin" bench metrics "$@"
