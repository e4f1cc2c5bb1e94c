package scheduler

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time (test-only; the package
// itself never reads clocks).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchTasks makes n tasks with seeded random shapes on 16-core/64-GiB-like
// units, with predicted usage, a prod share with limits and spread.
func benchTasks(n int, seed uint64) []Task {
	rng := rand.New(rand.NewPCG(seed, 9))
	ts := make([]Task, n)
	for i := range ts {
		cpu := 0.1 + rng.Float64()*2
		mem := cpu * (0.5 + rng.Float64()*3.5)
		t := Task{ID: fmt.Sprintf("t%d", i), Request: Resources{cpu, mem}, Priority: Batch, Job: fmt.Sprintf("j%d", i/50)}
		t.Usage = [NumResources]Dist{{Mean: 0.6 * cpu, StdDev: 0.15 * cpu}, {Mean: 0.6 * mem, StdDev: 0.15 * mem}}
		if rng.Float64() < 0.2 {
			t.Priority, t.Limit, t.MaxPerNode, t.Job = Prod, Resources{1.5 * cpu, 1.5 * mem}, 1, fmt.Sprintf("svc%d", i/6)
		}
		ts[i] = t
	}
	return ts
}

func benchNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("n%d", i), Capacity: Resources{16, 64}}
	}
	return nodes
}

// BenchmarkPlace measures one placement (one Place call with one task) on
// clusters of growing size, each filled to about 60% first: the cost per
// placement should stay flat as the cluster grows.
func BenchmarkPlace(b *testing.B) {
	for _, n := range []int{1000, 10000, 30000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			benchPlaceOne(b, n, Options{KeepOrder: true})
		})
	}
}

// benchPlaceOne fills n nodes with 6n tasks, then measures placing (and
// removing again) one task at a time under opts.
func benchPlaceOne(b *testing.B, n int, opts Options) {
	s, err := NewState(ClusterView{Nodes: benchNodes(n)})
	if err != nil {
		b.Fatal(err)
	}
	opts.Seed = 1
	if _, err := s.Place(benchTasks(n*6, 1), opts); err != nil {
		b.Fatal(err)
	}
	extra := benchTasks(4096, 2)
	for i := range extra {
		extra[i].ID = "x" + extra[i].ID
	}
	one := make([]Task, 1)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		k := i % len(extra)
		one[0] = extra[k]
		opts.Seed = uint64(i)
		if p, _ := s.Place(one, opts); len(p.Placements) == 1 {
			s.Remove(extra[k].ID)
		}
	}
	// On a shared machine ns/op includes waiting for a core;
	// cpu-ns/op is the process's CPU time per placement.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkPlaceBatch measures a whole batch: 100,000 tasks onto 10,000 nodes.
func BenchmarkPlaceBatch(b *testing.B) {
	nodes := benchNodes(10000)
	tasks := benchTasks(100000, 3)
	b.ResetTimer()
	placed := 0
	for i := 0; i < b.N; i++ {
		p, err := Place(ClusterView{Nodes: nodes}, tasks, Options{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		placed += len(p.Placements)
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
}

// reconcileBench is a cluster of 1,000 nodes running 10,000 tasks (placed by
// Place first), as a ClusterState the server would build every round.
func reconcileBench(b *testing.B) (ClusterState, time.Time) {
	nodes := benchNodes(1000)
	tasks := benchTasks(10000, 4)
	p, err := Place(ClusterView{Nodes: nodes}, tasks, Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	if len(p.Placements) != len(tasks) {
		b.Fatalf("placed %d of %d", len(p.Placements), len(tasks))
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	byID := make(map[string]Task, len(tasks))
	for _, t := range tasks {
		byID[t.ID] = t
	}
	var st ClusterState
	for _, n := range nodes {
		st.Nodes = append(st.Nodes, NodeStatus{Node: n, LastHeartbeat: now.Add(-time.Second)})
	}
	for _, pl := range p.Placements {
		st.Tasks = append(st.Tasks, TaskStatus{Task: byID[pl.TaskID], Phase: Running, Node: pl.Node, Attempt: 1, Since: now.Add(-time.Hour)})
		st.Copies = append(st.Copies, Copy{TaskID: pl.TaskID, Attempt: 1, Node: pl.Node})
	}
	return st, now
}

// BenchmarkReconcile measures one reconcile round on 1,000 nodes and 10,000
// running tasks: a steady round (nothing to do: the cost every tick), a
// round where one node's heartbeat lapsed (its ~10 tasks lost and re-placed)
// and one where 5% of the tasks' recommendations grew by 30% (resizes).
func BenchmarkReconcile(b *testing.B) {
	st, now := reconcileBench(b)
	down := st
	down.Nodes = append([]NodeStatus(nil), st.Nodes...)
	down.Nodes[7].LastHeartbeat = now.Add(-time.Minute)
	grown := st
	grown.Tasks = append([]TaskStatus(nil), st.Tasks...)
	for i := 0; i < len(grown.Tasks); i += 20 {
		ts := &grown.Tasks[i]
		ts.Applied = ts.Request
		ts.AppliedLimit = ts.Limit
		for r := range ts.Request {
			ts.Request[r] *= 1.3
			if ts.Limit[r] > 0 {
				ts.Limit[r] *= 1.3
			}
		}
	}
	for _, c := range []struct {
		name string
		st   ClusterState
	}{{"steady", st}, {"node-down", down}, {"resize-5pct", grown}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			var res Result
			for i := 0; i < b.N; i++ {
				var err error
				if res, err = Reconcile(c.st, now, ReconcileOptions{Options: Options{Seed: uint64(i)}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(len(res.Place)), "placed")
			b.ReportMetric(float64(len(res.Resize)), "resizes")
		})
	}
}
