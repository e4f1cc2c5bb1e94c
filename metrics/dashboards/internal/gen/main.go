package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/metrics/dashboards"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gen DASHBOARD_DIR RULES_DIR")
		os.Exit(2)
	}
	paths, err := dashboards.Export(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := os.MkdirAll(os.Args[2], 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	rules := filepath.Join(os.Args[2], metrics.RecordingRulesFile)
	if err := os.WriteFile(rules, metrics.RecordingRules, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for _, p := range append(paths, rules) {
		fmt.Println("wrote", p)
	}
}
