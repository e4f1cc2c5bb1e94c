package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/store"
)

// harness is a real server on loopback with an embedded etcd.
type harness struct {
	t      *testing.T
	url    string
	dns    string // the DNS server's UDP address
	srv    *Server
	conn   *grpc.ClientConn
	jobs   fathomv1.JobServiceClient
	nodes  fathomv1.NodeServiceClient
	agents fathomv1.AgentServiceClient
}

func startServer(t *testing.T, o Options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	o.Store = st
	srv, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dl, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ServeOptions{HTTP: hl, GRPC: gl, DNS: dl}) }()
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		st.Close()
	})
	h := &harness{t: t, url: "http://" + hl.Addr().String(), dns: dl.LocalAddr().String(), srv: srv, conn: conn,
		jobs: fathomv1.NewJobServiceClient(conn), nodes: fathomv1.NewNodeServiceClient(conn), agents: fathomv1.NewAgentServiceClient(conn)}
	h.waitReady()
	return h
}

func (h *harness) waitReady() {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(h.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatal("server not ready in 20s")
}

func (h *harness) do(method, path, body string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.url+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		h.t.Fatalf("%s %s: %d, body not JSON: %q", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// eventually polls cond until it holds or 15 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestRESTSubmitListStop(t *testing.T) {
	h := startServer(t, Options{})
	code, body := h.do("POST", "/v1/jobs", `{"name":"sleepy","task":{"command":["sleep","60"]}}`)
	if code != 200 {
		t.Fatalf("POST /v1/jobs = %d %v", code, body)
	}
	id, _ := body["id"].(string)
	if !strings.HasPrefix(id, "sleepy-") {
		t.Fatalf("id = %q, want sleepy-<random>", id)
	}
	// YAML works too.
	code, body = h.do("POST", "/v1/jobs", "name: etl\nnamespace: team-a\ntype: batch\nreplicas: 2\ntask:\n  command: [/bin/true]\n")
	if code != 200 {
		t.Fatalf("POST yaml = %d %v", code, body)
	}
	// Same active name again: the job is updated to version 2 (same id);
	// the same spec once more changes nothing.
	if code, body = h.do("POST", "/v1/jobs", `{"name":"sleepy","task":{"command":["sleep","1"]}}`); code != 200 || body["id"] != id ||
		body["result"] != "updated" || body["version"] != "2" {
		t.Fatalf("resubmitted name = %d %v, want 200, id %s, result updated, version 2", code, body, id)
	}
	if code, body = h.do("POST", "/v1/jobs", `{"name":"sleepy","task":{"command":["sleep","1"]}}`); code != 200 || body["result"] != "unchanged" || body["version"] != "2" {
		t.Fatalf("identical spec = %d %v, want 200 unchanged at version 2", code, body)
	}
	// A type change is refused, naming what to do.
	if code, body = h.do("POST", "/v1/jobs", `{"name":"sleepy","type":"batch","task":{"command":["sleep","1"]}}`); code != 400 ||
		!strings.Contains(fmt.Sprint(body["message"]), "cannot change the job type") {
		t.Fatalf("type change = %d %v, want 400 naming the job type", code, body)
	}
	code, body = h.do("GET", "/v1/jobs?namespace=default", "")
	if jobs, _ := body["jobs"].([]any); code != 200 || len(jobs) != 1 {
		t.Fatalf("list namespace=default = %d %v, want 1 job", code, body)
	}
	code, body = h.do("GET", "/v1/jobs?state=pending", "")
	if jobs, _ := body["jobs"].([]any); code != 200 || len(jobs) != 2 {
		t.Fatalf("list state=pending = %d %v, want 2 jobs", code, body)
	}
	if code, _ = h.do("GET", "/v1/jobs?state=sleeping", ""); code != 400 {
		t.Fatalf("bad state filter = %d, want 400", code)
	}
	code, body = h.do("GET", "/v1/jobs/"+id+"/tasks", "")
	tasks, _ := body["tasks"].([]any)
	if code != 200 || len(tasks) != 1 || !strings.Contains(tasks[0].(map[string]any)["reason"].(string), "waiting for a node") {
		t.Fatalf("tasks = %d %v, want one pending task saying why it waits", code, body)
	}
	code, body = h.do("DELETE", "/v1/jobs/"+id, "")
	if code != 200 || body["state"] != "JOB_STATE_STOPPED" {
		t.Fatalf("stop = %d %v", code, body)
	}
	// The name is free again after the stop.
	if code, body = h.do("POST", "/v1/jobs", `{"name":"sleepy","task":{"command":["sleep","1"]}}`); code != 200 {
		t.Fatalf("resubmit after stop = %d %v", code, body)
	}
	if code, _ = h.do("GET", "/v1/jobs/nope-123", ""); code != 404 {
		t.Fatalf("unknown job = %d, want 404", code)
	}
	if code, body = h.do("GET", "/v1/recommendations", ""); code != 501 || !strings.Contains(body["message"].(string), "predictor") {
		t.Fatalf("recommendations = %d %v, want 501 naming the predictor", code, body)
	}
}

func TestRESTBadSpecIs400NamingTheField(t *testing.T) {
	h := startServer(t, Options{})
	cases := map[string]string{
		`{"name":"a","replicas":-1,"task":{"command":["x"]}}`:          "replicas",
		`{"name":"a","task":{"command":[]}}`:                           "task.command",
		`{"name":"a","task":{"command":["x"]},"colour":"red"}`:         "colour",
		`{"name":"Bad_Name","task":{"command":["x"]}}`:                 "name",
		`{"name":"a","type":"daemon","task":{"command":["x"]}}`:        "type",
		`{"name":"a","replicas":"3","task":{"command":["x"]}}`:         "replicas",
		`{"name":"a","schedule":"* * * * *","task":{"command":["x"]}}`: "schedule",
		"name: a\ntask: [": "malformed",
		`{"name":"a","task":{"command":["x"],"resources":{"memory":"lots"}}}`: "task.resources.memory",
		strings.Repeat("#", 2<<20): "limit",
	}
	for spec, field := range cases {
		code, body := h.do("POST", "/v1/jobs", spec)
		msg, _ := body["message"].(string)
		if code != 400 || body["code"] != float64(3) || !strings.Contains(msg, field) {
			t.Errorf("spec %.60q: got %d %v, want 400 INVALID_ARGUMENT naming %q", spec, code, body, field)
		}
	}
	_, body := h.do("GET", "/v1/jobs", "")
	if jobs, _ := body["jobs"].([]any); len(jobs) != 0 {
		t.Fatalf("bad specs stored %d jobs", len(jobs))
	}
}

// agent is a gRPC client acting as a node agent (the real agent is package
// agent; this drives the same wire contract from the test). It assembles
// the per-task assignment stream into whole sets, as the agent does.
type agent struct {
	t    *testing.T
	h    *harness
	name string
	sets chan *assignmentSet
}

// assignmentSet is a node's whole desired set as the stream built it.
type assignmentSet struct {
	Revision    int64
	Assignments []*fathomv1.Assignment
}

func (s *assignmentSet) GetAssignments() []*fathomv1.Assignment { return s.Assignments }

func (h *harness) agent(name string, cpu float64) *agent {
	ctx := h.t.Context()
	a := &agent{t: h.t, h: h, name: name, sets: make(chan *assignmentSet, 1000)}
	resp, err := h.agents.Register(ctx, &fathomv1.RegisterNodeRequest{Name: name, CpuCores: cpu, MemoryBytes: 8 << 30, Enforcement: "none", AgentAddress: "127.0.0.1:1", PortRange: "31000-31009"})
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.GetNodeId() != name || resp.GetHeartbeatIntervalSeconds() < 1 || (h.srv.o.RemoteWriteHTTPPort == "9999" && resp.GetRemoteWriteUrl() != "http://127.0.0.1:9999/api/v1/write") {
		h.t.Fatalf("register = %v", resp)
	}
	stream, err := h.agents.StreamAssignments(ctx, &fathomv1.WatchAssignmentsRequest{NodeId: name})
	if err != nil {
		h.t.Fatal(err)
	}
	go func() {
		defer close(a.sets)
		cur := map[string]*fathomv1.Assignment{}
		var pending map[string]*fathomv1.Assignment
		synced := false
		for {
			u, err := stream.Recv()
			if err != nil {
				return
			}
			switch ch := u.GetChange().(type) {
			case *fathomv1.AssignmentUpdate_Reset_:
				pending = map[string]*fathomv1.Assignment{}
				continue
			case *fathomv1.AssignmentUpdate_Synced:
				cur, pending, synced = pending, nil, true
			case *fathomv1.AssignmentUpdate_Upsert:
				if pending != nil {
					pending[ch.Upsert.GetTaskId()] = ch.Upsert
					continue
				}
				cur[ch.Upsert.GetTaskId()] = ch.Upsert
			case *fathomv1.AssignmentUpdate_Remove:
				if pending != nil {
					delete(pending, ch.Remove)
					continue
				}
				delete(cur, ch.Remove)
			}
			if !synced {
				continue
			}
			set := &assignmentSet{Revision: u.GetRevision()}
			for _, as := range cur {
				set.Assignments = append(set.Assignments, as)
			}
			slices.SortFunc(set.Assignments, func(x, y *fathomv1.Assignment) int { return strings.Compare(x.GetTaskId(), y.GetTaskId()) })
			a.sets <- set
		}
	}()
	return a
}

// next returns the first assignment set that satisfies cond.
func (a *agent) next(what string, cond func(*assignmentSet) bool) *assignmentSet {
	a.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case set, ok := <-a.sets:
			if !ok {
				a.t.Fatalf("%s: assignment stream ended", a.name)
			}
			if cond(set) {
				return set
			}
		case <-timeout:
			a.t.Fatalf("%s: no assignment set with %s", a.name, what)
		}
	}
}

func (a *agent) report(st ...*fathomv1.TaskStatus) {
	a.t.Helper()
	if _, err := a.h.agents.ReportTaskStatus(a.t.Context(), &fathomv1.ReportTaskStatusRequest{NodeId: a.name, Statuses: st}); err != nil {
		a.t.Fatal(err)
	}
}

func (h *harness) task(jobID string, idx int) *fathomv1.Task {
	resp, err := h.jobs.ListTasks(h.t.Context(), &fathomv1.ListTasksRequest{JobId: jobID})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.GetTasks()[idx]
}

func TestAgentLifecycle(t *testing.T) {
	h := startServer(t, Options{Controller: controller.Config{HeartbeatTimeout: time.Second, FailoverGrace: time.Nanosecond}, RemoteWriteHTTPPort: "9999"})
	ctx := t.Context()
	a := h.agent("node-a", 4)
	if set := a.next("initial empty set", func(*assignmentSet) bool { return true }); len(set.GetAssignments()) != 0 {
		t.Fatalf("first set = %v, want empty", set)
	}
	created, err := h.jobs.CreateJob(ctx, &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{
		Name: "web", Task: &fathomv1.TaskSpec{Command: []string{"python3", "-m", "http.server"}, Resources: &fathomv1.Resources{Memory: "128Mi"}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetId()
	set := a.next("the web task", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 1 })
	as := set.GetAssignments()[0]
	if as.GetTaskId() != id+"-0" || as.GetDesiredState() != fathomv1.DesiredState_DESIRED_STATE_RUN || as.GetMemoryLimitBytes() != 128<<20 || as.GetGeneration() != 1 || as.GetJobType() != "service" {
		t.Fatalf("assignment = %v", as)
	}
	a.report(&fathomv1.TaskStatus{TaskId: as.GetTaskId(), State: fathomv1.TaskState_TASK_STATE_RUNNING, Pid: 42, Generation: 1})
	if tk := h.task(id, 0); tk.GetState() != fathomv1.TaskState_TASK_STATE_RUNNING || tk.GetNode() != "node-a" || tk.GetPid() != 42 {
		t.Fatalf("task after RUNNING report = %v", tk)
	}
	// A gRPC CreateJob with a bad spec is INVALID_ARGUMENT too.
	if _, err := h.jobs.CreateJob(ctx, &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{Name: "x"}}); err == nil || !strings.Contains(err.Error(), "task") {
		t.Fatalf("gRPC bad spec: err = %v, want one naming task", err)
	}

	// Node B joins; node A stops heartbeating (B keeps going): A goes down,
	// the task is lost and placed again on B with the same id, next generation.
	b := h.agent("node-b", 4)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				h.agents.Heartbeat(context.Background(), &fathomv1.HeartbeatRequest{NodeId: "node-b"})
			}
		}
	}()
	moved := b.next("the moved task", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 1 })
	if m := moved.GetAssignments()[0]; m.GetTaskId() != id+"-0" || m.GetGeneration() != 2 {
		t.Fatalf("moved assignment = %v, want same task id, generation 2", m)
	}
	tk := h.task(id, 0)
	if tk.GetNode() != "node-b" || tk.GetState() != fathomv1.TaskState_TASK_STATE_PLACED {
		t.Fatalf("task after node-a died = %v", tk)
	}
	var sawLost bool
	for _, hst := range tk.GetHistory() {
		sawLost = sawLost || (hst.GetState() == fathomv1.TaskState_TASK_STATE_LOST && strings.Contains(hst.GetMessage(), "node-a stopped heartbeating"))
	}
	if !sawLost {
		t.Fatalf("history does not explain the move: %v", tk.GetHistory())
	}
	nodes, _ := h.nodes.ListNodes(ctx, &fathomv1.ListNodesRequest{})
	if len(nodes.GetNodes()) != 2 || nodes.GetNodes()[0].GetState() != fathomv1.NodeState_NODE_STATE_DOWN || nodes.GetNodes()[1].GetTaskCount() != 1 {
		t.Fatalf("nodes = %v", nodes)
	}

	// Stop: the assignment turns to STOP; the agent confirms; the task is stopped.
	b.report(&fathomv1.TaskStatus{TaskId: id + "-0", State: fathomv1.TaskState_TASK_STATE_RUNNING, Pid: 7, Generation: 2})
	// Node A's copy stays in its set until the replacement runs (a node cut
	// off by a partition keeps serving); now it is dropped.
	a.next("node A's set emptied", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 0 })
	if _, err := h.jobs.StopJob(ctx, &fathomv1.StopJobRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	b.next("a STOP assignment", func(s *assignmentSet) bool {
		return len(s.GetAssignments()) == 1 && s.GetAssignments()[0].GetDesiredState() == fathomv1.DesiredState_DESIRED_STATE_STOP
	})
	b.report(&fathomv1.TaskStatus{TaskId: id + "-0", State: fathomv1.TaskState_TASK_STATE_STOPPED, Generation: 3})
	b.next("an empty set after the stop", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 0 })
	if tk := h.task(id, 0); tk.GetState() != fathomv1.TaskState_TASK_STATE_STOPPED {
		t.Fatalf("task after stop = %v", tk)
	}

	// A batch job: success of every task finishes the job.
	bj, err := h.jobs.CreateJob(ctx, &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{Name: "etl", Type: "batch", Task: &fathomv1.TaskSpec{Command: []string{"/bin/true"}}}})
	if err != nil {
		t.Fatal(err)
	}
	b.next("the batch task", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 1 })
	b.report(&fathomv1.TaskStatus{TaskId: bj.GetId() + "-0", State: fathomv1.TaskState_TASK_STATE_SUCCEEDED})
	job, err := h.jobs.GetJob(ctx, &fathomv1.GetJobRequest{Id: bj.GetId()})
	if err != nil || job.GetState() != fathomv1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("batch job = %v, %v; want succeeded", job, err)
	}
	// Heartbeats are memory-only: the node keeps its usage without a write.
	if _, err := h.agents.Heartbeat(ctx, &fathomv1.HeartbeatRequest{NodeId: "nobody"}); err != nil {
		t.Fatal(err)
	}
}

// TestRESTWatchJobsStreams reads the REST watch stream: every existing job,
// then a job created after the watch started.
func TestRESTWatchJobsStreams(t *testing.T) {
	h := startServer(t, Options{})
	if code, body := h.do("POST", "/v1/jobs", `{"name":"before","task":{"command":["sleep","1"]}}`); code != 200 {
		t.Fatalf("POST = %d %v", code, body)
	}
	resp, err := http.Get(h.url + "/v1/watch/jobs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	next := func() (string, string) {
		var ev struct {
			Result struct {
				Type string `json:"type"`
				Job  struct {
					Name string `json:"name"`
				} `json:"job"`
			} `json:"result"`
		}
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		return ev.Result.Type, ev.Result.Job.Name
	}
	if typ, name := next(); typ != "EVENT_TYPE_EXISTING" || name != "before" {
		t.Fatalf("first event = %s %s, want EXISTING before", typ, name)
	}
	if code, body := h.do("POST", "/v1/jobs", `{"name":"after","task":{"command":["sleep","1"]}}`); code != 200 {
		t.Fatalf("POST = %d %v", code, body)
	}
	for {
		typ, name := next()
		if name == "after" {
			if typ != "EVENT_TYPE_CREATED" {
				t.Fatalf("event for the new job = %s, want CREATED", typ)
			}
			return
		}
	}
}

// TestCronRuns: a cron job places nothing until its schedule fires; each
// firing starts a run with the same task ids; a firing during an active run
// is skipped; the job never finishes by itself.
func TestCronRuns(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	h := startServer(t, Options{Now: clock.Now, Controller: controller.Config{HeartbeatTimeout: time.Hour}})
	ctx := t.Context()
	a := h.agent("node-c", 4)
	created, err := h.jobs.CreateJob(ctx, &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{
		Name: "report", Type: "cron", Schedule: "*/5 * * * *", Task: &fathomv1.TaskSpec{Command: []string{"/bin/true"}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetId()
	if nr := created.GetJob().GetNextRunAt(); nr == nil || nr.AsTime().Minute()%5 != 0 {
		t.Fatalf("next_run_at = %v, want a multiple of 5 minutes", nr)
	}
	h.round()
	if tk := h.task(id, 0); tk.GetState() != fathomv1.TaskState_TASK_STATE_PENDING || !strings.Contains(tk.GetReason(), "waiting for the schedule") {
		t.Fatalf("before the first firing: %v", tk)
	}
	base := created.GetJob().GetCreatedAt().AsTime()
	clock.Set(base.Add(6 * time.Minute))
	h.round()
	first := a.next("run 1", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 1 })
	a.report(&fathomv1.TaskStatus{TaskId: id + "-0", State: fathomv1.TaskState_TASK_STATE_RUNNING})
	// Firing while run 1 is active: skipped.
	clock.Set(base.Add(11 * time.Minute))
	h.round()
	if tk := h.task(id, 0); tk.GetState() != fathomv1.TaskState_TASK_STATE_RUNNING || tk.GetGeneration() != first.GetAssignments()[0].GetGeneration() {
		t.Fatalf("overlapping firing changed the running task: %v", tk)
	}
	a.report(&fathomv1.TaskStatus{TaskId: id + "-0", State: fathomv1.TaskState_TASK_STATE_SUCCEEDED})
	job, _ := h.jobs.GetJob(ctx, &fathomv1.GetJobRequest{Id: id})
	if job.GetState() != fathomv1.JobState_JOB_STATE_PENDING || job.GetRuns() != 1 {
		t.Fatalf("between runs: state %v, runs %d; want pending, 1", job.GetState(), job.GetRuns())
	}
	// The name stays taken: a cron job ends only when stopped, so the
	// same name again is a new version of it (its next run uses it).
	if resp, err := h.jobs.CreateJob(ctx, &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{
		Name: "report", Type: "cron", Schedule: "*/5 * * * *", Task: &fathomv1.TaskSpec{Command: []string{"/bin/true", "v2"}}}}); err != nil || resp.GetId() != id || resp.GetVersion() != 2 {
		t.Fatalf("the same cron name again = %v, %v; want job %s at version 2", resp, err, id)
	}
	clock.Set(base.Add(20 * time.Minute))
	h.round()
	g1 := first.GetAssignments()[0].GetGeneration()
	second := a.next("run 2", func(s *assignmentSet) bool {
		return len(s.GetAssignments()) == 1 && s.GetAssignments()[0].GetGeneration() > g1
	})
	if a2 := second.GetAssignments()[0]; a2.GetTaskId() != id+"-0" || a2.GetVersion() != 2 || len(a2.GetCommand()) != 2 {
		t.Fatalf("run 2 assignment %v: want the same task id, on version 2", a2)
	}
	job, _ = h.jobs.GetJob(ctx, &fathomv1.GetJobRequest{Id: id})
	if job.GetRuns() != 2 || job.GetState() != fathomv1.JobState_JOB_STATE_RUNNING {
		t.Fatalf("during run 2: runs %d, state %v", job.GetRuns(), job.GetState())
	}
}

// TestRestartPolicyThroughTheLoop: through the real loop, etcd and the
// gRPC agent API, a service task that exits stays placed on its node while
// its restart waits (the node's set keeps it), then a new generation asks
// the agent to start it; a batch task with restart {attempts: 0} that exits
// fails with its exit code and the output the agent reported, its job
// fails, and it leaves the node's set.
func TestRestartPolicyThroughTheLoop(t *testing.T) {
	h := startServer(t, Options{})
	a := h.agent("node-a", 4)
	svc := h.submit(&fathomv1.JobSpec{Name: "web", Type: "service", Priority: "prod", Replicas: proto.Int32(1),
		Restart: &fathomv1.RestartPolicy{Attempts: proto.Int32(2), Interval: "1m", Delay: "1s"},
		Task:    &fathomv1.TaskSpec{Command: []string{"sleep", "600"}}})
	bat := h.submit(&fathomv1.JobSpec{Name: "etl", Type: "batch", Priority: "batch", Replicas: proto.Int32(1),
		Restart: &fathomv1.RestartPolicy{Attempts: proto.Int32(0)},
		Task:    &fathomv1.TaskSpec{Command: []string{"sleep", "600"}}})
	sid, bid := svc+"-0", bat+"-0"
	set := a.next("both tasks on node-a", func(s *assignmentSet) bool { return hasTask(s, sid) != nil && hasTask(s, bid) != nil })
	sg, bg := hasTask(set, sid).GetGeneration(), hasTask(set, bid).GetGeneration()
	a.report(running(sid, sg), running(bid, bg))
	eventually(t, "both running", func() bool {
		return h.task(svc, 0).GetState() == fathomv1.TaskState_TASK_STATE_RUNNING && h.task(bat, 0).GetState() == fathomv1.TaskState_TASK_STATE_RUNNING
	})
	exited := func(id string, gen int64) *fathomv1.TaskStatus {
		return &fathomv1.TaskStatus{TaskId: id, State: fathomv1.TaskState_TASK_STATE_FAILED, ExitCode: 137, Generation: gen,
			Reason: "exited with code 137", LogTail: "loading\npanic: out of cheese"}
	}
	a.report(exited(sid, sg), exited(bid, bg))
	eventually(t, "the batch task failed", func() bool { return h.task(bat, 0).GetState() == fathomv1.TaskState_TASK_STATE_FAILED })
	if tk := h.task(bat, 0); tk.GetExitCode() != 137 || !strings.Contains(tk.GetReason(), "exited 137 on node-a") || !strings.Contains(tk.GetReason(), "panic: out of cheese") {
		t.Errorf("failed batch task: exit %d, reason %q; want the exit code and the last output", tk.GetExitCode(), tk.GetReason())
	}
	if j, _ := h.jobs.GetJob(context.Background(), &fathomv1.GetJobRequest{Id: bat}); j.GetState() != fathomv1.JobState_JOB_STATE_FAILED {
		t.Errorf("batch job state %v; want failed", j.GetState())
	}
	if tk := h.task(svc, 0); tk.GetState() != fathomv1.TaskState_TASK_STATE_PLACED || tk.GetNode() != "node-a" || tk.GetRestartAt() == nil || tk.GetRestartAttempts() != 1 {
		t.Fatalf("service task after an exit = %v; want placed on node-a with its restart waiting", tk)
	}
	set = a.next("the batch task leaves node-a's set and the service restarts", func(s *assignmentSet) bool {
		return hasTask(s, bid) == nil && hasTask(s, sid) != nil && hasTask(s, sid).GetGeneration() > sg
	})
	a.report(running(sid, hasTask(set, sid).GetGeneration()))
	eventually(t, "the service runs again", func() bool {
		tk := h.task(svc, 0)
		return tk.GetState() == fathomv1.TaskState_TASK_STATE_RUNNING && tk.GetRestartAt() == nil
	})
}
