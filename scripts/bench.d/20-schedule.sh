#!/usr/bin/env bash
# Scheduler core (package scheduler), no server around it:
#  1. synthetic: 10,000 nodes, 100,000 tasks, one Place call per task
#     (goal: ≥ 20,000 placements/s, p99 ≤ 1 ms per placement on 2 cores);
#  2. Google 2011 trace: the tasks present at the trace start packed onto
#     machines of the most common shape (goal: machines used within 3% of
#     the lower bound). Skipped when ../shared/traces (or $FATHOM_TRACES) is absent.
# Wall-clock figures include time spent waiting for a core on a busy machine;
# cpu_seconds / placements_per_cpu_sec and load_average_1m say how busy.
# Also runs the Go benchmarks (go test -bench) of package scheduler.
set -euo pipefail
BIN="${FATHOM_BIN:-$PWD/bin/fathom}"
[ -x "$BIN" ] || { echo "build first: make build (looked for $BIN)" >&2; exit 1; }
TRACES="${FATHOM_TRACES:-$PWD/../shared/traces}"

echo "--- bench schedule (synthetic)"
"$BIN" bench schedule --nodes "${BENCH_SCHED_NODES:-10000}" --tasks "${BENCH_SCHED_TASKS:-100000}" -o json

trace="$TRACES/google2011/part-00000-of-00500.csv.gz"
if [ -f "$trace" ]; then
  echo "--- bench schedule (google2011 trace, state at t=0)"
  "$BIN" bench schedule --trace "$trace" --format google2011 -o json
else
  echo "--- bench schedule (google2011 trace): skipped, $trace not found (set FATHOM_TRACES)"
fi

echo "--- go test -bench (package scheduler)"
go test -run '^$' -bench 'BenchmarkPlace$' -benchtime "${BENCH_SCHED_BENCHTIME:-20000x}" ./scheduler/
go test -run '^$' -bench 'BenchmarkPlaceBatch' -benchtime 1x ./scheduler/
