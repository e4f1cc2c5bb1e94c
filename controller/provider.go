package controller

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/fathom-scheduler/fathom/scheduler"
)

// Autoscale is the latest autoscaling report and what the node provider
// decisions stand at.
type Autoscale struct {
	Report scheduler.AutoscaleReport
	At     time.Time
	Valid  bool // false until a round has run
	// Provider state: nodes cordoned for removal and not yet handed over,
	// nodes handed to the provider, when the next add may be asked, whether
	// a call is under way.
	Removing  []string
	Handed    []string
	NextAddAt time.Time
	Calling   bool
	// Notes per node for `fathom node list`: how long it has been removable,
	// or where its removal stands.
	Notes map[string]string
}

// ProviderCall is a call of the node provider hook the controller asks for.
type ProviderCall struct {
	Action string   // "add" or "remove"
	Args   []string // the count for add, the node names for remove
	Count  int      // add
	Nodes  []string // remove
	Report scheduler.AutoscaleReport
}

// providerMemory is the provider decisions' state between rounds.
type providerMemory struct {
	removableSince map[string]time.Time // first report in an unbroken run that listed the node
	handed         map[string]time.Time // nodes the hook was asked to remove, and when
	retryAt        map[string]time.Time // failed removals: not before
	markedAt       map[string]time.Time // nodes cordoned for removal, and when
	nextAddAt      time.Time
	calling        bool
}

func newProviderMemory() providerMemory {
	return providerMemory{removableSince: map[string]time.Time{}, handed: map[string]time.Time{},
		retryAt: map[string]time.Time{}, markedAt: map[string]time.Time{}}
}

// autoscale computes the round's report and, with a node provider, acts on
// it with hysteresis:
//   - Work waits for room (Add > 0): nodes cordoned for removal and not yet
//     handed over are uncordoned first (they are cheaper than new machines);
//     otherwise `add N` is asked, at most once per Cooldown.
//   - A node listed as removable in every report for RemovalDelay is
//     cordoned for removal (its tasks, should one have landed, move).
//   - A cordoned node is handed to `remove` once empty, at least one round
//     after it was cordoned (so no placement decided before can still land
//     on it); a failed removal is asked again after Cooldown.
//   - A handed node that went down is forgotten and its record uncordoned,
//     so that a new machine registering under its name is schedulable.
func (c *Controller) autoscale(now time.Time, room []scheduler.Task) {
	rep := c.sched.Autoscale(room, c.cfg.SpareNodes, c.placeOpts())
	c.report = Autoscale{Report: rep, At: now, Valid: true}
	if !c.cfg.Provider.Enabled {
		return
	}
	m := &c.provider
	o := c.cfg.Provider
	listed := map[string]bool{}
	for _, n := range rep.CouldRemove {
		listed[n] = true
		if _, ok := m.removableSince[n]; !ok {
			m.removableSince[n] = now
		}
	}
	for n := range m.removableSince {
		if !listed[n] {
			delete(m.removableSince, n)
		}
	}
	for _, mm := range []map[string]time.Time{m.handed, m.markedAt, m.retryAt} {
		for n := range mm {
			if ne := c.nodes[n]; ne == nil || ne.node.RemovalRequestedAt.IsZero() {
				delete(mm, n)
			}
		}
	}
	names := slices.Sorted(maps.Keys(c.nodes))
	var marked []*nodeEntry
	for _, name := range names {
		ne := c.nodes[name]
		if ne.node.RemovalRequestedAt.IsZero() {
			continue
		}
		if _, ok := m.handed[name]; ok {
			if !ne.node.Up {
				c.cancelRemoval(ne, "removed by the node provider")
				delete(m.handed, name)
				delete(m.markedAt, name)
			}
			continue
		}
		marked = append(marked, ne)
	}
	if rep.Add > 0 {
		cancelled := false
		for _, ne := range marked {
			if ne.node.Up {
				c.cancelRemoval(ne, "work waits for room")
				cancelled = true
			}
		}
		if !cancelled && !now.Before(m.nextAddAt) && !m.calling {
			c.call(&ProviderCall{Action: "add", Args: []string{strconv.Itoa(rep.Add)}, Count: rep.Add, Report: rep})
		}
		return
	}
	var hand []string
	for _, ne := range marked {
		name := ne.node.Name
		if _, ok := m.markedAt[name]; !ok {
			// Marked before this controller started: it has been cordoned
			// for at least one round already.
			m.markedAt[name] = time.Time{}
		}
		switch {
		case ne.node.Up && len(ne.tasks) > 0:
			if !ne.node.Draining {
				ne.node.Draining = true
				c.markNode(name)
				_, _ = c.sched.AddNode(c.schedNode(&ne.node))
			}
		case ne.node.Up && m.markedAt[name].Before(now) && !now.Before(m.retryAt[name]):
			hand = append(hand, name)
		}
	}
	for _, name := range names {
		ne := c.nodes[name]
		since, ok := m.removableSince[name]
		if ok && ne.node.RemovalRequestedAt.IsZero() && ne.node.Up && ne.node.Schedulable && now.Sub(since) >= o.RemovalDelay {
			ne.node.RemovalRequestedAt = now
			ne.node.Schedulable = false
			ne.node.Draining = len(ne.tasks) > 0
			c.markNode(name)
			_, _ = c.sched.AddNode(c.schedNode(&ne.node))
			m.markedAt[name] = now
			delete(m.removableSince, name)
			c.out.logf("autoscaling: node %s cordoned for removal (removable for %s)", name, now.Sub(since).Round(time.Second))
		}
	}
	if len(hand) > 0 && !m.calling {
		c.call(&ProviderCall{Action: "remove", Args: hand, Nodes: hand, Report: rep})
	}
}

func (c *Controller) call(pc *ProviderCall) {
	c.provider.calling = true
	c.out.provider = pc
}

// cancelRemoval makes a node cordoned for removal schedulable again.
func (c *Controller) cancelRemoval(ne *nodeEntry, why string) {
	ne.node.Schedulable, ne.node.Draining, ne.node.RemovalRequestedAt = true, false, time.Time{}
	c.markNode(ne.node.Name)
	_, _ = c.sched.AddNode(c.schedNode(&ne.node))
	c.out.logf("autoscaling: node %s kept and uncordoned: %s", ne.node.Name, why)
}

// ProviderDone records the outcome of a node provider call asked for in a
// Ready: the next add waits a Cooldown; nodes handed over successfully are
// waited for to go down, failed removals are asked again after Cooldown.
func (c *Controller) ProviderDone(pc *ProviderCall, ok bool, now time.Time) {
	now = c.advance(now)
	m := &c.provider
	m.calling = false
	o := c.cfg.Provider
	switch pc.Action {
	case "add":
		m.nextAddAt = now.Add(o.Cooldown)
	case "remove":
		for _, n := range pc.Nodes {
			if ok {
				m.handed[n] = now
				delete(m.retryAt, n)
			} else {
				m.retryAt[n] = now.Add(o.Cooldown)
			}
		}
	}
}

// AutoscaleView is the latest report with the provider's state and per-node
// notes, as `fathom node list` shows them.
func (c *Controller) AutoscaleView(now time.Time) Autoscale {
	a := c.report
	if !a.Valid {
		return a
	}
	a.Report.CouldRemove = slices.Clone(a.Report.CouldRemove)
	m := &c.provider
	a.Calling = m.calling
	if now.Before(m.nextAddAt) {
		a.NextAddAt = m.nextAddAt
	}
	a.Notes = map[string]string{}
	if c.cfg.Provider.Enabled {
		for _, n := range a.Report.CouldRemove {
			if since, ok := m.removableSince[n]; ok {
				a.Notes[n] = fmt.Sprintf("removable for %s; cordoned for removal after %s", shortDur(now.Sub(since)), shortDur(c.cfg.Provider.RemovalDelay))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.nodes)) {
		ne := c.nodes[name]
		if ne.node.RemovalRequestedAt.IsZero() {
			continue
		}
		if at, ok := m.handed[name]; ok {
			a.Handed = append(a.Handed, name)
			a.Notes[name] = "handed to the node provider " + shortDur(now.Sub(at)) + " ago"
			continue
		}
		a.Removing = append(a.Removing, name)
		since := "cordoned for removal " + shortDur(now.Sub(ne.node.RemovalRequestedAt)) + " ago"
		switch at, failed := m.retryAt[name]; {
		case failed && now.Before(at):
			a.Notes[name] = "node provider failed to remove it; asked again in " + shortDur(at.Sub(now))
		case !c.cfg.Provider.Enabled:
			a.Notes[name] = since + ", but this server has no --node-provider-cmd; make it schedulable again with: fathom node cordon --undo " + name
		case !ne.node.Up:
			a.Notes[name] = since + "; the node is down"
		case len(ne.tasks) > 0:
			a.Notes[name] = fmt.Sprintf("%s; waiting for %d task(s) to move", since, len(ne.tasks))
		default:
			a.Notes[name] = since + "; empty, handed to the node provider at the next report"
		}
	}
	return a
}

// shortDur formats a duration as 45s, 3m, 2h10m.
func shortDur(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	h := int(d.Hours())
	if m := int(d.Minutes()) - 60*h; m > 0 {
		return fmt.Sprintf("%dh%dm", h, m)
	}
	return fmt.Sprintf("%dh", h)
}
