#!/usr/bin/env bash
# Job submissions over REST on loopback: `fathom bench submit` starts its own
# control plane in-process with an embedded etcd (fsync on) in a temporary
# directory, submits BENCH_SUBMIT_JOBS unsized jobs from BENCH_SUBMIT_CONCURRENCY
# clients, and prints submissions per second and p50/p99 latency. A job is
# acknowledged only after etcd committed it (etcd batches concurrent proposals
# into one fsync). Goal: at least 2,000 submissions/s on a 2-core machine.
set -euo pipefail
BIN="${FATHOM_BIN:-$PWD/bin/fathom}"
[ -x "$BIN" ] || { echo "build first: make build (looked for $BIN)" >&2; exit 1; }
echo "--- bench submit (REST, embedded etcd, loopback)"
"$BIN" bench submit --jobs "${BENCH_SUBMIT_JOBS:-20000}" --concurrency "${BENCH_SUBMIT_CONCURRENCY:-64}" -o json
