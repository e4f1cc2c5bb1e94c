#!/usr/bin/env bash
# The whole control plane end to end: `fathom bench cluster` starts `fathom
# server` as a child process (embedded etcd, fsync on) and BENCH_CLUSTER_NODES
# hollow nodes speaking the real agent protocol over gRPC, submits
# BENCH_CLUSTER_TASKS tasks over REST in jobs of 10,000, and prints tasks/s to
# all running, start latency p50/p99, the API trickle's p99, the server's peak
# RSS and CPU seconds, and the load average; it fails if any task is not
# running exactly once within its node's capacity. The default size finishes in
# a minute or two; the figure is BENCH_CLUSTER_NODES=5000
# BENCH_CLUSTER_TASKS=100000 (goal: ≥ 3,750 tasks/s, start p99 ≤ 5 s, API p99
# ≤ 1 s, server RSS ≤ 1 GiB). See docs/benchmarks.md.
set -euo pipefail
BIN="${FATHOM_BIN:-$PWD/bin/fathom}"
[ -x "$BIN" ] || { echo "build first: make build (looked for $BIN)" >&2; exit 1; }
echo "--- bench cluster (server process, hollow nodes over gRPC, REST)"
"$BIN" bench cluster --nodes "${BENCH_CLUSTER_NODES:-1000}" --tasks "${BENCH_CLUSTER_TASKS:-20000}" --quiet -o json
