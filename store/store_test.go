package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// TestEmbeddedRoundTrip writes through a real embedded etcd, closes it, opens
// the same data dir again and expects everything back.
func TestEmbeddedRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// More tasks than one transaction holds, to exercise batching by ops
	// and by bytes; a job deleted with its tasks (a range delete); copies.
	ops := []Op{
		PutJob(&fathomv1.Job{Id: "web-abc", Namespace: "team-a", Name: "web"}),
		PutJob(&fathomv1.Job{Id: "old-xyz", Namespace: "team-a", Name: "old"}),
		{Key: JobNameKey("team-a", "web"), Value: []byte("web-abc")},
		{Key: JobNameKey("team-b", "web"), Value: []byte("web-ghi")},
	}
	for i := range int32(3000) {
		ops = append(ops, PutTask(&fathomv1.Task{Id: fmt.Sprintf("web-abc-%d", i), JobId: "web-abc", Index: i, Node: "n1", Reason: strings.Repeat("x", 3000)}))
	}
	for i := range int32(5) {
		ops = append(ops, PutTask(&fathomv1.Task{Id: fmt.Sprintf("old-xyz-%d", i), JobId: "old-xyz", Index: i}))
	}
	ops = append(ops, PutNode(&fathomv1.Node{Name: "n1", Id: "n1", CpuCores: 2}), Delete(JobNameKey("team-b", "web")),
		PutCopy(&fathomv1.TaskCopy{TaskId: "web-abc-1", Node: "n2", Generation: 3}),
		Delete(JobKey("team-a", "old-xyz")), DeletePrefix(TasksOfJob("old-xyz")))
	rev, err := s.Commit(ctx, ops...)
	if err != nil {
		t.Fatal(err)
	}
	if rev <= 0 {
		t.Fatalf("commit revision = %d, want > 0", rev)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Jobs) != 1 || len(snap.Tasks) != 3000 || len(snap.Nodes) != 1 || len(snap.Copies) != 1 {
		t.Fatalf("loaded %d jobs, %d tasks, %d nodes, %d copies; want 1, 3000, 1, 1", len(snap.Jobs), len(snap.Tasks), len(snap.Nodes), len(snap.Copies))
	}
	if c := snap.Copies[0]; c.GetTaskId() != "web-abc-1" || c.GetNode() != "n2" || c.GetGeneration() != 3 {
		t.Fatalf("copy = %v", c)
	}
	if got := snap.JobNames["team-a/web"]; got != "web-abc" || len(snap.JobNames) != 1 {
		t.Fatalf("job names = %v, want only team-a/web -> web-abc", snap.JobNames)
	}
	for i, task := range snap.Tasks {
		if task.GetIndex() != int32(i) {
			t.Fatalf("task %d has index %d: keys must sort by index", i, task.GetIndex())
		}
	}
}
