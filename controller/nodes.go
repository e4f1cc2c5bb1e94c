package controller

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Register records a node (idempotent): called on every agent start and
// reconnect. A node that was down is up again; its capacity, labels and
// address are updated. It reports whether the node's record changed.
func (c *Controller) Register(info NodeInfo, now time.Time) (bool, error) {
	now = c.advance(now)
	if info.Name == "" || !(info.CPU > 0) || info.Memory <= 0 {
		return false, fmt.Errorf("%w: node %q needs a name and positive cpu and memory", ErrInvalid, info.Name)
	}
	ne := c.nodes[info.Name]
	if ne == nil {
		ne = &nodeEntry{node: Node{Name: info.Name, Schedulable: true}, tasks: map[ref]struct{}{}}
		c.nodes[info.Name] = ne
	}
	old := ne.node.clone()
	n := &ne.node
	c.big.ok = false
	n.CPU, n.Memory, n.Labels = info.CPU, info.Memory, maps.Clone(info.Labels)
	n.Enforcement, n.AgentAddress, n.Version, n.PortRange = info.Enforcement, info.AgentAddress, info.Version, info.PortRange
	ne.lastSeen, ne.restored = now, false
	if !old.Up || old.RegisteredAt.IsZero() {
		n.RegisteredAt = now
	}
	n.Up = true
	changed := !sameNode(&old, n)
	if changed {
		c.markNode(n.Name)
		if !old.Up && !old.RegisteredAt.IsZero() {
			c.out.stats.NodesUp++
			c.out.logf("node %s is up again (registered)", n.Name)
		}
	}
	if _, err := c.sched.AddNode(c.schedNode(n)); err != nil {
		return false, err
	}
	return changed, nil
}

func sameNode(a, b *Node) bool {
	return a.Name == b.Name && a.CPU == b.CPU && a.Memory == b.Memory && maps.Equal(a.Labels, b.Labels) &&
		a.Enforcement == b.Enforcement && a.AgentAddress == b.AgentAddress && a.Version == b.Version && a.Up == b.Up &&
		a.PortRange == b.PortRange && a.Schedulable == b.Schedulable && a.Draining == b.Draining && a.RemovalRequestedAt.Equal(b.RemovalRequestedAt) &&
		a.RegisteredAt.Equal(b.RegisteredAt)
}

// Heartbeat records that a node is alive, with its usage. It reports false
// when the node is unknown (the agent should register again). A node that
// was down is up again at once.
func (c *Controller) Heartbeat(name string, u Usage, now time.Time) bool {
	now = c.advance(now)
	ne := c.nodes[name]
	if ne == nil {
		return false
	}
	ne.lastSeen, ne.restored = now, false
	ne.usage = u
	if !ne.node.Up {
		c.nodeUp(ne)
	}
	return true
}

func (c *Controller) nodeUp(ne *nodeEntry) {
	ne.node.Up = true
	c.markNode(ne.node.Name)
	c.out.stats.NodesUp++
	c.out.logf("node %s is up again", ne.node.Name)
	_, _ = c.sched.AddNode(c.schedNode(&ne.node)) // the node validated at Register
	// Its copies of lost tasks are ghosts now: its set holds them as KEEP.
	for id, m := range c.ghosts {
		if _, ok := m[ne.node.Name]; ok {
			if r, ok := c.lookup(id); ok {
				c.markAssign(ne.node.Name, r)
			}
		}
	}
}

// Cordon makes a node unschedulable (or schedulable again with uncordon,
// which also cancels a removal by the node provider). Running tasks stay.
func (c *Controller) Cordon(name string, uncordon bool, now time.Time) (Node, error) {
	c.advance(now)
	ne := c.nodes[name]
	if ne == nil {
		return Node{}, fmt.Errorf("%w: node %q; list nodes with 'fathom node list'", ErrNodeNotFound, name)
	}
	n := &ne.node
	n.Schedulable = uncordon
	if uncordon {
		n.Draining, n.RemovalRequestedAt = false, time.Time{}
	}
	c.markNode(name)
	_, _ = c.sched.AddNode(c.schedNode(n))
	return n.clone(), nil
}

// Drain cordons a node and moves its tasks elsewhere: each is placed on
// another node by the next Tick and its copy here keeps running until the
// new one runs (no downtime where there is room).
func (c *Controller) Drain(name string, now time.Time) (Node, error) {
	c.advance(now)
	ne := c.nodes[name]
	if ne == nil {
		return Node{}, fmt.Errorf("%w: node %q; list nodes with 'fathom node list'", ErrNodeNotFound, name)
	}
	ne.node.Schedulable, ne.node.Draining = false, true
	c.markNode(name)
	_, _ = c.sched.AddNode(c.schedNode(&ne.node))
	return ne.node.clone(), nil
}

// RemoveNode forgets a node that is down or empty (a machine given back to
// the node provider). Its tasks, if any, are lost and placed again.
func (c *Controller) RemoveNode(name string, now time.Time) error {
	now = c.advance(now)
	ne := c.nodes[name]
	if ne == nil {
		return fmt.Errorf("%w: node %q", ErrNodeNotFound, name)
	}
	for _, r := range sortedRefs(ne.tasks) {
		c.lose(r, "node "+name+" was removed", now, false)
	}
	for id, m := range c.ghosts {
		if _, ok := m[name]; ok {
			if r, ok := c.lookup(id); ok {
				c.dropGhost(r, name)
			}
		}
	}
	_ = c.sched.RemoveNode(name)
	delete(c.nodes, name)
	c.big.ok = false
	c.out.nodes[name] = struct{}{} // Ready omits it: the caller deletes the record
	c.out.removedNodes = append(c.out.removedNodes, name)
	return nil
}

// sortedRefs returns the refs of a set in task id order (determinism).
func sortedRefs(m map[ref]struct{}) []ref {
	out := make([]ref, 0, len(m))
	for r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b ref) int {
		if a.job != b.job {
			if x := a.job.job.CreatedAt.Compare(b.job.job.CreatedAt); x != 0 {
				return x
			}
			if a.job.job.ID < b.job.job.ID {
				return -1
			}
			return 1
		}
		return int(a.idx - b.idx)
	})
	return out
}

// liveness declares down every node whose last heartbeat is older than the
// heartbeat timeout (a node loaded by Restore and not heard from since, not
// before the failover grace): its tasks are lost and placed again; the
// copies there become ghosts that keep serving if the node was only cut off.
func (c *Controller) liveness(now time.Time) {
	for _, name := range slices.Sorted(maps.Keys(c.nodes)) {
		ne := c.nodes[name]
		age := now.Sub(ne.lastSeen)
		if !ne.node.Up || age <= c.cfg.HeartbeatTimeout || (ne.restored && now.Before(c.graceUntil)) {
			continue
		}
		ne.node.Up = false
		c.markNode(name)
		_, _ = c.sched.AddNode(c.schedNode(&ne.node))
		c.out.stats.NodesDown++
		c.out.logf("node %s down: no heartbeat for %s (timeout %s)", name, age.Round(time.Second), c.cfg.HeartbeatTimeout)
		why := fmt.Sprintf("node %s stopped heartbeating (last at %s, timeout %s)", name, ne.lastSeen.UTC().Format(time.RFC3339), c.cfg.HeartbeatTimeout)
		for _, r := range sortedRefs(ne.tasks) {
			c.lose(r, why, now, true)
		}
	}
}

// lose makes a task placed on a node that is gone lost: it waits to be
// placed again. With keep, the copy there becomes a ghost (the node may
// only be cut off and keep serving it until the replacement runs). A task
// that was being stopped is stopped.
func (c *Controller) lose(r ref, why string, now time.Time, keep bool) {
	t := r.task()
	node := t.Node
	c.unplace(r)
	if t.Desired == DesiredStop || r.job.job.StopRequested {
		t.State = Stopped
		t.FinishedAt = now
		withHistory(t, now, why+" while the task was stopping")
		c.markTask(r)
		c.maybeFinished(r.job)
		return
	}
	if keep && (t.State == Running || t.State == Placed) {
		c.addGhost(r, node)
	}
	t.State = Lost
	t.Node = ""
	withHistory(t, now, why+"; placing the task again")
	c.markTask(r)
	c.out.stats.Rescheduled++
	c.enqueue(r)
}
