package controller

import (
	"maps"
	"slices"
	"strings"
)

// Endpoint is one task of a service that serves: where it runs and on
// which ports.
type Endpoint struct {
	TaskID string
	Node   string
	// AgentAddress is the node's agent address (host:port); the task's
	// ports listen on its host.
	AgentAddress string
	Ports        map[string]int
	// Healthy: running and, when the job has a health check, passing it.
	Healthy bool
}

// Service is a service job's endpoints.
type Service struct {
	Namespace, Name, JobID string
	PortNames              []string
	Endpoints              []Endpoint
}

// Healthy counts the healthy endpoints.
func (s *Service) Healthy() int {
	n := 0
	for _, e := range s.Endpoints {
		if e.Healthy {
			n++
		}
	}
	return n
}

// Services returns the service jobs (all namespaces when namespace is ""),
// by namespace and name, with their running tasks as endpoints (task id
// order). Of several jobs with one name (a stopped one and its successor),
// the one not stopped wins, else the newest.
func (c *Controller) Services(namespace string) []Service {
	best := map[[2]string]*jobEntry{}
	for _, e := range c.sortedJobs() {
		s := &e.job.Spec
		if s.Type != TypeService || (namespace != "" && s.Namespace != namespace) {
			continue
		}
		k := [2]string{s.Namespace, s.Name}
		if b := best[k]; b == nil || !e.job.StopRequested || b.job.StopRequested {
			best[k] = e
		}
	}
	out := make([]Service, 0, len(best))
	for _, e := range best {
		out = append(out, c.service(e))
	}
	slices.SortFunc(out, func(a, b Service) int {
		if d := strings.Compare(a.Namespace, b.Namespace); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// ServiceByName returns one service job's endpoints (see Services).
func (c *Controller) ServiceByName(namespace, name string) (Service, bool) {
	var found *jobEntry
	for _, e := range c.sortedJobs() {
		s := &e.job.Spec
		if s.Type == TypeService && s.Namespace == namespace && s.Name == name && (found == nil || !e.job.StopRequested || found.job.StopRequested) {
			found = e
		}
	}
	if found == nil {
		return Service{}, false
	}
	return c.service(found), true
}

func (c *Controller) service(e *jobEntry) Service {
	s := &e.job.Spec
	out := Service{Namespace: s.Namespace, Name: s.Name, JobID: e.job.ID}
	for _, p := range s.Ports {
		out.PortNames = append(out.PortNames, p.Name)
	}
	for i, t := range e.tasks {
		if t == nil || t.State != Running || t.Node == "" {
			continue
		}
		ep := Endpoint{TaskID: TaskID(e.job.ID, int32(i)), Node: t.Node, Ports: maps.Clone(t.Ports),
			Healthy: t.Health == HealthNone || t.Health == Healthy}
		if n := c.nodes[t.Node]; n != nil {
			ep.AgentAddress = n.node.AgentAddress
			if !n.node.Up {
				ep.Healthy = false
			}
		}
		out.Endpoints = append(out.Endpoints, ep)
	}
	return out
}
