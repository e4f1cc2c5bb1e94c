package agent

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLogRotationKeepsEveryLine runs a real process that writes 200 KB of
// numbered lines against a 16 KiB rotation size with three rotated files
// kept. A follower that connected at the start must receive every line once
// and in order across a dozen rotations; the task keeps its pid and is never
// restarted; the kept files hold contiguous lines up to the last one; and a
// tail longer than output.log reaches into output.log.1. Run once with the
// cgroup freezer (where a writable cgroup exists) and once without cgroups
// (SIGSTOP/SIGCONT of the process group).
func TestLogRotationKeepsEveryLine(t *testing.T) {
	for _, mode := range []string{"auto", "none"} {
		t.Run(mode, func(t *testing.T) {
			parent := "fathom-test-rotate-" + strconv.Itoa(os.Getpid()) + "-" + mode
			if mode == "auto" {
				testCgroups(t)
				defer removeParent(parent)
			}
			testLogRotation(t, mode, parent)
		})
	}
}

func testLogRotation(t *testing.T, mode, parent string) {
	const lines, maxSize, keep = 4000, 16 << 10, 3
	srv := newCPServer(t, "127.0.0.1:0")
	data := t.TempDir()
	addr, _, stop := startAgent(t, Config{Server: srv.addr, Name: "rotate", CPU: 1, Memory: 1 << 30, DataDir: data,
		CgroupMode: mode, CgroupParent: parent, RemoteWriteURL: "http://127.0.0.1:1/", GracePeriod: time.Second,
		SampleInterval: 50 * time.Millisecond, LogMaxSize: maxSize, LogMaxFiles: keep})
	defer stop()
	// ~50-byte lines, paced so the whole run takes a few seconds.
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "line $i 0123456789012345678901234567890123456789"; i=$((i+1)); `+
		`if [ $((i %% 40)) -eq 0 ]; then sleep 0.02; fi; done; sleep 0.5`, lines)
	srv.assign(Assignment{TaskID: "chatty-0", Command: []string{"/bin/sh", "-c", script}, JobType: "batch", Generation: 1})
	running, from := srv.waitStatus(t, 0, "chatty-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })

	resp, err := http.Get("http://" + addr + "/v1/tasks/chatty-0/logs?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	next := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		want := fmt.Sprintf("line %d ", next)
		if !strings.HasPrefix(sc.Text(), want) {
			t.Fatalf("follower: line %d is %q, want it to start with %q (a line lost or repeated across a rotation)", next, sc.Text(), want)
		}
		next++
	}
	if next != lines {
		t.Fatalf("follower received %d lines, want %d", next, lines)
	}
	end, _ := srv.waitStatus(t, from, "chatty-0", 20*time.Second, func(s TaskStatus) bool { return s.State.Terminal() })
	if end.State != StateSucceeded || end.Restarts != 0 {
		t.Errorf("task ended %s after %d restarts (%s); rotation must not disturb it", end.State, end.Restarts, end.Reason)
	}
	for _, s := range srv.statusesOf("chatty-0") {
		if s.State == StateRunning && s.PID != running.PID {
			t.Errorf("task reported running with pid %d and later %d", running.PID, s.PID)
		}
	}

	// The kept files: .3 (oldest) .2 .1 output.log, contiguous up to the last line.
	logPath := data + "/tasks/chatty-0/output.log"
	if _, err := os.Stat(logPath + "." + strconv.Itoa(keep+1)); err == nil {
		t.Errorf("more than %d rotated files kept", keep)
	}
	var all []string
	for i := keep; i >= 0; i-- {
		p := logPath
		if i > 0 {
			p += "." + strconv.Itoa(i)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (want %d rotated files)", err, keep)
		}
		if i > 0 && len(b) < maxSize {
			t.Errorf("%s holds %d bytes, less than the rotation size %d", p, len(b), maxSize)
		}
		if len(b) > 0 {
			all = append(all, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
		}
	}
	first, err := strconv.Atoi(strings.Fields(all[0])[1])
	if err != nil || first == 0 {
		t.Fatalf("oldest kept line %q: want a line > 0 (older output rotated out)", all[0])
	}
	for i, l := range all {
		if !strings.HasPrefix(l, fmt.Sprintf("line %d ", first+i)) {
			t.Fatalf("kept files: line %d is %q, want line %d (a gap or repeat)", i, l, first+i)
		}
	}
	if first+len(all) != lines {
		t.Errorf("kept files end at line %d, want %d", first+len(all)-1, lines-1)
	}

	// A tail longer than output.log continues into output.log.1.
	cur, _ := os.ReadFile(logPath)
	n := strings.Count(string(cur), "\n") + 10
	tail := strings.Split(strings.TrimSuffix(httpGet(t, "http://"+addr+"/v1/tasks/chatty-0/logs?tail="+strconv.Itoa(n)), "\n"), "\n")
	if len(tail) != n || !strings.HasPrefix(tail[0], fmt.Sprintf("line %d ", lines-n)) || !strings.HasPrefix(tail[n-1], fmt.Sprintf("line %d ", lines-1)) {
		t.Errorf("tail=%d gave %d lines from %q to %q", n, len(tail), tail[0], tail[len(tail)-1])
	}
}
