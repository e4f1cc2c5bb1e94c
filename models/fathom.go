package models

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Priority classes as in the job spec; they set how much a violation costs.
const (
	PriorityProd       = "prod"
	PriorityBatch      = "batch"
	PriorityBestEffort = "best-effort"
)

// FathomParams tune the ensemble. The costs are in "per window" units: a
// candidate limit L pays SizeCost×L (per core, or per GiB of memory) every
// window, plus OverrunCost when usage exceeds L and SevereCost more when
// usage exceeds 1.2×L. Minimising that sum is the Lagrangian of "smallest
// total limit for a given number of violations", so a small task may keep a
// generous margin (it costs little) while a big one is sized tightly.
type FathomParams struct {
	CPU    FathomResourceParams `json:"cpu"`
	Memory FathomResourceParams `json:"memory"`
	// CostHalfLife is how fast a candidate's past costs are forgotten, s.
	CostHalfLife float64 `json:"cost_half_life_s"`
	// StatsHalfLife is the half-life of the histogram and moments, s.
	StatsHalfLife float64 `json:"stats_half_life_s"`
	// Priority scales the overrun costs: prod ×1, batch ×0.5, best-effort ×0.25.
	Priority string `json:"priority"`
	// Deadband: a lower proposal replaces the limit only when it is this
	// fraction below it; raises are applied at once.
	Deadband float64 `json:"deadband"`
	// HoldDown: a limit is lowered to the highest proposal of this many
	// seconds, so a limit falls at most about once per HoldDown, s.
	HoldDown float64 `json:"hold_down_s"`
	// Margins multiply every base signal to make the candidates.
	Margins []float64 `json:"margins"`
	// NearMiss: usage above NearMiss×limit is charged a growing part of
	// OverrunCost, reaching all of it at the limit (1 disables).
	NearMiss float64 `json:"near_miss"`
	// OOMHold is how long an OOM's raised floor stays, s.
	OOMHold float64 `json:"oom_hold_s"`
	// OOMBumpRatio and OOMMinBump: after an OOM at m bytes the memory limit
	// is at least max(m×OOMBumpRatio, m+OOMMinBump).
	OOMBumpRatio float64 `json:"oom_bump_ratio"`
	OOMMinBump   float64 `json:"oom_min_bump"`
	// Budget is the share of windows whose usage may exceed the limit,
	// per resource. It sets the weight λ of overruns against size: a
	// recommender built by a Factory shares λ with its fleet, which
	// steers it to the budget (see BudgetPool); one built alone uses the
	// λ the budget had on the tuning data (open loop).
	Budget ViolationBudget `json:"budget"`
	// Steer tunes how a fleet tracks Budget.
	Steer SteerParams `json:"steer"`
}

// FathomResourceParams are one resource's cost weights.
type FathomResourceParams struct {
	SizeCost    float64 `json:"size_cost"` // per core (CPU) or per GiB (memory) per window
	OverrunCost float64 `json:"overrun_cost"`
	SevereCost  float64 `json:"severe_cost"`
	// Deadband and HoldDown override FathomParams' for this resource when > 0.
	Deadband float64 `json:"deadband,omitempty"`
	HoldDown float64 `json:"hold_down_s,omitempty"`
	// Floor is an absolute minimum limit (cores or bytes); tiny, so that an
	// idle task is not pinned at a fixed size as with the VPA's 250 MiB.
	Floor float64 `json:"floor"`
	// NearMiss overrides FathomParams.NearMiss for this resource when > 0.
	NearMiss float64 `json:"near_miss,omitempty"`
	// SevereRamp charges SevereCost in part from the limit up (all of it
	// at 1.2 × the limit) instead of only past 1.2 × the limit, so that
	// candidates are ranked on every overrun, not on the rare severe ones.
	SevereRamp bool `json:"severe_ramp,omitempty"`
	// Cap bounds every candidate at Cap × the largest usage of the last
	// 7 days (0 disables): a limit far above anything recently used buys
	// nothing that an OOM's raise would not (see OOMRecall, which goes
	// back to the largest usage ever seen), and a peak older than a week
	// no longer holds the limit up.
	Cap float64 `json:"cap,omitempty"`
	// Young and YoungMargin: for the first Young seconds of a task's
	// history the limit is at least YoungMargin × the largest usage seen,
	// while new highs are common and the candidates' costs say little
	// (0 disables).
	Young       float64 `json:"young_s,omitempty"`
	YoungMargin float64 `json:"young_margin,omitempty"`
	// OOMUsage: after an OOM, the usage recorded in the window of the kill
	// (times OOMBumpRatio) raises the floor too, when it is above the
	// limit the task was killed at.
	OOMUsage bool `json:"oom_usage,omitempty"`
	// OOMRecall: for OOMHold after an OOM the limit is at least the
	// largest usage ever seen. An OOM marks a bursty phase; levels the
	// task needed before are likely to be needed again soon.
	OOMRecall bool `json:"oom_recall,omitempty"`
}

// DefaultFathomParams were chosen on Bitbrains VMs 1-150 (see
// docs/predictor.md); VMs 151-250 are the validation VMs.
func DefaultFathomParams() FathomParams {
	return FathomParams{
		// CPU: no near-miss charge (throttling is mild, and near misses
		// on a noisy signal only inflate the margin).
		CPU: FathomResourceParams{SizeCost: 0.05, OverrunCost: 1, SevereCost: 1, Floor: 0.001, NearMiss: 1},
		Memory: FathomResourceParams{SizeCost: 0.05, OverrunCost: 16, SevereCost: 100, Floor: 1 << 20,
			Deadband: 0.08, HoldDown: 2 * 3600, NearMiss: 0.5, SevereRamp: true, Cap: 1.2,
			Young: 2 * 24 * 3600, YoungMargin: 1.0, OOMUsage: true, OOMRecall: true},
		CostHalfLife:  14 * 24 * 3600,
		StatsHalfLife: 24 * 3600,
		Priority:      PriorityProd,
		Deadband:      0.15,
		HoldDown:      4 * 3600,
		Margins:       []float64{1.0, 1.05, 1.15, 1.3, 1.6, 2.0},
		OOMHold:       3600,
		OOMBumpRatio:  1.2,
		OOMMinBump:    100 << 20,
		NearMiss:      0.85,
		Budget:        DefaultViolationBudget(),
		Steer:         SteerParams{Gain: [2]float64{2, 2}, MaxStep: 0.3, WarmUp: 24 * 3600, MaxLog: 12},
	}
}

// Validate reports parameters that cannot work, naming the field.
func (p FathomParams) Validate() error {
	if len(p.Margins) == 0 {
		return fmt.Errorf("fathom params: margins is empty; give at least one multiplier such as 1.1")
	}
	for _, m := range p.Margins {
		if !(m > 0) {
			return fmt.Errorf("fathom params: margin %v must be > 0", m)
		}
	}
	if p.CostHalfLife <= 0 || p.StatsHalfLife <= 0 {
		return fmt.Errorf("fathom params: cost_half_life_s and stats_half_life_s must be > 0")
	}
	if p.Deadband < 0 || p.Deadband >= 1 {
		return fmt.Errorf("fathom params: deadband %v must be in [0,1)", p.Deadband)
	}
	switch p.Priority {
	case PriorityProd, PriorityBatch, PriorityBestEffort, "":
	default:
		return fmt.Errorf("fathom params: priority %q: want prod, batch or best-effort", p.Priority)
	}
	if err := p.Budget.OrDefault().Validate(); err != nil {
		return fmt.Errorf("fathom params: %w", err)
	}
	for _, g := range p.Steer.Gain {
		if g < 0 || math.IsNaN(g) || math.IsInf(g, 0) {
			return fmt.Errorf("fathom params: steer gain %v must be a finite number >= 0", g)
		}
	}
	if p.Steer.MaxLog < 0 || p.Steer.MaxStep < 0 {
		return fmt.Errorf("fathom params: steer max_log %v and max_step %v must be >= 0", p.Steer.MaxLog, p.Steer.MaxStep)
	}
	return nil
}

func (p FathomParams) priorityScale() float64 {
	switch p.Priority {
	case PriorityBatch:
		return 0.5
	case PriorityBestEffort:
		return 0.25
	}
	return 1
}

// Base signals each candidate scales by a margin. Order matters for
// persisted costs; append only.
var fathomBases = []string{
	"max1h", "max6h", "max24h", "max72h", "max7d",
	"p95", "p99", "periodic", "mean+3sd", "mean+5sd", "maxall", "daily7", "max6h+2jump", "max24h+3jump",
}

// Fathom is Fathom's own recommender for one task. For each resource it
// keeps a set of candidate limits (base signal × margin); after every
// window each candidate is charged what it would have cost had it been the
// limit for that window — its size, and its overrun and severe-overrun
// costs — with costs decaying over days; the candidate with the least
// size + λ × overrun cost is the proposal, λ being the fleet's weight for
// its violation budget (BudgetPool). Proposals pass a deadband and a
// hold-down before they move the served limit, and an OOM raises the memory
// limit at once.
type Fathom struct {
	Params FathomParams `json:"params"`
	CPU    FathomTrack  `json:"cpu_track"`
	Mem    FathomTrack  `json:"mem_track"`
	Last   int64        `json:"last"`
	N      int          `json:"n"`
	// pool is the fleet's shared λ (nil: the open-loop prior for Budget).
	pool *BudgetPool
}

// FathomTrack is the per-resource state of the ensemble.
type FathomTrack struct {
	Hist  *DecayingHistogram `json:"hist"`
	Stats Moments            `json:"stats"`
	Jump  Moments            `json:"jump"` // decayed mean of squared upward steps
	Prev  float64            `json:"prev"`
	Max   [6]RollingMax      `json:"max"` // 1h, 6h, 24h, 72h, 7d, all (10 y)
	RingT []int64            `json:"ring_t"`
	RingV []float64          `json:"ring_v"`
	// ringBase counts the ring entries dropped so far (positions in win
	// are ringBase + index); win are the sliding maxima of the periodic
	// windows bases reads (derived from the ring, rebuilt after Restore).
	ringBase int64
	win      []slidingMax
	Arms     []float64 `json:"arms"`      // candidate limits for the next window
	Size     []float64 `json:"size_cost"` // decayed size cost per candidate
	Over     []float64 `json:"over_cost"` // decayed overrun cost per candidate, at λ = 1
	CostRef  int64     `json:"cost_ref"`
	// Served is the limit served for the next window before any OOM
	// raise: what the window is a miss against.
	Served float64 `json:"served"`
	// Scored and Misses count the windows after the warm-up and those over
	// the served limit.
	Scored int `json:"scored"`
	Misses int `json:"misses"`
	// LogLambda is the log λ of the last proposal.
	LogLambda float64    `json:"log_lambda"`
	Best      int        `json:"best"`
	Props     RollingMax `json:"props"` // proposals over the hold-down
	Cur       float64    `json:"cur"`   // served limit
	OOMAt     int64      `json:"oom_at"`
	OOMMin    float64    `json:"oom_min"`
	First     int64      `json:"first"` // time of the first window
}

// NewFathom returns an empty ensemble recommender. Invalid parameters are
// replaced by the defaults field by field only through Validate at the
// caller; New uses the defaults.
func NewFathom(p FathomParams) *Fathom {
	f := &Fathom{Params: p}
	f.CPU = newTrack(CPUHistogram, p, p.CPU)
	f.Mem = newTrack(MemoryHistogram, p, p.Memory)
	return f
}

func newTrack(o HistogramOptions, p FathomParams, rp FathomResourceParams) FathomTrack {
	windows := []int64{3600, 6 * 3600, 24 * 3600, 72 * 3600, 7 * 24 * 3600, 10 * 365 * 24 * 3600}
	var tr FathomTrack
	tr.Hist = NewDecayingHistogram(o, p.StatsHalfLife)
	tr.Stats = Moments{HalfLife: p.StatsHalfLife}
	tr.Jump = Moments{HalfLife: p.StatsHalfLife}
	for i, w := range windows {
		tr.Max[i] = RollingMax{Window: w}
	}
	n := len(fathomBases) * len(p.Margins)
	tr.Arms = make([]float64, n)
	tr.Size = make([]float64, n)
	tr.Over = make([]float64, n)
	hold := p.HoldDown
	if rp.HoldDown > 0 {
		hold = rp.HoldDown
	}
	tr.Props = RollingMax{Window: int64(hold)}
	return tr
}

// Kind implements Recommender.
func (f *Fathom) Kind() string { return "fathom" }

// Observe implements Recommender.
func (f *Fathom) Observe(w Window) {
	t := unix(w.Start)
	if f.N > 0 && t <= f.Last {
		return
	}
	f.Last = t
	f.N++
	ps := f.Params.priorityScale()
	f.CPU.observe(t, w.CPU, &f.Params, f.Params.CPU, 1, ps, f.steer(0))
	f.Mem.observe(t, w.Memory, &f.Params, f.Params.Memory, 1<<30, ps, f.steer(1))
}

// steering is how one resource's track meets the budget: it reports its
// windows to the fleet's pool and reads λ from it, or uses the prior.
type steering struct {
	pool   *BudgetPool
	res    int
	budget float64
}

func (f *Fathom) steer(res int) steering {
	return steering{pool: f.pool, res: res, budget: f.Params.Budget.OrDefault().of(res)}
}

// logLambda is the overrun weight for proposals made at t.
func (s steering) logLambda(t int64) float64 {
	if s.pool != nil {
		return s.pool.logLambda(s.res, t)
	}
	return priorLogLambda(s.res, s.budget)
}

// observe charges the candidates for the window (t, u), learns it, then
// proposes the limit for the next window.
func (tr *FathomTrack) observe(t int64, u float64, p *FathomParams, rp FathomResourceParams, unit, prio float64, st steering) {
	if len(tr.Size) != len(tr.Arms) || len(tr.Over) != len(tr.Arms) {
		// State from before the costs were split: start them afresh.
		tr.Size = make([]float64, len(tr.Arms))
		tr.Over = make([]float64, len(tr.Arms))
	}
	if tr.Stats.N > 0 && float64(t-tr.First) >= p.Steer.WarmUp {
		miss := u > tr.Served
		tr.Scored++
		if miss {
			tr.Misses++
		}
		if st.pool != nil {
			st.pool.record(st.res, t, miss)
		}
	}
	if tr.Stats.N > 0 {
		d := math.Exp2(-float64(t-tr.CostRef) / p.CostHalfLife)
		size := rp.SizeCost / unit
		nm := p.NearMiss
		if rp.NearMiss > 0 {
			nm = rp.NearMiss
		}
		for i, l := range tr.Arms {
			tr.Size[i] = tr.Size[i]*d + size*l
			c := 0.0
			// Near misses cost part of an overrun: rare events alone
			// give too little signal to rank candidates per task.
			if r := u - nm*l; r > 0 {
				c += rp.OverrunCost * prio * min(r/((1-nm)*l+1e-12), 1)
				switch {
				case rp.SevereRamp && u > l:
					c += rp.SevereCost * prio * min((u-l)/(0.2*l+1e-12), 1)
				case u > 1.2*l:
					c += rp.SevereCost * prio
				}
			}
			tr.Over[i] = tr.Over[i]*d + c
		}
	}
	tr.CostRef = t
	if rp.OOMUsage && tr.OOMMin > 0 && tr.OOMAt >= t && tr.OOMAt < t+WindowSeconds {
		// The window the task was killed in: what it used (when the
		// history shows more than the limit) is what it needs.
		tr.OOMMin = max(tr.OOMMin, u*p.OOMBumpRatio)
	}
	if tr.Stats.N == 0 {
		tr.First = t
	}
	// Learn the window.
	tr.Hist.Add(u, 1, t)
	if tr.Stats.N > 0 {
		d := max(u-tr.Prev, 0)
		tr.Jump.Add(d*d, t)
	}
	tr.Prev = u
	tr.Stats.Add(u, t)
	for i := range tr.Max {
		tr.Max[i].Push(t, u)
	}
	tr.ringPush(t, u)
	// Candidates for the next window.
	next := t + WindowSeconds
	bases := tr.bases(next)
	cap := math.Inf(1)
	if rp.Cap > 0 {
		cap = rp.Cap * bases[4] // max over 7 days
	}
	k := 0
	for _, b := range bases {
		for _, m := range p.Margins {
			tr.Arms[k] = max(min(b*m, cap), rp.Floor)
			k++
		}
	}
	tr.LogLambda = st.logLambda(t)
	lam := math.Exp(tr.LogLambda)
	best, bc := 0, math.Inf(1)
	for i := range tr.Arms {
		if c := tr.Size[i] + lam*tr.Over[i]; c < bc {
			best, bc = i, c
		}
	}
	tr.Best = best
	prop := tr.Arms[best]
	if tr.OOMMin > 0 && float64(next-tr.OOMAt) < p.OOMHold {
		prop = max(prop, tr.OOMMin)
		if rp.OOMRecall {
			prop = max(prop, bases[10])
		}
	}
	if float64(next-tr.First) < rp.Young {
		prop = max(prop, rp.YoungMargin*bases[10])
	}
	tr.Props.Push(t, prop)
	hold := tr.Props.Max(t)
	band := p.Deadband
	if rp.Deadband > 0 {
		band = rp.Deadband
	}
	switch {
	case tr.Cur == 0 || prop > tr.Cur:
		tr.Cur = prop
	case hold < tr.Cur*(1-band):
		tr.Cur = hold
	}
	tr.Served = tr.Cur
}

// bases computes the base signals at time now, in fathomBases order.
func (tr *FathomTrack) bases(now int64) [14]float64 {
	var b [14]float64
	for i := range 5 {
		b[i] = tr.Max[i].Max(now)
	}
	b[10] = tr.Max[5].Max(now)
	b[5] = tr.Hist.Percentile(0.95)
	b[6] = tr.Hist.Percentile(0.99)
	// Periodic: the last hour, plus the same time of day yesterday and of
	// week a week ago, from an hour before to two hours after.
	if len(tr.win) != len(periodicWindows) {
		tr.win = make([]slidingMax, len(periodicWindows))
	}
	per, day := b[0], b[1]
	for k, w := range periodicWindows {
		m := tr.win[k].max(tr, now-w.lag-w.before, now-w.lag+w.after)
		if k < 2 {
			per = max(per, m)
		} else {
			day = max(day, m)
		}
	}
	b[7] = per
	b[11] = day
	// Volatility: the typical size of an upward jump between windows.
	j := math.Sqrt(max(tr.Jump.Mean, 0))
	b[12] = b[1] + 2*j
	b[13] = b[2] + 3*j
	sd := tr.Stats.StdDev()
	b[8] = tr.Stats.Mean + 3*sd
	b[9] = tr.Stats.Mean + 5*sd
	return b
}

// ringPush keeps u at t in the ring of the last 7 days and 3 hours
// (dropping older values in bulk).
func (tr *FathomTrack) ringPush(t int64, u float64) {
	tr.RingT = append(tr.RingT, t)
	tr.RingV = append(tr.RingV, u)
	if cut := t - 7*24*3600 - 3*3600; len(tr.RingT) > 0 && tr.RingT[0] <= cut {
		i := sort.Search(len(tr.RingT), func(i int) bool { return tr.RingT[i] > cut })
		if i > len(tr.RingT)/2 { // compact in bulk
			tr.RingT = append(tr.RingT[:0:0], tr.RingT[i:]...)
			tr.RingV = append(tr.RingV[:0:0], tr.RingV[i:]...)
			tr.ringBase += int64(i)
		}
	}
}

// periodicWindows are the ring's windows bases reads, relative to now:
// [now−lag−before, now−lag+after]. The first two are the periodic signal
// (the same time of day yesterday and of week a week ago, from an hour
// before to two hours after); the other seven the daily one (the same time
// of day on each of the last 7 days, ± an hour).
var periodicWindows = func() []struct{ lag, before, after int64 } {
	w := []struct{ lag, before, after int64 }{{24 * 3600, 3600, 2 * 3600}, {7 * 24 * 3600, 3600, 2 * 3600}}
	for d := int64(1); d <= 7; d++ {
		w = append(w, struct{ lag, before, after int64 }{d * 86400, 3600, 3600})
	}
	return w
}()

// slidingMax is the largest ring value in a window that only moves
// forward: a monotonic deque of ring positions (values decreasing), so
// each value enters and leaves once (amortised O(1) per window where
// rangeMax scans the window). A window that moves back starts over.
type slidingMax struct {
	next     int64   // ring position of the next value to enter
	from, to int64   // the last window read
	dq       []int64 // ring positions, values decreasing
	used     bool
}

// max is rangeMax(from, to) for windows that only move forward.
func (s *slidingMax) max(tr *FathomTrack, from, to int64) float64 {
	base, n := tr.ringBase, tr.ringBase+int64(len(tr.RingT))
	if !s.used || from < s.from || to < s.to {
		i := sort.Search(len(tr.RingT), func(i int) bool { return tr.RingT[i] >= from })
		*s = slidingMax{next: base + int64(i), dq: s.dq[:0], used: true}
	}
	s.from, s.to = from, to
	if s.next < base {
		s.next = base // dropped values are older than any window
	}
	k := 0
	for k < len(s.dq) && s.dq[k] < base {
		k++
	}
	if k > 0 {
		s.dq = append(s.dq[:0], s.dq[k:]...)
	}
	for ; s.next < n && tr.RingT[s.next-base] <= to; s.next++ {
		v := tr.RingV[s.next-base]
		for len(s.dq) > 0 && tr.RingV[s.dq[len(s.dq)-1]-base] <= v {
			s.dq = s.dq[:len(s.dq)-1]
		}
		s.dq = append(s.dq, s.next)
	}
	k = 0
	for k < len(s.dq) && tr.RingT[s.dq[k]-base] < from {
		k++
	}
	if k > 0 {
		s.dq = append(s.dq[:0], s.dq[k:]...)
	}
	if len(s.dq) == 0 {
		return 0
	}
	return max(tr.RingV[s.dq[0]-base], 0)
}

// rangeMax is the largest value kept with time in [from, to] (0 when none):
// what slidingMax computes, kept as its dumb twin for tests.
func (tr *FathomTrack) rangeMax(from, to int64) float64 {
	i := sort.Search(len(tr.RingT), func(i int) bool { return tr.RingT[i] >= from })
	m := 0.0
	for ; i < len(tr.RingT) && tr.RingT[i] <= to; i++ {
		m = max(m, tr.RingV[i])
	}
	return m
}

// ObserveOOM implements Recommender: the memory limit rises at once to
// max(usage+OOMMinBump, OOMBumpRatio×usage) — with Memory.OOMRecall, to at
// least the largest usage ever seen — and stays at least there for
// OOMHold.
func (f *Fathom) ObserveOOM(at time.Time, memory float64) {
	need := max(memory+f.Params.OOMMinBump, memory*f.Params.OOMBumpRatio)
	t := unix(at)
	if f.Params.Memory.OOMRecall {
		if float64(t-f.Mem.OOMAt) >= f.Params.OOMHold {
			f.Mem.OOMMin = 0 // an earlier OOM's floor has expired
		}
		need = max(need, f.Mem.Max[5].Max(max(t, f.Mem.Max[5].LastT())))
	}
	f.Mem.OOMAt = t
	f.Mem.OOMMin = max(need, f.Mem.OOMMin)
	f.Mem.Cur = max(f.Mem.Cur, need)
}

// Limit implements Recommender.
func (f *Fathom) Limit(time.Time) Size { return Size{CPU: f.CPU.Cur, Memory: f.Mem.Cur} }

// Recommend implements Recommender. The request is the decayed mean of
// usage (what the task needs on average: packing on it and bounding the
// overload risk with StdDev is the scheduler's job).
func (f *Fathom) Recommend(now time.Time) Recommendation {
	est := func(tr *FathomTrack) Estimate {
		return Estimate{
			Request:   min(tr.Stats.Mean, tr.Cur),
			Limit:     tr.Cur,
			Mean:      tr.Stats.Mean,
			StdDev:    tr.Stats.StdDev(),
			Quantiles: quantiles(tr.Hist),
		}
	}
	return Recommendation{
		CPU:     est(&f.CPU),
		Memory:  est(&f.Mem),
		Samples: f.N,
		Why:     fmt.Sprintf("fathom: cpu %s, memory %s (cheapest of %d candidates each)", f.CPU.armName(f.Params, unix(now)), f.Mem.armName(f.Params, unix(now)), len(f.CPU.Arms)),
	}
}

func (tr *FathomTrack) armName(p FathomParams, now int64) string {
	if len(p.Margins) == 0 || len(tr.Arms) == 0 {
		return "none"
	}
	b, m := tr.Best/len(p.Margins), tr.Best%len(p.Margins)
	s := fmt.Sprintf("%s×%.2f", fathomBases[b], p.Margins[m])
	if tr.OOMMin > 0 && tr.Cur <= tr.OOMMin && float64(now-tr.OOMAt) < p.OOMHold {
		s += " (raised after OOM)"
	}
	return s
}
