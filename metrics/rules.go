package metrics

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/prometheus/common/model"
)

// RecordingRules is Fathom's recording-rule file (Prometheus rule format): per
// node and per namespace aggregates of the per-task series, which the Cluster
// and Nodes dashboards query instead of summing every task at every step, and
// per-task series at 5 m resolution with per-job totals, which the Job
// right-sizing dashboard reads over days.
//
//go:embed rules/fathom.rules.yml
var RecordingRules []byte

// RecordingRulesFile is the name the rule file has on disk.
const RecordingRulesFile = "fathom.rules.yml"

var (
	groupIntervalRe = regexp.MustCompile(`(?m)^    interval: .*\n`)
	groupNameRe     = regexp.MustCompile(`(?m)^(  - name: .*\n)`)
)

// RecordingRulesEvery is RecordingRules with every group evaluated every d
// instead of at the intervals the file gives (tests and demos that cannot wait
// 5 minutes for the per-task group). d must be a whole number of milliseconds.
func RecordingRulesEvery(d time.Duration) ([]byte, error) {
	if d <= 0 || d%time.Millisecond != 0 {
		return nil, fmt.Errorf("%w: rule interval %s must be a positive whole number of milliseconds", ErrBadOptions, d)
	}
	b := groupIntervalRe.ReplaceAll(RecordingRules, nil)
	return groupNameRe.ReplaceAll(b, []byte("${1}    interval: "+model.Duration(d).String()+"\n")), nil
}

// writeRules writes Fathom's recording rules into dir — with every group at
// interval when it is non-zero — and returns the file's path.
func writeRules(dir string, interval time.Duration) (string, error) {
	b := RecordingRules
	if interval != 0 {
		var err error
		if b, err = RecordingRulesEvery(interval); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("metrics store: %w", err)
	}
	p := filepath.Join(dir, RecordingRulesFile)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return "", fmt.Errorf("metrics store: write recording rules: %w", err)
	}
	return p, nil
}
