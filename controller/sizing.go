package controller

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// Sizing is a task's wanted sizes with the predicted usage distribution the
// scheduler packs them with, and where they come from.
type Sizing struct {
	Sizes
	Dist   [scheduler.NumResources]scheduler.Dist
	Source string
}

// key is the predictor's name for a task: history is learned per
// namespace/job name, one series per task index.
func key(r ref) predictor.TaskKey {
	return predictor.TaskKey{Namespace: r.job.job.Spec.Namespace, Job: r.job.job.Spec.Name, Task: int(r.idx)}
}

// Features are what the cold-start model knows of a job.
func Features(s *Spec) models.JobFeatures { return features(s) }

// features are what the cold-start model knows of a task's job.
func features(s *Spec) models.JobFeatures {
	return models.JobFeatures{Namespace: s.Namespace, Name: s.Name, Command: s.Command, Type: s.Type, Priority: s.Priority,
		HintCPU: s.CPUHint, HintMemory: float64(s.MemoryHint)}
}

// startSizes are the sizes a waiting task is placed with, in order: the
// predictor's recommendation when the job's name has history (hints are
// then ignored: measured beats guessed); for a job with none, the
// cold-start model (predictor.RecommendNew: its limits never below a
// hint); then the hints; then the cold-start
// defaults. A task placed before (lost, evicted, preempted) never starts
// below what its last OOM kill or eviction showed it needs.
func (c *Controller) startSizes(r ref, now time.Time) Sizing {
	s := &r.job.job.Spec
	z := c.hintSizing(s)
	if c.pred != nil {
		k := key(r)
		if rec, err := c.pred.Recommend(k, now); err == nil {
			z = c.sizing(rec)
			z.Source = fmt.Sprintf("recommendation of the %s model (confidence %.2f)", rec.Model, rec.Confidence)
		} else if rec, err := c.pred.RecommendNew(k, features(s), now); err == nil && rec.Model == coldStartKind {
			// The predictor keeps every limit at least the spec's hint
			// (models.ColdStartAdvice.Limit, the one place that rule lives).
			z = c.sizing(rec)
			z.Source = "cold-start model: " + rec.Why
		}
	}
	if f := r.meta().floor; f != (Sizes{}) {
		z.Sizes = atLeast(z.Sizes, f)
		z.Source += "; raised to what its last OOM kill or eviction showed it needs"
	}
	if cpu, mem := c.largest(); cpu > 0 {
		z.Sizes = capAt(z.Sizes, cpu, mem)
	}
	if c.cfg.Sizing.PackOnLimit {
		z = packOnLimit(z)
	}
	return z
}

// coldStartKind is the Model of a cold-start recommendation.
const coldStartKind = "coldstart"

// hintSizing sizes a task from its spec's hints, or the cold-start defaults
// without limits where none are given.
func (c *Controller) hintSizing(s *Spec) Sizing {
	z := Sizing{Sizes: Sizes{CPURequest: s.CPUHint, CPULimit: s.CPUHint, MemoryRequest: s.MemoryHint, MemoryLimit: s.MemoryHint}, Source: "hints"}
	var def []string
	if z.CPURequest == 0 {
		z.CPURequest, z.CPULimit = DefaultCPURequest, 0
		def = append(def, "cpu")
	}
	if z.MemoryRequest == 0 {
		z.MemoryRequest, z.MemoryLimit = DefaultMemoryRequest, 0
		def = append(def, "memory")
	}
	switch len(def) {
	case 2:
		z.Source = "cold-start default (no history, no hints)"
	case 1:
		z.Source = "hints; cold-start default for " + def[0]
	}
	return z
}

func (c *Controller) sizing(rec predictor.Recommendation) Sizing { return SizingOf(c.cfg.Sizing, rec) }

// SizingOf turns a recommendation into the sizes policy p gives a task:
// limits never below the minimum limits nor below requests, whole
// millicores and MiB (what the kernel enforces is then exactly what the
// record says); with PackOnLimit, request = limit and no spread.
func SizingOf(policy SizingPolicy, rec predictor.Recommendation) Sizing {
	p := &policy
	z := Sizing{Sizes: Sizes{
		CPURequest: math.Max(rec.Request.CPU, 0.001), CPULimit: math.Max(rec.Limit.CPU, p.MinCPULimit),
		MemoryRequest: max(int64(rec.Request.Memory), 1<<20), MemoryLimit: max(int64(rec.Limit.Memory), p.MinMemoryLimit),
	}}
	z.CPULimit = math.Max(z.CPULimit, z.CPURequest)
	z.MemoryLimit = max(z.MemoryLimit, z.MemoryRequest)
	z.CPURequest, z.CPULimit = math.Ceil(z.CPURequest*1000)/1000, math.Ceil(z.CPULimit*1000)/1000
	z.MemoryRequest, z.MemoryLimit = roundMiB(z.MemoryRequest), roundMiB(z.MemoryLimit)
	z.Dist = [scheduler.NumResources]scheduler.Dist{
		{Mean: rec.Next[0].Mean, StdDev: rec.Next[0].StdDev},
		{Mean: rec.Next[1].Mean, StdDev: rec.Next[1].StdDev},
	}
	if p.PackOnLimit {
		z = packOnLimit(z)
	}
	return z
}

// packOnLimit makes the request the limit and drops the predicted spread:
// no oversubscription (a task without a limit keeps its request).
func packOnLimit(z Sizing) Sizing {
	if z.CPULimit > 0 {
		z.CPURequest = z.CPULimit
	}
	if z.MemoryLimit > 0 {
		z.MemoryRequest = z.MemoryLimit
	}
	z.Dist = [scheduler.NumResources]scheduler.Dist{}
	return z
}

// capAt caps sizes at a machine of cpu cores and mem bytes: no machine of
// that shape could hold more, and its agent cannot enforce more.
func capAt(z Sizes, cpu float64, mem int64) Sizes {
	z.CPURequest, z.CPULimit = math.Min(z.CPURequest, cpu), math.Min(z.CPULimit, cpu)
	z.MemoryRequest, z.MemoryLimit = min(z.MemoryRequest, mem), min(z.MemoryLimit, mem)
	return z
}

// largest is the largest node's capacity (per resource; zero without nodes).
func (c *Controller) largest() (float64, int64) {
	if c.big.ok {
		return c.big.cpu, c.big.mem
	}
	var cpu float64
	var mem int64
	for _, ne := range c.nodes {
		cpu, mem = math.Max(cpu, ne.node.CPU), max(mem, ne.node.Memory)
	}
	c.big.ok, c.big.cpu, c.big.mem = true, cpu, mem
	return cpu, mem
}

// roundMiB rounds b up to a whole MiB.
func roundMiB(b int64) int64 { return (b + 1<<20 - 1) &^ (1<<20 - 1) }

// atLeast is z with every size raised to floor's.
func atLeast(z, floor Sizes) Sizes {
	z.CPURequest = math.Max(z.CPURequest, floor.CPURequest)
	z.MemoryRequest = max(z.MemoryRequest, floor.MemoryRequest)
	if z.CPULimit > 0 || floor.CPULimit > 0 {
		z.CPULimit = math.Max(math.Max(z.CPULimit, floor.CPULimit), z.CPURequest)
	}
	if z.MemoryLimit > 0 || floor.MemoryLimit > 0 {
		z.MemoryLimit = max(z.MemoryLimit, floor.MemoryLimit, z.MemoryRequest)
	}
	return z
}

// resizeDecision applies the sizing policy to a running task: cur are the
// sizes in effect, want the recommended ones. Growth beyond half the
// deadband in any request or limit is taken at once; a shrink only past the
// deadband and ShrinkDelay after the last change; a change of the predicted
// usage distribution past the deadband is taken with the next change of
// sizes, or on its own when it grows (the risk bound must see it). It
// returns the sizes to apply, whether anything changes, and why.
func (p *SizingPolicy) resizeDecision(cur Sizing, want Sizing, lastChange, now time.Time) (Sizing, bool, string) {
	band := p.Deadband
	out := cur
	var ups, downs []string
	canShrink := now.Sub(lastChange) >= p.ShrinkDelay
	// The reason names units: a person reads it in `fathom job status` and
	// the console ("memory request 32 MiB→40 MiB", never raw bytes).
	one := func(name string, c, w float64, unit func(float64) string) float64 {
		switch {
		case c <= 0 && w > 0 || w > c*(1+band/2):
			ups = append(ups, name+" "+unit(c)+"→"+unit(w))
			return w
		case w < c*(1-band) && canShrink:
			downs = append(downs, name+" "+unit(c)+"→"+unit(w))
			return w
		}
		return c
	}
	cores := func(v float64) string { return fmt.Sprintf("%.4g", v) }
	mib := func(v float64) string { return fmt.Sprintf("%.4g MiB", v/(1<<20)) }
	out.CPURequest = one("cpu request", cur.CPURequest, want.CPURequest, cores)
	out.MemoryRequest = int64(one("memory request", float64(cur.MemoryRequest), float64(want.MemoryRequest), mib))
	if want.CPULimit > 0 || cur.CPULimit > 0 {
		out.CPULimit = one("cpu limit", cur.CPULimit, want.CPULimit, cores)
	}
	if want.MemoryLimit > 0 || cur.MemoryLimit > 0 {
		out.MemoryLimit = int64(one("memory limit", float64(cur.MemoryLimit), float64(want.MemoryLimit), mib))
	}
	if p.PackOnLimit {
		// Every change keeps request = limit.
		if out.CPULimit > 0 {
			out.CPURequest = out.CPULimit
		}
		if out.MemoryLimit > 0 {
			out.MemoryRequest = out.MemoryLimit
		}
	}
	// Limits never below requests.
	if out.CPULimit > 0 {
		out.CPULimit = math.Max(out.CPULimit, out.CPURequest)
	}
	if out.MemoryLimit > 0 {
		out.MemoryLimit = max(out.MemoryLimit, out.MemoryRequest)
	}
	distGrows, distMoved := false, false
	for r := range want.Dist {
		w, c := want.Dist[r], cur.Dist[r]
		scale := math.Max(c.Mean, 1e-12)
		if w.Mean > c.Mean*(1+band/2) || w.StdDev > c.StdDev+band/2*scale {
			distGrows = true
		}
		if math.Abs(w.Mean-c.Mean) > band*scale || math.Abs(w.StdDev-c.StdDev) > band*math.Max(c.StdDev, 0.1*scale) {
			distMoved = true
		}
	}
	changed := len(ups)+len(downs) > 0
	if changed || distGrows || (distMoved && canShrink) {
		out.Dist = want.Dist
		if !changed {
			return out, true, "predicted usage distribution updated"
		}
	}
	if !changed {
		return cur, false, "within the deadband or too soon since the last change"
	}
	return out, true, strings.Join(append(ups, downs...), ", ")
}

// oomRaise is the memory a task gets after an OOM kill or an eviction at
// used bytes (its limit for an OOM kill): the model's raised limit, and at
// least 20% or 100 MiB more than used.
func (c *Controller) oomRaise(r ref, used float64, now time.Time) int64 {
	next := int64(math.Max(used*1.2, used+100<<20))
	if c.pred != nil {
		c.pred.ObserveOOM(key(r), now, used)
		if rec, err := c.pred.Recommend(key(r), now); err == nil {
			next = max(next, int64(rec.Limit.Memory))
		}
	}
	return roundMiB(next)
}
