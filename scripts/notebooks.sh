#!/usr/bin/env bash
# make notebooks: runs `fathom sim` and `fathom sim sweep` on a trace, then
# executes notebooks/*.ipynb headless into notebooks/out/ (HTML and PNG).
#   FATHOM_BIN            fathom binary (default bin/fathom, built by make)
#   FATHOM_NB_TRACE       Bitbrains trace to replay (default: the full trace in
#                         ../shared/traces when present, else the small excerpt
#                         in sim/testdata)
#   FATHOM_NB_OUT         output folder (default notebooks/out)
#   FATHOM_NB_SCALES      limit multipliers for the margin sweep
#                         (default 0.8,1,1.25,1.6)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin="${FATHOM_BIN:-$root/bin/fathom}"
out="${FATHOM_NB_OUT:-$root/notebooks/out}"
shared="${FATHOM_TRACES:-$root/../shared/traces}"
trace="${FATHOM_NB_TRACE:-}"
if [ -z "$trace" ]; then
  if [ -f "$shared/bitbrains-rnd-2013-07-vm001-250.csv.gz" ]; then
    trace="$shared/bitbrains-rnd-2013-07-vm001-250.csv.gz"
  else
    trace="$root/sim/testdata/bitbrains-rnd-vm001-008-4d.csv.gz"
  fi
fi
# Debian's Jupyter and its python3 (pandas, matplotlib) come first, whatever
# python a version manager put on PATH.
export PATH="/usr/bin:$PATH" PYDEVD_DISABLE_FILE_VALIDATION=1
if ! command -v jupyter-nbconvert >/dev/null && ! jupyter nbconvert --version >/dev/null 2>&1; then
  echo "notebooks: jupyter nbconvert not found; run 'make notebooks-deps' (jupyter-nbconvert python3-pandas python3-matplotlib python3-ipykernel)" >&2
  exit 1
fi
[ -x "$bin" ] || { echo "notebooks: $bin not found; run 'make build'" >&2; exit 1; }
mkdir -p "$out"
echo "notebooks: replaying $trace" >&2
"$bin" sim --trace "$trace" --format bitbrains -o json --no-progress \
  --timeseries "$out/timeseries.csv" --task-series "$out/tasks.csv" >"$out/sim.json"
"$bin" sim sweep --trace "$trace" --format bitbrains --scales "${FATHOM_NB_SCALES:-0.8,1,1.25,1.6}" -o json >"$out/sweep.json"
export FATHOM_NB_OUT="$out"
for nb in notebooks/*.ipynb; do
  jupyter nbconvert --execute --to html --output-dir "$out" \
    --ExecutePreprocessor.timeout=600 "$nb"
done
ls -1 "$out"/*.html "$out"/*.png
