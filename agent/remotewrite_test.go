package agent

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
)

func TestRemoteWriterBufferIsBoundedAndCountsDrops(t *testing.T) {
	reg := prometheus.NewRegistry()
	w := NewRemoteWriter("http://127.0.0.1:1/api/v1/write", 100, reg, nil)
	batch := func(n int) []prompb.TimeSeries {
		out := make([]prompb.TimeSeries, n)
		for i := range out {
			out[i] = prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "x"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: int64(i)}}}
		}
		return out
	}
	for i := 0; i < 10; i++ {
		w.Enqueue(batch(30))
	}
	if got := w.Pending(); got > 100 || got < 70 {
		t.Errorf("pending %d samples, want at most the 100 the buffer holds (and the newest batches kept)", got)
	}
	if got := testutil.ToFloat64(w.dropped); got != 300-float64(w.Pending()) {
		t.Errorf("dropped %v, want %v", got, 300-float64(w.Pending()))
	}
}

// TestRemoteWriteEndpointDown runs an agent whose remote-write endpoint is
// unreachable: tasks keep running, the buffer stays bounded, drops are
// counted, and when the endpoint returns what is buffered is delivered. The
// default run is short with fast intervals; FATHOM_LONG=1 keeps the endpoint
// down for 60 s at the agent's default 1 s / 10 s intervals.
func TestRemoteWriteEndpointDown(t *testing.T) {
	testCgroups(t)
	long := os.Getenv("FATHOM_LONG") != ""
	down, sample, push, buffer := 4*time.Second, 100*time.Millisecond, 100*time.Millisecond, 400
	if long {
		down, sample, push, buffer = 60*time.Second, time.Second, 10*time.Second, 300
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rwAddr := ln.Addr().String()
	ln.Close() // nothing listens there until the endpoint "comes back"

	srv := newCPServer(t, "127.0.0.1:0")
	parent := fmt.Sprintf("fathom-test-%d-%s", os.Getpid(), t.Name())
	t.Cleanup(func() { removeParent(parent) })
	_, reg, stop := startAgent(t, Config{Server: srv.addr, Name: "rw", CPU: 2, Memory: 4 << 30, DataDir: t.TempDir(), CgroupParent: parent,
		RemoteWriteURL: "http://" + rwAddr + "/api/v1/write", SampleInterval: sample, PushInterval: push, RemoteWriteBuffer: buffer, GracePeriod: time.Second})
	defer stop()
	var tasks []Assignment
	for i := 0; i < 10; i++ {
		tasks = append(tasks, Assignment{TaskID: fmt.Sprintf("rw-%d", i), Namespace: "t", JobName: "rw", Command: []string{"sleep", "600"},
			JobType: "service", Priority: PriorityBatch, Generation: 1})
	}
	srv.assign(tasks...)
	pids := map[string]int32{}
	for _, a := range tasks {
		s, _ := srv.waitStatus(t, 0, a.TaskID, 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
		pids[a.TaskID] = s.PID
	}
	var m0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)

	time.Sleep(down)

	get := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
		return -1
	}
	pending, dropped, failures := get("fathom_agent_remote_write_pending_samples"), get("fathom_agent_remote_write_dropped_samples_total"), get("fathom_agent_remote_write_failures_total")
	t.Logf("after %s down: pending %v, dropped %v, failed requests %v", down, pending, dropped, failures)
	if pending > float64(buffer) || pending <= 0 {
		t.Errorf("pending samples %v, want 0 < pending ≤ buffer %d", pending, buffer)
	}
	if dropped <= 0 || failures <= 0 {
		t.Errorf("dropped %v and failures %v should both be counted while the endpoint is down", dropped, failures)
	}
	var m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m1)
	if grow := int64(m1.HeapInuse) - int64(m0.HeapInuse); grow > 16<<20 {
		t.Errorf("heap grew by %d bytes while the endpoint was down; the buffer should bound it", grow)
	}
	for id, pid := range pids {
		if s, ok := srv.latest(id); !ok || s.State != StateRunning || s.PID != pid {
			t.Errorf("%s: %+v, want still RUNNING as pid %d", id, s, pid)
		}
		if err := syscallKill0(int(pid)); err != nil {
			t.Errorf("%s pid %d is gone: %v", id, pid, err)
		}
	}

	// The endpoint comes back: the buffer drains into it.
	rw := newRWReceiverAt(t, rwAddr)
	deadline := time.Now().Add(45 * time.Second)
	for get("fathom_agent_remote_write_pending_samples") > float64(buffer/2) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if rw.count() == 0 {
		t.Error("nothing was delivered after the endpoint came back")
	}
}
