#!/usr/bin/env bash
# Predictor figures: training time over 1,000,000 five-minute windows (goal:
# <= 10 s on 2 cores), and `fathom model eval` on the Bitbrains trace (goal:
# <= 60 s) when ../shared/traces (or $FATHOM_TRACES) is present.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
echo "--- predictor: training over 1,000,000 windows (250 tasks x 4,000), GOMAXPROCS=$(nproc)"
$GO test ./predictor/ -run '^$' -bench 'BenchmarkTrain1M' -benchtime 1x -count 1 |
  awk '/^BenchmarkTrain1M/ { split($1, a, "/"); sub(/-[0-9]+$/, "", a[2]);
    for (i = 1; i <= NF; i++) if ($i == "cpu-s/1M-windows") cpu = $(i-1);
    printf "train %-10s %8.2f s per 1M windows (wall; goal <= 10 s), %6.2f s CPU\n", a[2], $3/1e9, cpu }'
traces=${FATHOM_TRACES:-../shared/traces}
trace=$traces/bitbrains-rnd-2013-07-vm001-250.csv.gz
bin=${FATHOM_BIN:-bin/fathom}
if [ ! -f "$trace" ]; then
  echo "--- model eval: skipped ($trace not found; set FATHOM_TRACES)"
  exit 0
fi
[ -x "$bin" ] || $GO build -o "$bin" ./cmd/fathom
for vms in "" 1-150; do  # all VMs (the 250-VM goal) and the tuning VMs; validation (151-250) is reported once, in docs/predictor.md
  echo "--- fathom model eval --format bitbrains ${vms:+--vms $vms} (${vms:-all VMs})"
  /usr/bin/env time -f "wall time %e s (goal <= 60 s), CPU %U s user + %S s sys" \
    "$bin" model eval --trace "$trace" --format bitbrains ${vms:+--vms "$vms"}
done
