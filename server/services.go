package server

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/server/jobspec"
)

// Service discovery: the endpoints API (ServiceService) and DNS answer from
// the same controller view (controller.Services), so they always agree.

// DNSZone is the zone the server answers: <job>.<namespace>.service.fathom,
// <port>.<job>.<namespace>.service.fathom and the SRV targets
// <index>.<job>.<namespace>.task.fathom.
const DNSZone = "fathom."

// DNSTTL is the TTL of every answer: short, as endpoints come and go with
// tasks.
const DNSTTL = 5

// serviceServer implements ServiceService.
type serviceServer struct {
	fathomv1.UnimplementedServiceServiceServer
	s *Server
}

func (v serviceServer) ListServices(_ context.Context, req *fathomv1.ListServicesRequest) (*fathomv1.ListServicesResponse, error) {
	if ns := req.GetNamespace(); ns != "" {
		if err := jobspec.CheckDNSLabel("namespace", ns); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	v.s.mu.RLock()
	svcs := v.s.c.Services(req.GetNamespace())
	v.s.mu.RUnlock()
	resp := &fathomv1.ListServicesResponse{}
	for i := range svcs {
		sv := &svcs[i]
		resp.Services = append(resp.Services, &fathomv1.ServiceSummary{Namespace: sv.Namespace, Job: sv.Name, JobId: sv.JobID,
			Endpoints: int32(len(sv.Endpoints)), Healthy: int32(sv.Healthy()), Ports: sv.PortNames,
			DnsName: sv.Name + "." + sv.Namespace + ".service." + strings.TrimSuffix(DNSZone, ".")})
	}
	return resp, nil
}

func (v serviceServer) GetService(ctx context.Context, req *fathomv1.GetServiceRequest) (*fathomv1.GetServiceResponse, error) {
	if err := jobspec.CheckDNSLabel("namespace", req.GetNamespace()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := jobspec.CheckDNSLabel("job", req.GetJob()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	v.s.mu.RLock()
	sv, ok := v.s.c.ServiceByName(req.GetNamespace(), req.GetJob())
	v.s.mu.RUnlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no service job %q in namespace %q (`fathom service list` shows them)", req.GetJob(), req.GetNamespace())
	}
	resp := &fathomv1.GetServiceResponse{Endpoints: []*fathomv1.Endpoint{}}
	for _, e := range sv.Endpoints {
		addr := ""
		if ip := endpointIP(ctx, e.AgentAddress); ip != nil {
			addr = ip.String()
		}
		resp.Endpoints = append(resp.Endpoints, &fathomv1.Endpoint{Task: e.TaskID, Node: e.Node, Address: addr,
			Ports: portsProto(e.Ports), Healthy: e.Healthy})
	}
	return resp, nil
}

// endpointIP is the IP a task on the node with this agent address listens
// on: the address's host, looked up when it is a name (nil when it cannot
// be resolved). An unspecified address (":7072") means the loopback.
func endpointIP(ctx context.Context, agentAddr string) net.IP {
	host, _, err := net.SplitHostPort(agentAddr)
	if err != nil {
		host = agentAddr
	}
	if host == "" {
		return net.IPv4(127, 0, 0, 1)
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return net.IPv4(127, 0, 0, 1)
		}
		return ip
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return nil
	}
	for _, ip := range ips {
		if ip.IP.To4() != nil {
			return ip.IP
		}
	}
	return ips[0].IP
}

// dnsHandler answers A and SRV questions from the controller's view; only
// healthy endpoints (running, and passing their health check where the
// job has one) are in the answers.
func (s *Server) dnsHandler() dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if len(req.Question) != 1 {
			m.SetRcode(req, dns.RcodeFormatError)
			w.WriteMsg(m)
			return
		}
		q := req.Question[0]
		rcode := s.answerDNS(m, q)
		m.Rcode = rcode
		if len(m.Answer) == 0 {
			m.Ns = append(m.Ns, soa())
		}
		w.WriteMsg(m)
	})
}

func soa() dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: DNSZone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: DNSTTL},
		Ns: "ns." + DNSZone, Mbox: "hostmaster." + DNSZone, Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: DNSTTL}
}

// answerDNS fills m's answer (and additional) section for q and returns
// the rcode: NXDOMAIN for a name that is not a service, a named port of
// one or a task; NOERROR with no answer for a known name without records
// of the type (e.g. SRV of a job without ports, a service with no healthy
// endpoint).
func (s *Server) answerDNS(m *dns.Msg, q dns.Question) int {
	name := strings.ToLower(dns.Fqdn(q.Name))
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return dns.RcodeNameError
	}
	labels := dns.SplitDomainName(name)
	n := len(labels)
	if n < 4 || labels[n-1] != "fathom" {
		return dns.RcodeNameError
	}
	kind := labels[n-2]
	ns, job := labels[n-3], labels[n-4]
	rest := labels[:n-4]
	s.mu.RLock()
	sv, ok := s.c.ServiceByName(ns, job)
	s.mu.RUnlock()
	if !ok {
		return dns.RcodeNameError
	}
	ctx := context.Background()
	switch {
	case kind == "service" && len(rest) <= 1:
		port := ""
		if len(rest) == 1 {
			port = rest[0]
			if !slices.Contains(sv.PortNames, port) {
				return dns.RcodeNameError
			}
		} else if len(sv.PortNames) > 0 {
			port = sv.PortNames[0]
		}
		for _, e := range sv.Endpoints {
			if !e.Healthy {
				continue
			}
			ip := endpointIP(ctx, e.AgentAddress)
			if ip == nil {
				continue
			}
			target := taskName(sv, e)
			switch q.Qtype {
			case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
				if rr := addrRR(name, ip, q.Qtype); rr != nil && !hasRR(m.Answer, rr) {
					m.Answer = append(m.Answer, rr)
				}
			}
			if (q.Qtype == dns.TypeSRV || q.Qtype == dns.TypeANY) && port != "" && e.Ports[port] > 0 {
				m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: DNSTTL},
					Priority: 1, Weight: 1, Port: uint16(e.Ports[port]), Target: target})
				if rr := addrRR(target, ip, dns.TypeA); rr != nil {
					m.Extra = append(m.Extra, rr)
				}
			}
		}
		return dns.RcodeSuccess
	case kind == "task" && len(rest) == 1:
		for _, e := range sv.Endpoints {
			if taskName(sv, e) != name {
				continue
			}
			if ip := endpointIP(ctx, e.AgentAddress); ip != nil && e.Healthy {
				if rr := addrRR(name, ip, q.Qtype); rr != nil {
					m.Answer = append(m.Answer, rr)
				}
			}
			return dns.RcodeSuccess
		}
	}
	return dns.RcodeNameError
}

// taskName is the SRV target of an endpoint: <index>.<job>.<namespace>.task.fathom.
func taskName(sv controller.Service, e controller.Endpoint) string {
	_, idx, _ := controller.SplitTaskID(e.TaskID)
	return strconv.Itoa(int(idx)) + "." + sv.Name + "." + sv.Namespace + ".task." + DNSZone
}

// addrRR is an A (or AAAA) record for ip when it fits the asked type.
func addrRR(name string, ip net.IP, qtype uint16) dns.RR {
	if v4 := ip.To4(); v4 != nil {
		if qtype != dns.TypeA && qtype != dns.TypeANY {
			return nil
		}
		return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: DNSTTL}, A: v4}
	}
	if qtype != dns.TypeAAAA && qtype != dns.TypeANY {
		return nil
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: DNSTTL}, AAAA: ip}
}

func hasRR(rrs []dns.RR, rr dns.RR) bool {
	for _, r := range rrs {
		if dns.IsDuplicate(r, rr) {
			return true
		}
	}
	return false
}

// ServeDNS answers DNS on pc (UDP) and, when l is not nil, on l (TCP)
// until ctx ends.
func (s *Server) ServeDNS(ctx context.Context, pc net.PacketConn, l net.Listener) error {
	h := s.dnsHandler()
	errc := make(chan error, 2)
	var servers []*dns.Server
	if pc != nil {
		u := &dns.Server{PacketConn: pc, Handler: h}
		servers = append(servers, u)
		go func() { errc <- u.ActivateAndServe() }()
	}
	if l != nil {
		t := &dns.Server{Listener: l, Handler: h, ReadTimeout: 5 * time.Second}
		servers = append(servers, t)
		go func() { errc <- t.ActivateAndServe() }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, sv := range servers {
		sv.Shutdown()
	}
	return err
}
