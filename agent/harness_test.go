package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// cpServer is a small in-test implementation of the generated AgentService:
// a test harness standing where the control plane's server will, recording
// what agents say and serving the desired set it is told to.
type cpServer struct {
	fathomv1.UnimplementedAgentServiceServer

	mu            sync.Mutex
	cond          *sync.Cond
	registrations []*fathomv1.RegisterNodeRequest
	heartbeats    int
	lastHeartbeat *fathomv1.HeartbeatRequest
	statuses      []TaskStatus
	set           []*fathomv1.Assignment
	changed       chan struct{}
	remoteWrite   string
	maxPush       time.Duration // RegisterNodeResponse.max_push_interval_seconds

	grpc *grpc.Server
	addr string
}

func newCPServer(t *testing.T, addr string) *cpServer {
	t.Helper()
	s := &cpServer{changed: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	s.start(t, addr)
	t.Cleanup(func() { s.grpc.Stop() })
	return s
}

// start listens on addr ("127.0.0.1:0" for any port) and serves.
func (s *cpServer) start(t *testing.T, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old listener's port may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.grpc = grpc.NewServer()
	fathomv1.RegisterAgentServiceServer(s.grpc, s)
	go func() { _ = s.grpc.Serve(ln) }()
}

func (s *cpServer) Register(_ context.Context, r *fathomv1.RegisterNodeRequest) (*fathomv1.RegisterNodeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registrations = append(s.registrations, r)
	s.cond.Broadcast()
	return &fathomv1.RegisterNodeResponse{NodeId: "node-" + r.GetName(), HeartbeatIntervalSeconds: 1, RemoteWriteUrl: s.remoteWrite,
		MaxPushIntervalSeconds: s.maxPush.Seconds()}, nil
}

func (s *cpServer) Heartbeat(_ context.Context, r *fathomv1.HeartbeatRequest) (*fathomv1.HeartbeatResponse, error) {
	s.mu.Lock()
	s.heartbeats++
	s.lastHeartbeat = r
	s.mu.Unlock()
	s.cond.Broadcast()
	return &fathomv1.HeartbeatResponse{}, nil
}

func (s *cpServer) ReportTaskStatus(_ context.Context, r *fathomv1.ReportTaskStatusRequest) (*fathomv1.ReportTaskStatusResponse, error) {
	s.mu.Lock()
	for _, st := range r.GetStatuses() {
		s.statuses = append(s.statuses, TaskStatusFromProto(st))
	}
	s.mu.Unlock()
	s.cond.Broadcast()
	return &fathomv1.ReportTaskStatusResponse{}, nil
}

// StreamAssignments sends the whole set (reset, an upsert per task, synced)
// on connect and again after every change: the agent's resend path.
func (s *cpServer) StreamAssignments(_ *fathomv1.WatchAssignmentsRequest, stream fathomv1.AgentService_StreamAssignmentsServer) error {
	var rev int64
	send := func(u *fathomv1.AssignmentUpdate) error {
		rev++
		u.Revision = rev
		return stream.Send(u)
	}
	for {
		s.mu.Lock()
		set, changed := s.set, s.changed
		s.mu.Unlock()
		if err := send(&fathomv1.AssignmentUpdate{Change: &fathomv1.AssignmentUpdate_Reset_{Reset_: true}}); err != nil {
			return err
		}
		for _, a := range set {
			if err := send(&fathomv1.AssignmentUpdate{Change: &fathomv1.AssignmentUpdate_Upsert{Upsert: a}}); err != nil {
				return err
			}
		}
		if err := send(&fathomv1.AssignmentUpdate{Change: &fathomv1.AssignmentUpdate_Synced{Synced: true}}); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-changed:
		}
	}
}

// assign replaces the desired set and wakes watchers.
func (s *cpServer) assign(as ...Assignment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := make([]*fathomv1.Assignment, 0, len(as))
	for _, a := range as {
		set = append(set, AssignmentToProto(a))
	}
	s.set = set
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitStatus waits for a reported status for id (at index ≥ from) matching ok.
func (s *cpServer) waitStatus(t *testing.T, from int, id string, timeout time.Duration, ok func(TaskStatus) bool) (TaskStatus, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	go func() { time.Sleep(timeout); s.cond.Broadcast() }()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := from; ; {
		for ; i < len(s.statuses); i++ {
			if s.statuses[i].TaskID == id && ok(s.statuses[i]) {
				return s.statuses[i], i + 1
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server: no matching status for %s within %s; got %+v", id, timeout, s.statuses[from:])
		}
		s.cond.Wait()
	}
}

func (s *cpServer) waitRegistrations(t *testing.T, n int, timeout time.Duration) *fathomv1.RegisterNodeRequest {
	t.Helper()
	deadline := time.Now().Add(timeout)
	go func() { time.Sleep(timeout); s.cond.Broadcast() }()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.registrations) < n {
		if time.Now().After(deadline) {
			t.Fatalf("server: %d registrations within %s, want %d", len(s.registrations), timeout, n)
		}
		s.cond.Wait()
	}
	return s.registrations[n-1]
}

// rwReceiver is an in-test remote-write endpoint that decodes what it gets.
type rwReceiver struct {
	mu      sync.Mutex
	series  []prompb.TimeSeries
	samples int
	srv     *http.Server
	addr    string
}

func newRWReceiver(t *testing.T) *rwReceiver { return newRWReceiverAt(t, "127.0.0.1:0") }

func newRWReceiverAt(t *testing.T, addr string) *rwReceiver {
	t.Helper()
	r := &rwReceiver{}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		raw, err := snappy.Decode(nil, b)
		if err != nil || req.Header.Get("Content-Encoding") != "snappy" {
			http.Error(w, "bad snappy", http.StatusBadRequest)
			return
		}
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			http.Error(w, "bad protobuf", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, ts := range wr.Timeseries {
			r.samples += len(ts.Samples)
		}
		r.series = append(r.series, wr.Timeseries...)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

// find returns the values received for metric name with label task=id.
func (r *rwReceiver) find(name, task string) []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []float64
	for _, ts := range r.series {
		lm := map[string]string{}
		for _, l := range ts.Labels {
			lm[l.Name] = l.Value
		}
		if lm["__name__"] == name && lm["task"] == task {
			for _, s := range ts.Samples {
				out = append(out, s.Value)
			}
		}
	}
	return out
}

func (r *rwReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.samples
}

// latest is the last status the server got for id.
func (s *cpServer) latest(id string) (TaskStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.statuses) - 1; i >= 0; i-- {
		if s.statuses[i].TaskID == id {
			return s.statuses[i], true
		}
	}
	return TaskStatus{}, false
}

// statusesOf is every status the server got for id, in order.
func (s *cpServer) statusesOf(id string) []TaskStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TaskStatus
	for _, st := range s.statuses {
		if st.TaskID == id {
			out = append(out, st)
		}
	}
	return out
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
