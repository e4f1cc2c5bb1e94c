package agent

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTailOffset(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		content string
		n       int
		want    string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc\n", 0, ""},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"", 3, ""},
		{strings.Repeat("x", 20000) + "\nlast\n", 1, "last\n"},
	} {
		p := filepath.Join(dir, "log")
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(p)
		off, _ := tailOffset(f, tc.n)
		f.Close()
		if got := tc.content[off:]; got != tc.want {
			t.Errorf("tail %d of %q = %q, want %q", tc.n, tc.content, got, tc.want)
		}
	}
}

// TestLogsFollow streams a running task's output as it is written, and ends
// the response when the task ends.
func TestLogsFollow(t *testing.T) {
	testCgroups(t)
	srv := newCPServer(t, "127.0.0.1:0")
	addr, _, stop := startAgent(t, Config{Server: srv.addr, Name: "logs", CPU: 1, Memory: 1 << 30, DataDir: t.TempDir(),
		CgroupParent: "fathom-test-logs-" + strings.ReplaceAll(t.Name(), "/", "_"), RemoteWriteURL: "http://127.0.0.1:1/", GracePeriod: time.Second})
	defer removeParent("fathom-test-logs-" + t.Name())
	defer stop()
	srv.assign(Assignment{TaskID: "tick-0", Command: []string{"/bin/sh", "-c", "for i in 1 2 3 4; do echo tick $i; sleep 0.5; done"}, JobType: "batch", Generation: 1})
	srv.waitStatus(t, 0, "tick-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })

	resp, err := http.Get("http://" + addr + "/v1/tasks/tick-0/logs?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if strings.Join(lines, ",") != "tick 1,tick 2,tick 3,tick 4" {
		t.Errorf("followed lines %q", lines)
	}
	if took := time.Since(start); took < time.Second || took > 10*time.Second {
		t.Errorf("follow returned after %s; it should stream while the task runs (~2 s) and end when it ends", took)
	}
	r2, err := http.Get("http://" + addr + "/v1/tasks/nope/logs")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusNotFound {
		t.Errorf("logs of an unknown task: %s, want 404", r2.Status)
	}
}
