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
func benchPlaceOne(b *testing.B, n int, opts Options) { benchPlaceOneWith(b, n, opts, false) }

// BenchmarkPlaceSpread is BenchmarkPlace on nodes in three zones, with
// every task spread over the zone label (and a third constrained to
// zone != c): the cost of the spread levels and the constraint cache.
func BenchmarkPlaceSpread(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			benchPlaceOneWith(b, n, Options{KeepOrder: true}, true)
		})
	}
}

func benchPlaceOneWith(b *testing.B, n int, opts Options, spread bool) {
	nodes := benchNodes(n)
	if spread {
		for i := range nodes {
			nodes[i].Labels = map[string]string{"zone": string(rune('a' + i%3))}
		}
	}
	rules := func(ts []Task) []Task {
		if spread {
			for i := range ts {
				ts[i].Spread = "zone"
				if i%3 == 0 {
					ts[i].Constraints = []Constraint{{Label: "zone", Op: OpNotEqual, Value: "c"}}
				}
			}
		}
		return ts
	}
	s, err := NewState(ClusterView{Nodes: nodes})
	if err != nil {
		b.Fatal(err)
	}
	opts.Seed = 1
	if _, err := s.Place(rules(benchTasks(n*6, 1)), opts); err != nil {
		b.Fatal(err)
	}
	extra := rules(benchTasks(4096, 2))
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
