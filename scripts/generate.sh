#!/usr/bin/env bash
# make generate: runs every scripts/generate.d/*.sh in order. Generated files are
# committed; CI checks nothing is regenerated differently only where tools exist.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in scripts/generate.d/*.sh; do
  [ -e "$f" ] || continue
  echo "=== generate: $(basename "$f" .sh)"
  bash "$f"
done
