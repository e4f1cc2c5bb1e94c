package controller

import (
	"errors"
	"fmt"
	"time"

	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// ErrInvalid marks a configuration or input the controller refuses (check
// with errors.Is). Expected outcomes (a task that fits nowhere, a name in
// use) are not errors of this kind; see the typed errors in errors.go.
var ErrInvalid = errors.New("invalid controller input")

// Config tunes a Controller. Zero fields take the defaults in parentheses.
type Config struct {
	// HeartbeatTimeout: a node without a heartbeat for this long is down and
	// its tasks are lost (10 s).
	HeartbeatTimeout time.Duration
	// FailoverGrace is how long, after Restore (a restarted control plane
	// or a new leader), every node has to heartbeat before any is declared
	// down, as Nomad gives heartbeats a grace after a leader election. Agents
	// reconnect within a second or two of the server's return; the grace
	// covers the rest (30 s; never less than HeartbeatTimeout).
	FailoverGrace time.Duration
	// Placement configures the scheduler: ε, the risk model, candidates,
	// the seed. Its Correlation is used as given unless OnlineCorrelation.
	Placement scheduler.Options
	// OnlineCorrelation takes ρ, the correlation of co-located tasks' usage
	// the risk bound assumes, from the predictor's running estimate
	// (predictor.Predictor.Correlation) instead of Placement.Correlation.
	OnlineCorrelation bool
	// MassFailureFraction: when at least this share of nodes is down at once
	// a partition is more likely than failures (0.3), and re-placement of
	// lost tasks is limited to MassFailureRate per round (50).
	MassFailureFraction float64
	MassFailureRate     int
	// MaxPlacePerRound bounds how many waiting tasks one Tick considers
	// (10,000); the rest wait for the next round.
	MaxPlacePerRound int
	// RetryWaiting is how often a task that found no room is offered to the
	// scheduler again when nothing freed or added capacity since (30 s):
	// its sizes, the risk estimate and node pressure change without that.
	// Otherwise a round offers only new tasks and, after capacity changed,
	// all of them, so a queue of tasks that cannot fit costs nothing per
	// round (Nomad's blocked evaluations, Kubernetes' unschedulable queue).
	RetryWaiting time.Duration
	// Sizing is the one policy for sizes: starting sizes, resizes of
	// requests and limits, moves.
	Sizing SizingPolicy
	// Consolidate turns on draining of under-used nodes whose tasks fit
	// on other nodes in use; ConsolidateBelow (0.3) and DrainBudget (10
	// tasks per round) bound it.
	Consolidate      bool
	ConsolidateBelow float64
	DrainBudget      int
	// ConsolidateInterval is the least time between two consolidation
	// passes (0: every round).
	ConsolidateInterval time.Duration
	// JobRetention is how long a finished job (every task ended, its name
	// released; a cron job once stopped) is kept, with its tasks, before it
	// is deleted (4 h, Nomad's job_gc_threshold). MaxFinishedJobs (10,000)
	// bounds how many finished jobs are kept whatever their age: beyond it
	// the longest finished go first, so a client submitting many short
	// jobs cannot grow the control plane's memory and etcd without bound.
	// A job is kept at least a minute after it finished, so its last
	// changes reach agents and watchers first. A negative JobRetention
	// keeps finished jobs until MaxFinishedJobs.
	JobRetention    time.Duration
	MaxFinishedJobs int
	// SpareNodes is how many empty nodes the autoscaling report keeps (1).
	SpareNodes int
	// Provider is the node provider's policy (off unless Enabled).
	Provider ProviderPolicy
	// Predictor learns usage and recommends sizes; nil sizes every task
	// from its hints (or the cold-start defaults) and never resizes.
	Predictor *predictor.Predictor
}

// SizingPolicy is how the controller sizes tasks: the starting size of a
// new task and when a running task's request and limit change. It is the
// only rule for sizes; the scheduler checks every change against its
// filters (requests, Σ prod limits ≤ capacity, overload risk).
type SizingPolicy struct {
	// Deadband: a recommendation within this relative distance of the
	// sizes in effect changes nothing (0.1). Growth beyond half of it is
	// applied at once: a task that needs more must get it.
	Deadband float64
	// ShrinkDelay holds back a shrink until this long after the task was
	// placed or last resized (15 min), as the HPA's scale-down
	// stabilization, so a recommendation that swings does not resize it
	// every round.
	ShrinkDelay time.Duration
	// MoveCost is the disruption of moving a task, against which the unmet
	// share of a grown size is weighed (0.25: move when more than a
	// quarter of the new request has no room on the current node).
	MoveCost float64
	// MinTaskAge: tasks placed more recently are not moved by resize or
	// consolidation, so the controller does not undo its own decisions (5 min).
	MinTaskAge time.Duration
	// MinCPULimit (0.05 cores) and MinMemoryLimit (32 MiB) are the lowest
	// limits ever set.
	MinCPULimit    float64
	MinMemoryLimit int64
	// PackOnLimit packs tasks on their limits (request = limit) and without
	// predicted usage distributions, so machines are never oversubscribed:
	// how VPA and Autopilot are measured against Fathom in the simulator.
	PackOnLimit bool
	// EvictionBackoff is how long an evicted task stays off the node that
	// evicted it, doubled for every further eviction (30 s, at most 16×).
	EvictionBackoff time.Duration
}

// ProviderPolicy is when the controller asks the node provider for
// machines and gives machines back (autoscaling).
type ProviderPolicy struct {
	// Enabled: the server has a node provider hook (--node-provider-cmd);
	// otherwise the autoscaling report is advice only.
	Enabled bool
	// Cooldown is the least time between two add calls, and before a failed
	// removal is asked again (5 min): new machines take time to register.
	Cooldown time.Duration
	// RemovalDelay is how long a node must stay removable, report after
	// report, before it is cordoned for removal (10 min).
	RemovalDelay time.Duration
}

// Cold-start sizes for tasks without hints or history (no limits).
const (
	DefaultCPURequest    = 0.1
	DefaultMemoryRequest = 64 << 20
)

func (c *Config) normalize() error {
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 10 * time.Second
	}
	if c.FailoverGrace == 0 {
		c.FailoverGrace = 30 * time.Second
	}
	c.FailoverGrace = max(c.FailoverGrace, c.HeartbeatTimeout)
	if c.MassFailureFraction == 0 {
		c.MassFailureFraction = 0.3
	}
	if c.MassFailureRate == 0 {
		c.MassFailureRate = 50
	}
	if c.MaxPlacePerRound == 0 {
		c.MaxPlacePerRound = 10000
	}
	if c.RetryWaiting == 0 {
		c.RetryWaiting = 30 * time.Second
	}
	if c.ConsolidateBelow == 0 {
		c.ConsolidateBelow = 0.3
	}
	if c.DrainBudget == 0 {
		c.DrainBudget = 10
	}
	if c.JobRetention == 0 {
		c.JobRetention = 4 * time.Hour
	}
	if c.MaxFinishedJobs == 0 {
		c.MaxFinishedJobs = 10000
	}
	if c.SpareNodes == 0 {
		c.SpareNodes = 1
	}
	s := &c.Sizing
	if s.Deadband == 0 {
		s.Deadband = 0.1
	}
	if s.ShrinkDelay == 0 {
		s.ShrinkDelay = 15 * time.Minute
	}
	if s.MoveCost == 0 {
		s.MoveCost = 0.25
	}
	if s.MinTaskAge == 0 {
		s.MinTaskAge = 5 * time.Minute
	}
	if s.MinCPULimit == 0 {
		s.MinCPULimit = 0.05
	}
	if s.MinMemoryLimit == 0 {
		s.MinMemoryLimit = 32 << 20
	}
	if s.EvictionBackoff == 0 {
		s.EvictionBackoff = 30 * time.Second
	}
	p := &c.Provider
	if p.Cooldown == 0 {
		p.Cooldown = 5 * time.Minute
	}
	if p.RemovalDelay == 0 {
		p.RemovalDelay = 10 * time.Minute
	}
	switch {
	case c.HeartbeatTimeout < 0 || c.FailoverGrace < 0:
		return fmt.Errorf("%w: heartbeat timeout and failover grace must be positive", ErrInvalid)
	case !(c.MassFailureFraction > 0 && c.MassFailureFraction <= 1) || c.MassFailureRate < 0:
		return fmt.Errorf("%w: mass failure fraction %v must be in (0, 1] and the rate ≥ 0", ErrInvalid, c.MassFailureFraction)
	case c.RetryWaiting < 0:
		return fmt.Errorf("%w: retry-waiting %v must not be negative", ErrInvalid, c.RetryWaiting)
	case c.MaxPlacePerRound < 1:
		return fmt.Errorf("%w: max placements per round %d must be ≥ 1", ErrInvalid, c.MaxPlacePerRound)
	case !(c.ConsolidateBelow > 0 && c.ConsolidateBelow <= 1) || c.DrainBudget < 1 || c.SpareNodes < 0 || c.ConsolidateInterval < 0:
		return fmt.Errorf("%w: consolidate-below must be in (0, 1], the drain budget ≥ 1, spare nodes ≥ 0", ErrInvalid)
	case s.Deadband < 0 || s.Deadband >= 1:
		return fmt.Errorf("%w: sizing deadband %v must be in [0, 1)", ErrInvalid, s.Deadband)
	case s.ShrinkDelay < 0 || s.MinTaskAge < 0 || s.EvictionBackoff < 0:
		return fmt.Errorf("%w: sizing delays must not be negative", ErrInvalid)
	case !(s.MoveCost > 0):
		return fmt.Errorf("%w: move cost %v must be > 0", ErrInvalid, s.MoveCost)
	case !(s.MinCPULimit > 0) || s.MinMemoryLimit <= 0:
		return fmt.Errorf("%w: minimum limits must be positive", ErrInvalid)
	case p.Cooldown < 0 || p.RemovalDelay < 0:
		return fmt.Errorf("%w: node provider delays must not be negative", ErrInvalid)
	}
	// The scheduler checks its own options (ε, risk model, correlation).
	probe, _ := scheduler.NewState(scheduler.ClusterView{})
	if _, err := probe.Place(nil, c.Placement); err != nil {
		return fmt.Errorf("%w: placement options: %v", ErrInvalid, err)
	}
	return nil
}
