#!/usr/bin/env python3
"""Plot `fathom model eval --sweep -o json`: footprint against violations.

Usage: scripts/plot-sweep.py SWEEP.json OUT.png [TITLE]

One panel per resource (CPU, memory): every baseline configuration
(vpa, autopilot; target percentile x safety margin) as faint dots, each
baseline's Pareto envelope as a line, fathom's curve over its violation
budgets as a line with markers, the default budget circled, and a dashed
vertical line at the default budget with the +-25% band the issue allows
for the achieved rate. Violations on a log axis, as the envelopes are read
(linear in log violations). Needs python3-matplotlib (scripts/deps.sh
notebooks); reads nothing but the JSON it is given.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"vpa": "tab:blue", "autopilot": "tab:orange", "fathom": "tab:green"}


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1]) as f:
        rep = json.load(f)
    sw = rep["sweep"]
    title = sys.argv[3] if len(sys.argv) > 3 else "%s, VMs %s" % (rep["trace"].split("/")[-1], rep.get("vms") or "all")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, res in zip(axes, ["cpu", "memory"]):
        pts = [p for p in sw["points"] if p["resource"] == res]
        comps = [c for c in sw["comparisons"] if c["resource"] == res]
        fathom = sorted((p for p in pts if p["policy"] == "fathom"), key=lambda p: p["violations"])
        lo = min(p["violations"] for p in fathom) / 4
        hi = max(p["violations"] for p in fathom) * 4
        ymax = 0
        for pol in ["vpa", "autopilot"]:
            mine = [p for p in pts if p["policy"] == pol and p["violations"] > 0]
            near = [p for p in mine if lo <= p["violations"] <= hi]
            ax.scatter([p["violations"] * 100 for p in near], [p["footprint"] for p in near],
                       s=8, alpha=0.25, color=COLORS[pol])
            env = sorted((p for p in mine if p["pareto"]), key=lambda p: p["violations"])
            env = [p for p in env if lo <= p["violations"] <= hi]
            ax.plot([p["violations"] * 100 for p in env], [p["footprint"] for p in env],
                    "-", color=COLORS[pol], lw=1.6, label="%s Pareto envelope (percentile x margin)" % pol)
            ymax = max([ymax] + [p["footprint"] for p in env])
        ax.plot([p["violations"] * 100 for p in fathom], [p["footprint"] for p in fathom],
                "o-", color=COLORS["fathom"], lw=2, label="fathom (violation budget x %s)" %
                ",".join("%g" % (p["budget"] / sw["budget"][res]) for p in fathom))
        ymax = max([ymax] + [p["footprint"] for p in fathom])
        for c in comps:
            if not c["default"]:
                continue
            fp = c["fathom"]
            b = c["budget"] * 100
            ax.axvline(b, color="grey", ls="--", lw=1)
            ax.axvspan(b * 0.75, b * 1.25, color="grey", alpha=0.08)
            ax.scatter([fp["violations"] * 100], [fp["footprint"]], s=160, facecolors="none",
                       edgecolors="black", lw=1.5, zorder=5)
            txt = "default budget %.3g%%: achieved %.3g%% (%.2fx)" % (b, fp["violations"] * 100, c["achieved_over_budget"])
            if c.get("best"):
                txt += "\nfathom %.3f vs %s %.3f at equal violations: %.2fx" % (
                    fp["footprint"], c["best"], fp["footprint"] / c["ratio"], c["ratio"])
            ax.text(0.02, 0.03, txt, transform=ax.transAxes, fontsize=8.5, va="bottom",
                    bbox=dict(boxstyle="round", fc="white", ec="0.7"))
        ax.set_xscale("log")
        ax.set_xlim(lo * 100, hi * 100)
        ax.set_ylim(0, ymax * 1.08)
        ax.set_xlabel("violations (% of task-windows with usage > limit, log)")
        ax.set_ylabel("footprint (sum of limits / sum provisioned)")
        ax.set_title(res.upper() if res == "cpu" else "Memory")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper right")
    fig.suptitle("Footprint vs violations at equal violations: " + title, fontsize=11)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)
    print("wrote", sys.argv[2])


if __name__ == "__main__":
    main()
