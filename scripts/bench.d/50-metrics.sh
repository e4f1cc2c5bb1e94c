#!/usr/bin/env bash
# Embedded metrics store: remote-write ingest rate (samples/s) and p50/p99 of a
# Job right-sizing dashboard refresh over 24 h of 1,000 tasks (see
# `fathom bench metrics --help` and docs/metrics.md for the method).
# Uses about 2 GiB of memory and a few minutes of CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${FATHOM_BIN:-$PWD/bin/fathom}"
[ -x "$bin" ] || go build -o "$bin" ./cmd/fathom
"$bin" bench metrics "$@"
