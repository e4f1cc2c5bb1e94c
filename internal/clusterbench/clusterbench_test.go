package clusterbench

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/server"
	"github.com/fathom-scheduler/fathom/store"
)

// TestSmallCluster runs 200 hollow nodes and 5,000 tasks through the bench's
// own code against a real server (in-process here) with the embedded etcd,
// and checks the outcome, not the time: every task reported running by
// exactly one node, the server showing it running there, no node's tasks
// over its capacity, and every API call of the trickle answered.
func TestSmallCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and 200 gRPC sessions")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := server.Options{Store: st, Logger: slog.New(slog.DiscardHandler)}
	o.Controller.HeartbeatTimeout = 10 * time.Second
	srv, err := server.New(ctx, o)
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
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, server.ServeOptions{HTTP: hl, GRPC: gl}) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	// Small nodes (2 cores, 4 GiB) and sized tasks, so that packing 5,000
	// tasks on 200 nodes fills most of them: 25 tasks of 50m and 128 MiB
	// need 1.25 cores and 3.1 GiB of each node on average.
	res, err := Run(ctx, Options{Server: Server{HTTP: "http://" + hl.Addr().String(), GRPC: gl.Addr().String()},
		Nodes: 200, Tasks: 5000, JobsOf: 1000, NodeCPU: 2, NodeMemory: 4 << 30, TaskCPU: "50m", TaskMemory: "128Mi",
		APIRate: 20, Timeout: time.Minute, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatalf("%v (result %+v)", err, res)
	}
	if !res.Checked || res.TasksRunning != 5000 || res.Jobs != 5 || res.Duplicates+res.Misplaced+res.Overcommitted != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.APICalls == 0 || res.APIErrors != 0 {
		t.Errorf("API trickle: %d calls, %d errors", res.APICalls, res.APIErrors)
	}
	t.Logf("%d tasks on %d of %d nodes in %.1f s", res.TasksRunning, res.NodesUsed, res.Nodes, res.Seconds)
}
