#!/usr/bin/env bash
# Makes docs/img/predictor-sweep-*.png: runs `fathom model eval --sweep` on
# the Bitbrains development trace and plots it with scripts/plot-sweep.py.
#   scripts/predictor-sweep.sh tuning       VMs 1-150 (what the model may be tuned on)
#   scripts/predictor-sweep.sh validation   VMs 151-250 (reported once; never tune on it)
#   FATHOM_BIN     fathom binary (default bin/fathom, `make build`)
#   FATHOM_TRACES  folder of the traces (default ../shared/traces)
#   OUT            output folder (default docs/img); the JSON goes beside the PNG
# Needs python3-matplotlib (scripts/deps.sh notebooks).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${FATHOM_BIN:-bin/fathom}"
traces="${FATHOM_TRACES:-../shared/traces}"
out="${OUT:-docs/img}"
trace="$traces/bitbrains-rnd-2013-07-vm001-250.csv.gz"
case "${1:-}" in
  tuning) vms=1-150 title="Bitbrains Rnd VMs 1-150 (tuning)" ;;
  validation) vms=151-250 title="Bitbrains Rnd VMs 151-250 (validation, reported once)" ;;
  *) echo "usage: $0 tuning|validation" >&2; exit 2 ;;
esac
[ -f "$trace" ] || { echo "predictor-sweep: no trace at $trace (set FATHOM_TRACES)" >&2; exit 1; }
[ -x "$bin" ] || { echo "predictor-sweep: $bin not found; run 'make build'" >&2; exit 1; }
mkdir -p "$out"
json="${TMPDIR:-/tmp}/predictor-sweep-$1.json"
set -x
"$bin" model eval --trace "$trace" --format bitbrains --vms "$vms" --sweep
"$bin" model eval --trace "$trace" --format bitbrains --vms "$vms" --sweep -o json >"$json"
/usr/bin/env PATH="/usr/bin:$PATH" python3 scripts/plot-sweep.py "$json" "$out/predictor-sweep-$1.png" "$title"
