package models

import (
	"fmt"
	"time"
)

// VPAParams are the Kubernetes VPA recommender's parameters.
type VPAParams struct {
	HalfLife         float64          `json:"half_life_s"`       // histogram decay half-life (24 h)
	TargetPercentile float64          `json:"target_percentile"` // 0.9
	SafetyMargin     float64          `json:"safety_margin"`     // 0.15
	MemoryInterval   float64          `json:"memory_interval_s"` // one memory peak per interval (24 h)
	MinCPU           float64          `json:"min_cpu"`           // cores (0.025)
	MinMemory        float64          `json:"min_memory"`        // bytes (250 MiB)
	OOMBumpRatio     float64          `json:"oom_bump_ratio"`    // 1.2
	OOMMinBump       float64          `json:"oom_min_bump"`      // bytes (100 MiB)
	CPUHistogram     HistogramOptions `json:"cpu_histogram"`
	MemoryHistogram  HistogramOptions `json:"memory_histogram"`
}

// DefaultVPAParams are the VPA recommender's defaults (pkg/recommender/model
// and logic in kubernetes/autoscaler).
func DefaultVPAParams() VPAParams {
	return VPAParams{
		HalfLife:         24 * 3600,
		TargetPercentile: 0.9,
		SafetyMargin:     0.15,
		MemoryInterval:   24 * 3600,
		MinCPU:           0.025,
		MinMemory:        250 << 20,
		OOMBumpRatio:     1.2,
		OOMMinBump:       100 << 20,
		CPUHistogram:     CPUHistogram,
		MemoryHistogram:  MemoryHistogram,
	}
}

// VPA is the Kubernetes VPA recommender for one container: CPU samples go
// into a decaying histogram as they come; memory goes in as one peak per
// aggregation interval, replaced in place while the interval lasts. The
// target is the p90 of each plus 15%, at least 25 mCPU and 250 MiB; the VPA
// sets request = target, and so does this.
type VPA struct {
	Params    VPAParams          `json:"params"`
	CPUHist   *DecayingHistogram `json:"cpu_hist"`
	MemHist   *DecayingHistogram `json:"mem_hist"`
	WindowEnd int64              `json:"window_end"` // end of the current memory interval, unix s
	Peak      float64            `json:"peak"`       // memory peak in the current interval
	Last      int64              `json:"last"`
	N         int                `json:"n"`
	CPUStats  Moments            `json:"cpu_stats"`
	MemStats  Moments            `json:"mem_stats"`
}

// NewVPA returns an empty VPA recommender.
func NewVPA(p VPAParams) *VPA {
	return &VPA{
		Params:   p,
		CPUHist:  NewDecayingHistogram(p.CPUHistogram, p.HalfLife),
		MemHist:  NewDecayingHistogram(p.MemoryHistogram, p.HalfLife),
		CPUStats: Moments{HalfLife: p.HalfLife},
		MemStats: Moments{HalfLife: p.HalfLife},
	}
}

// Kind implements Recommender.
func (v *VPA) Kind() string { return "vpa" }

// Observe implements Recommender.
func (v *VPA) Observe(w Window) {
	t := unix(w.Start)
	if v.N > 0 && t <= v.Last {
		return
	}
	v.Last = t
	v.N++
	v.CPUHist.Add(w.CPU, 1, t)
	v.CPUStats.Add(w.CPU, t)
	v.MemStats.Add(w.Memory, t)
	v.addMemory(w.Memory, t)
}

// addMemory is the VPA's ContainerState.addMemorySample.
func (v *VPA) addMemory(mem float64, t int64) {
	interval := int64(v.Params.MemoryInterval)
	if v.WindowEnd == 0 {
		v.WindowEnd = t
	}
	if t < v.WindowEnd {
		if v.Peak != 0 && mem > v.Peak {
			v.MemHist.Subtract(v.Peak, 1, v.WindowEnd)
			v.MemHist.Add(mem, 1, v.WindowEnd)
			v.Peak = mem
		}
		return
	}
	shift := (t-v.WindowEnd)/interval*interval + interval
	v.WindowEnd += shift
	v.Peak = mem
	v.MemHist.Add(mem, 1, v.WindowEnd)
}

// ObserveOOM implements Recommender: the VPA records a memory sample of
// max(used + 100 MiB, used × 1.2).
func (v *VPA) ObserveOOM(at time.Time, memory float64) {
	used := max(memory, v.Peak)
	need := max(used+v.Params.OOMMinBump, used*v.Params.OOMBumpRatio)
	t := unix(at)
	if v.WindowEnd == 0 || t >= v.WindowEnd {
		v.addMemory(need, t)
		return
	}
	if need > v.Peak {
		if v.Peak != 0 {
			v.MemHist.Subtract(v.Peak, 1, v.WindowEnd)
		}
		v.MemHist.Add(need, 1, v.WindowEnd)
		v.Peak = need
	}
}

// Limit implements Recommender.
func (v *VPA) Limit(time.Time) Size {
	m := 1 + v.Params.SafetyMargin
	return Size{
		CPU:    max(v.CPUHist.Percentile(v.Params.TargetPercentile)*m, v.Params.MinCPU),
		Memory: max(v.MemHist.Percentile(v.Params.TargetPercentile)*m, v.Params.MinMemory),
	}
}

// Recommend implements Recommender.
func (v *VPA) Recommend(now time.Time) Recommendation {
	l := v.Limit(now)
	return Recommendation{
		CPU:     Estimate{Request: l.CPU, Limit: l.CPU, Mean: v.CPUStats.Mean, StdDev: v.CPUStats.StdDev(), Quantiles: quantiles(v.CPUHist)},
		Memory:  Estimate{Request: l.Memory, Limit: l.Memory, Mean: v.MemStats.Mean, StdDev: v.MemStats.StdDev(), Quantiles: quantiles(v.MemHist)},
		Samples: v.N,
		Why:     fmt.Sprintf("vpa: p%.0f of %d windows (half-life %s) +%.0f%%", v.Params.TargetPercentile*100, v.N, time.Duration(v.Params.HalfLife)*time.Second, v.Params.SafetyMargin*100),
	}
}
