package controller

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCluster is 1,000 nodes running 10,000 tasks (200 jobs of 50), every
// task reported running, and the time of the last heartbeat.
func benchCluster(b *testing.B) (*Controller, time.Time) {
	c, err := New(Config{HeartbeatTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	for i := range 1000 {
		if _, err := c.Register(NodeInfo{Name: fmt.Sprintf("node-%04d", i), CPU: 32, Memory: 128 << 30}, now); err != nil {
			b.Fatal(err)
		}
	}
	for j := range 200 {
		spec := Spec{Name: fmt.Sprintf("job%03d", j), Namespace: "bench", Type: TypeService, Priority: []string{"prod", "batch"}[j%2],
			Replicas: 50, Command: []string{"sleep"}, CPUHint: 0.5, MemoryHint: 512 << 20}
		if err := c.Submit(Job{ID: spec.Name + "-x", Spec: spec}, now); err != nil {
			b.Fatal(err)
		}
	}
	c.Tick(now)
	rd := c.Ready()
	byNode := map[string][]Status{}
	for _, ch := range rd.Assign {
		if ch.Assignment != nil {
			byNode[ch.Node] = append(byNode[ch.Node], Status{TaskID: ch.TaskID, State: ReportedRunning, Generation: ch.Assignment.Generation})
		}
	}
	for n, sts := range byNode {
		if err := c.Report(n, sts, now); err != nil {
			b.Fatal(err)
		}
	}
	c.Tick(now)
	c.Ready()
	if r := len(c.Running()); r != 10000 {
		b.Fatalf("%d running, want 10000", r)
	}
	return c, now
}

// BenchmarkTick measures one round of the control loop on 1,000 nodes and
// 10,000 running tasks: a steady round (nothing to do: the cost every
// tick), and a round where the busiest node's heartbeat lapsed (its tasks lost
// and placed again). A round costs what changed, not the cluster's size:
// the scheduler's State is kept, not rebuilt.
func BenchmarkTick(b *testing.B) {
	b.Run("steady", func(b *testing.B) {
		c, now := benchCluster(b)
		nodes := c.Nodes()
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cpuTime()
		for i := range b.N {
			t := now.Add(time.Duration(i+1) * time.Millisecond)
			for _, n := range nodes {
				c.Heartbeat(n.Node.Name, Usage{}, t)
			}
			c.Tick(t)
			if rd := c.Ready(); !rd.Empty() {
				b.Fatalf("a steady round changed something: %d tasks", len(rd.Tasks))
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	// 10,000 more tasks each ask a whole node: the empty nodes take some,
	// the rest wait. A round offers them only when capacity changes, so a
	// long queue costs what a steady round costs.
	b.Run("queue-blocked", func(b *testing.B) {
		c, now := benchCluster(b)
		spec := Spec{Name: "huge", Namespace: "bench", Type: TypeBatch, Priority: "batch",
			Replicas: 10000, Command: []string{"sleep"}, CPUHint: 32, MemoryHint: 128 << 30}
		if err := c.Submit(Job{ID: "huge-x", Spec: spec}, now); err != nil {
			b.Fatal(err)
		}
		c.Tick(now)
		rd := c.Ready()
		if rd.Stats.Unschedulable+rd.Stats.Placed != 10000 || rd.Stats.Unschedulable < 9000 {
			b.Fatalf("%d placed, %d found no room: want about 9,000 waiting of 10,000", rd.Stats.Placed, rd.Stats.Unschedulable)
		}
		waiting := rd.Stats.Unschedulable
		nodes := c.Nodes()
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cpuTime()
		for i := range b.N {
			t := now.Add(time.Duration(i+1) * time.Millisecond)
			for _, n := range nodes {
				c.Heartbeat(n.Node.Name, Usage{}, t)
			}
			c.Tick(t)
			if rd := c.Ready(); rd.Stats.Unschedulable != 0 {
				b.Fatalf("blocked tasks offered again with nothing changed: %d", rd.Stats.Unschedulable)
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		if a := c.AutoscaleView(now).Report; a.Add != waiting {
			b.Errorf("the report adds %d machines, want one per waiting task (%d)", a.Add, waiting)
		}
	})
	b.Run("node-down", func(b *testing.B) {
		b.ReportAllocs()
		var took time.Duration
		placed, lost := 0, 0
		for range b.N {
			b.StopTimer()
			c, now := benchCluster(b)
			t := now.Add(2 * time.Minute)
			busiest := c.Nodes()[0]
			for _, n := range c.Nodes() {
				if n.Tasks > busiest.Tasks {
					busiest = n
				}
			}
			for _, n := range c.Nodes() {
				if n.Node.Name != busiest.Node.Name {
					c.Heartbeat(n.Node.Name, Usage{}, t)
				}
			}
			b.StartTimer()
			start := time.Now()
			c.Tick(t)
			rd := c.Ready()
			took += time.Since(start)
			placed, lost = rd.Stats.Placed, rd.Stats.Rescheduled
		}
		b.ReportMetric(float64(placed), "placed")
		b.ReportMetric(float64(lost), "lost")
		b.ReportMetric(float64(took.Nanoseconds())/float64(b.N), "round-ns")
	})
}
