package store

import (
	"context"
	"errors"
	"fmt"
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
	j := &fathomv1.Job{Id: "web-abc", Namespace: "team-a", Name: "web"}
	if err := s.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	dup := &fathomv1.Job{Id: "web-def", Namespace: "team-a", Name: "web"}
	if err := s.CreateJob(ctx, dup); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("second job with the same name: err = %v, want ErrNameTaken", err)
	}
	// Same name in another namespace is fine.
	if err := s.CreateJob(ctx, &fathomv1.Job{Id: "web-ghi", Namespace: "team-b", Name: "web"}); err != nil {
		t.Fatal(err)
	}
	// More tasks than one transaction holds, to exercise batching.
	var ops []Op
	for i := range int32(300) {
		ops = append(ops, PutTask(&fathomv1.Task{Id: fmt.Sprintf("web-abc-%d", i), JobId: "web-abc", Index: i, Node: "n1"}))
	}
	ops = append(ops, PutNode(&fathomv1.Node{Name: "n1", Id: "n1", CpuCores: 2}), Delete(JobNameKey("team-b", "web")))
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
	if len(snap.Jobs) != 2 || len(snap.Tasks) != 300 || len(snap.Nodes) != 1 {
		t.Fatalf("loaded %d jobs, %d tasks, %d nodes; want 2, 300, 1", len(snap.Jobs), len(snap.Tasks), len(snap.Nodes))
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
