package server

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// query asks the server's DNS over real UDP on the loopback.
func (h *harness) query(name string, qtype uint16) *dns.Msg {
	h.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: "udp"}
	r, _, err := c.Exchange(m, h.dns)
	if err != nil {
		h.t.Fatalf("dns %s %s: %v", dns.TypeToString[qtype], name, err)
	}
	return r
}

func srvPorts(r *dns.Msg) []int {
	var out []int
	for _, rr := range r.Answer {
		if s, ok := rr.(*dns.SRV); ok {
			out = append(out, int(s.Port))
		}
	}
	slices.Sort(out)
	return out
}

// TestServiceDiscovery: a 2-replica service with a named port and a health
// check gets ports from its nodes' ranges; DNS (A, SRV, per named port)
// and GET /v1/services/{namespace}/{job} list the running, healthy tasks
// only; unknown names are NXDOMAIN.
func TestServiceDiscovery(t *testing.T) {
	h := startServer(t, Options{})
	a, b := h.agent("n1", 4), h.agent("n2", 4)
	spec := "name: web\nnamespace: team-a\nreplicas: 2\ntask:\n  command: [x]\n  resources: {cpu: '3', memory: 1Gi}\n" +
		"  ports: [{name: http}, {name: admin, static: 9000}]\n  health_check: {command: [/bin/true]}\n"
	code, body := h.do("POST", "/v1/jobs", spec)
	if code != http.StatusOK {
		t.Fatalf("submit: %d %v", code, body)
	}
	ports := map[string]int32{}
	var last *fathomv1.Assignment
	for _, ag := range []*agent{a, b} {
		set := ag.next("one task with ports", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 1 })
		as := set.GetAssignments()[0]
		p := as.GetPorts()
		if p["admin"] != 9000 || p["http"] < 31000 || p["http"] > 31009 {
			t.Fatalf("%s: ports %v; want admin 9000 and http from 31000-31009", ag.name, p)
		}
		ports[as.GetTaskId()] = p["http"]
		last = as
		ag.report(&fathomv1.TaskStatus{TaskId: as.GetTaskId(), State: fathomv1.TaskState_TASK_STATE_RUNNING, Pid: 7, Generation: as.GetGeneration(),
			Health: fathomv1.HealthState_HEALTH_STATE_HEALTHY})
	}
	eventually(t, "2 SRV records", func() bool { return len(srvPorts(h.query("web.team-a.service.fathom", dns.TypeSRV))) == 2 })
	var want []int
	for _, p := range ports {
		want = append(want, int(p))
	}
	slices.Sort(want)
	r := h.query("WEB.team-a.service.fathom", dns.TypeSRV)
	if got := srvPorts(r); !slices.Equal(got, want) || r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		t.Errorf("SRV web: %v rcode %d; want ports %v (the first port, http)", got, r.Rcode, want)
	}
	for _, rr := range r.Answer {
		if rr.Header().Ttl != DNSTTL || !strings.HasSuffix(rr.(*dns.SRV).Target, ".web.team-a.task.fathom.") {
			t.Errorf("SRV record %v", rr)
		}
	}
	if len(r.Extra) != 2 {
		t.Errorf("SRV additional section %v; want the targets' A records", r.Extra)
	}
	if got := srvPorts(h.query("admin.web.team-a.service.fathom", dns.TypeSRV)); !slices.Equal(got, []int{9000, 9000}) {
		t.Errorf("SRV admin: %v", got)
	}
	ra := h.query("web.team-a.service.fathom", dns.TypeA)
	if len(ra.Answer) != 1 || ra.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
		t.Errorf("A web: %v; want 127.0.0.1 once (both nodes are on the loopback)", ra.Answer)
	}
	if rt := h.query("0.web.team-a.task.fathom", dns.TypeA); len(rt.Answer) != 1 {
		t.Errorf("A of a task: %v", rt)
	}
	for _, name := range []string{"nope.team-a.service.fathom", "web.other.service.fathom", "metrics.web.team-a.service.fathom", "example.com", "5.web.team-a.task.fathom"} {
		if r := h.query(name, dns.TypeA); r.Rcode != dns.RcodeNameError {
			t.Errorf("%s: rcode %s; want NXDOMAIN", name, dns.RcodeToString[r.Rcode])
		}
	}
	code, body = h.do("GET", "/v1/services/team-a/web", "")
	eps, _ := body["endpoints"].([]any)
	if code != 200 || len(eps) != 2 {
		t.Fatalf("GET /v1/services/team-a/web: %d %v", code, body)
	}
	for _, e := range eps {
		m := e.(map[string]any)
		p := m["ports"].(map[string]any)
		if m["address"] != "127.0.0.1" || m["healthy"] != true || int32(p["http"].(float64)) != ports[m["task"].(string)] || m["node"] == "" {
			t.Errorf("endpoint %v", m)
		}
	}
	// An unhealthy task leaves DNS but stays listed, marked.
	as := last
	b.report(&fathomv1.TaskStatus{TaskId: as.GetTaskId(), State: fathomv1.TaskState_TASK_STATE_RUNNING, Pid: 7, Generation: as.GetGeneration(),
		Health: fathomv1.HealthState_HEALTH_STATE_UNHEALTHY, HealthMessage: "exit 1"})
	eventually(t, "1 SRV record", func() bool { return len(srvPorts(h.query("web.team-a.service.fathom", dns.TypeSRV))) == 1 })
	code, body = h.do("GET", "/v1/services/team-a/web", "")
	healthy := 0
	for _, e := range body["endpoints"].([]any) {
		if e.(map[string]any)["healthy"] == true {
			healthy++
		}
	}
	if code != 200 || len(body["endpoints"].([]any)) != 2 || healthy != 1 {
		t.Errorf("after one turned unhealthy: %d %v", code, body)
	}
	code, body = h.do("GET", "/v1/services?namespace=team-a", "")
	if svcs, _ := body["services"].([]any); code != 200 || len(svcs) != 1 || svcs[0].(map[string]any)["dns_name"] != "web.team-a.service.fathom" {
		t.Errorf("list: %d %v", code, body)
	}
	if code, body = h.do("GET", "/v1/services/team-a/nope", ""); code != 404 {
		t.Errorf("unknown service: %d %v", code, body)
	}
	if code, body = h.do("GET", "/v1/services/Team_A/web", ""); code != 400 || !strings.Contains(body["message"].(string), "namespace") {
		t.Errorf("bad namespace: %d %v", code, body)
	}
}
