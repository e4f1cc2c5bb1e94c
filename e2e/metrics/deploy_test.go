package e2emetrics

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// deploy/prometheus.yml and the rules it names are valid for Debian's
// Prometheus 2.42 (promtool check config): all 44 rules, 16 node/namespace
// aggregates and 28 per-task and per-job series.
func TestDeployPrometheusConfigIsValid(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found; install Debian's prometheus (make deps-test) to run this test")
	}
	out, err := exec.Command(promtool, "check", "config", filepath.Join(repoRoot(t), "deploy", "prometheus.yml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "44 rules found") {
		t.Fatalf("promtool check config deploy/prometheus.yml: %v\n%s", err, out)
	}
}

// The Grafana provisioning files parse and point where the docs say.
func TestDeployGrafanaProvisioning(t *testing.T) {
	root := filepath.Join(repoRoot(t), "deploy", "grafana", "provisioning")
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, URL string
		} `json:"datasources"`
	}
	readYAML(t, filepath.Join(root, "datasources", "fathom.yaml"), &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || !strings.HasSuffix(ds.Datasources[0].URL, ":7070") {
		t.Errorf("datasource provisioning: %+v", ds)
	}
	var dp struct {
		Providers []struct {
			Type    string `json:"type"`
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	readYAML(t, filepath.Join(root, "dashboards", "fathom.yaml"), &dp)
	if len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path == "" {
		t.Errorf("dashboard provisioning: %+v", dp)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
