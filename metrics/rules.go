package metrics

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

// RecordingRules is Fathom's recording-rule file (Prometheus rule format): per
// node and per namespace aggregates of the per-task series, which the Cluster
// and Nodes dashboards query instead of summing every task at every step.
//
//go:embed rules/fathom.rules.yml
var RecordingRules []byte

// RecordingRulesFile is the name the rule file has on disk.
const RecordingRulesFile = "fathom.rules.yml"

// writeRules writes RecordingRules into dir and returns its path.
func writeRules(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("metrics store: %w", err)
	}
	p := filepath.Join(dir, RecordingRulesFile)
	if err := os.WriteFile(p, RecordingRules, 0o644); err != nil {
		return "", fmt.Errorf("metrics store: write recording rules: %w", err)
	}
	return p, nil
}
