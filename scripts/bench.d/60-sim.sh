#!/usr/bin/env bash
# Simulator: replays the Bitbrains trace through every policy (issue 7's
# must-show command) and prints the wall time, machines per policy and
# fathom's saving against the better of vpa and autopilot.
set -euo pipefail
bin="${FATHOM_BIN:-bin/fathom}"
trace="${FATHOM_TRACES:-../shared/traces}/bitbrains-rnd-2013-07-vm001-250.csv.gz"
if [ ! -f "$trace" ]; then
  echo "sim: $trace not found (set FATHOM_TRACES); skipped"
  exit 0
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s.%N)
"$bin" sim --trace "$trace" --format bitbrains --policy provisioned,vpa,autopilot,fathom,oracle -o json >"$out"
end=$(date +%s.%N)
python3 - "$out" "$start" "$end" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
print("sim: %d tasks, %d windows, machine %.4g cores / %.4g GiB, eps=%g, wall %.1f s (goal <= 120 s)" % (
    d["tasks"], d["windows"], d["machine"]["cpu"], d["machine"]["memory"] / 2**30, d["overload_risk"], wall))
print("%-12s %9s %5s %9s %8s %11s %9s %11s" % ("policy", "machines", "peak", "lower_bd", "util", "overloaded", "evictions", "reschedules"))
c = {x["policy"]: x for x in d["cluster"]}
for x in d["cluster"]:
    print("%-12s %9.2f %5d %9.2f %7.1f%% %10.3f%% %9d %11d" % (x["policy"], x["machines_mean"], x["machines_peak"],
          x["lower_bound_mean"], 100 * x["utilization"], 100 * x["overloaded_machine_windows"], x["evictions"], x["reschedules"]))
if all(p in c for p in ("vpa", "autopilot", "fathom")):
    best = min(c["vpa"]["machines_mean"], c["autopilot"]["machines_mean"])
    saving = 1 - c["fathom"]["machines_mean"] / best
    print("sim: fathom uses %.1f%% fewer machines than the better of vpa/autopilot (goal >= 25%%), %.3f%% machine-windows overloaded (goal <= 0.1%%)" % (
        100 * saving, 100 * c["fathom"]["overloaded_machine_windows"]))
PY
