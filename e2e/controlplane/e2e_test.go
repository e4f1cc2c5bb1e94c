package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// fathomBin returns the fathom binary: $FATHOM_BIN, else the repository's
// bin/fathom when it is newer than every .go file (make test builds it first),
// else, with FATHOM_E2E=1, one built here once per test binary; otherwise the
// test is skipped.
func fathomBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: runs the fathom binary (skipped with -short)")
	}
	if b := os.Getenv("FATHOM_BIN"); b != "" {
		return b
	}
	if b := freshRepoBinary(); b != "" {
		return b
	}
	// Building the binary takes minutes on a busy 2-core machine, beyond a
	// package's test budget; `make test` builds bin/fathom first.
	if os.Getenv("FATHOM_E2E") == "" {
		t.Skip("no fresh bin/fathom and FATHOM_BIN unset: run `make build` first, or set FATHOM_E2E=1 to build the binary here")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fathom-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "fathom")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/fathom-scheduler/fathom/cmd/fathom")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freshRepoBinary returns <repo>/bin/fathom if no .go file is newer.
func freshRepoBinary() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return ""
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(root, "bin", "fathom")
	st, err := os.Stat(bin)
	if err != nil {
		return ""
	}
	stale := false
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || stale {
			return filepath.SkipDir
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			if info, err := d.Info(); err == nil && info.ModTime().After(st.ModTime()) {
				stale = true
			}
		}
		return nil
	})
	if stale {
		return ""
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a running fathom process.
type proc struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(fathomBin(t), args...))
}

func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: out}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			p.cmd.Wait()
		}
	})
	return p
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

func waitReady(t *testing.T, base string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if p.cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready in 60s; output:\n%s", base, p.out.String())
}

func listJobs(t *testing.T, base, query string) map[string]string {
	t.Helper()
	resp, err := http.Get(base + "/v1/jobs?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Jobs []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"jobs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, j := range body.Jobs {
		m[j.ID] = j.State
	}
	return m
}

// TestSIGKILLAfterAcknowledgedSubmissionsLosesNothing submits jobs over REST
// until 1,000 are acknowledged, SIGKILLs the server while more are in flight,
// restarts it on the same data dir and requires every acknowledged job.
func TestSIGKILLAfterAcknowledgedSubmissionsLosesNothing(t *testing.T) {
	dataDir := t.TempDir()
	addr := freePort(t)
	base := "http://" + addr
	// The server is this test binary re-executed (see TestMain): the same
	// store and server packages as `fathom server`, in its own process.
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dataDir+"|"+addr)
		return cmd
	}
	t0 := time.Now()
	srv := startCmd(t, child())
	waitReady(t, base, srv)
	t.Logf("server ready in %s", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()

	const want = 1000
	var (
		mu    sync.Mutex
		acked []string
		next  atomic.Int64
		wg    sync.WaitGroup
		done  = make(chan struct{})
		once  sync.Once
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				i := next.Add(1)
				body := fmt.Sprintf(`{"name":"d-%d","namespace":"durable","task":{"command":["sleep","60"]}}`, i)
				resp, err := client.Post(base+"/v1/jobs", "application/json", strings.NewReader(body))
				if err != nil {
					return // the server was killed
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					continue
				}
				var r struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(data, &r) != nil || r.ID == "" {
					continue
				}
				mu.Lock()
				acked = append(acked, r.ID)
				if len(acked) >= want {
					// Kill while the other clients still have requests in flight.
					once.Do(func() { srv.kill(t); close(done) })
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()
	if len(ids) < want {
		t.Fatalf("only %d submissions acknowledged before the clients stopped; output:\n%s", len(ids), srv.out.String())
	}
	t.Logf("%d acknowledged, %d attempted in %s, then SIGKILL", len(ids), next.Load(), time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	srv2 := startCmd(t, child())
	waitReady(t, base, srv2)
	t.Logf("restarted server ready in %s", time.Since(t0).Round(time.Millisecond))
	stored := listJobs(t, base, "namespace=durable")
	var missing []string
	for _, id := range ids {
		if _, ok := stored[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged jobs missing after SIGKILL and restart, e.g. %v", len(missing), len(ids), missing[:min(5, len(missing))])
	}
	t.Logf("after restart: all %d acknowledged jobs present (%d stored in total)", len(ids), len(stored))
}

// TestDevSubmitListStop runs `fathom dev` (server, embedded etcd and TSDB,
// and a real local agent), submits an unsized job with curl-style REST,
// sees it with `fathom job list -o json`, watches its task run as a real
// process and stops it with `fathom job stop`. A bad spec through the CLI
// prints the field and exits 2.
func TestDevSubmitListStop(t *testing.T) {
	bin := fathomBin(t)
	dir := t.TempDir()
	httpAddr, grpcAddr, agentAddr := freePort(t), freePort(t), freePort(t)
	base := "http://" + httpAddr
	dev := start(t, "dev", "--data-dir", dir, "--http-addr", httpAddr, "--dns-addr", "", "--grpc-addr", grpcAddr,
		"--agent-addr", agentAddr, "--cgroup-mode", "none", "--cpu", "1", "--memory", "1Gi")
	waitReady(t, base, dev)

	resp, err := http.Post(base+"/v1/jobs", "application/json", strings.NewReader(`{"name":"sleepy","task":{"command":["sleep","300"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		ID string `json:"id"`
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != 200 || created.ID == "" {
		t.Fatalf("POST /v1/jobs = %d, id %q", resp.StatusCode, created.ID)
	}

	cli := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"--server", base}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := cli("job", "list", "-o", "json")
	if code != 0 || !strings.Contains(out, created.ID) {
		t.Fatalf("job list -o json (exit %d) does not show %s:\n%s", code, created.ID, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if listJobs(t, base, "")[created.ID] == "JOB_STATE_RUNNING" {
			break
		}
		if time.Now().After(deadline) {
			o, _ := cli("job", "status", created.ID)
			t.Fatalf("job never ran:\n%s\ndev output:\n%s", o, dev.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, code = cli("job", "stop", created.ID); code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("job stop (exit %d):\n%s", code, out)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		out, _ = cli("job", "status", created.ID, "-o", "json")
		var st struct {
			Tasks []struct {
				State string `json:"state"`
			} `json:"tasks"`
		}
		if json.Unmarshal([]byte(out), &st) == nil && len(st.Tasks) == 1 && st.Tasks[0].State == "TASK_STATE_STOPPED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task not stopped:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: web\nreplicas: -3\ntask: {command: [sleep]}\n"), 0o644)
	out, code = cli("job", "run", bad)
	if code != 2 || !strings.Contains(out, "replicas") {
		t.Fatalf("bad spec: exit %d, output %q; want exit 2 naming replicas", code, out)
	}
	if dev.cmd.Process.Signal(syscall.SIGINT) == nil {
		waitErr := make(chan error, 1)
		go func() { waitErr <- dev.cmd.Wait() }()
		select {
		case err := <-waitErr:
			if err != nil {
				t.Errorf("fathom dev after Ctrl-C: %v\n%s", err, dev.out.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("fathom dev did not stop within 30s of SIGINT")
		}
	}
}
