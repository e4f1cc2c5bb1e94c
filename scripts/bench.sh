#!/usr/bin/env bash
# make bench: runs every scripts/bench.d/*.sh in order. Each prints its figures
# (see docs/benchmarks.md for the method). Set BENCH_ONLY=name to run one.
set -euo pipefail
cd "$(dirname "$0")/.."
export FATHOM_BIN="${FATHOM_BIN:-$PWD/bin/fathom}"
rc=0
for f in scripts/bench.d/*.sh; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .sh)
  if [ -n "${BENCH_ONLY:-}" ] && [[ "$name" != *"$BENCH_ONLY"* ]]; then continue; fi
  echo "=== bench: $name"
  bash "$f" || { echo "bench $name failed" >&2; rc=1; }
done
exit $rc
