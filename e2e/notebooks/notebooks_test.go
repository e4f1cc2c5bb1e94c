package notebooks

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// repoRoot is two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s", root)
	}
	return root
}

// jupyterReady reports why the notebooks cannot run here, or "".
func jupyterReady() string {
	path := "/usr/bin:" + os.Getenv("PATH")
	nbc := exec.Command("jupyter", "nbconvert", "--version")
	nbc.Env = append(os.Environ(), "PATH="+path)
	if err := nbc.Run(); err != nil {
		return "jupyter nbconvert is not installed (make notebooks-deps)"
	}
	py := exec.Command("/usr/bin/python3", "-c", "import pandas, matplotlib, ipykernel")
	if out, err := py.CombinedOutput(); err != nil {
		return "python3 lacks pandas, matplotlib or ipykernel (make notebooks-deps): " + strings.TrimSpace(string(out))
	}
	return ""
}

func TestNotebooksRunHeadless(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Jupyter; skipped with -short")
	}
	if why := jupyterReady(); why != "" {
		t.Skip(why)
	}
	root := repoRoot(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "fathom")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/fathom")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(tmp, "out")
	cmd := exec.CommandContext(ctx, "bash", "scripts/notebooks.sh")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "FATHOM_BIN="+bin, "FATHOM_NB_OUT="+out,
		"FATHOM_NB_TRACE="+filepath.Join(root, "sim/testdata/bitbrains-rnd-vm001-008-4d.csv.gz"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/notebooks.sh: %v\n%s", err, b)
	}
	for _, name := range []string{"simulation.html", "rightsizing.html", "machines_over_time.png", "machines_by_policy.png",
		"overloads.png", "usage_vs_limit.png", "slack_vs_violations.png"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Errorf("%s was not produced: %v", name, err)
			continue
		}
		if len(b) < 1000 {
			t.Errorf("%s is only %d bytes", name, len(b))
		}
		if strings.HasSuffix(name, ".png") && !strings.HasPrefix(string(b), "\x89PNG") {
			t.Errorf("%s is not a PNG", name)
		}
		if strings.HasSuffix(name, ".html") && strings.Contains(string(b), "Traceback (most recent call last)") {
			t.Errorf("%s shows a Python traceback", name)
		}
	}
}
