package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/console"
	"github.com/fathom-scheduler/fathom/server/jobspec"
)

// GRPCServer returns a gRPC server with every Fathom service registered and
// the request metrics interceptors installed.
func (s *Server) GRPCServer() *grpc.Server {
	g := grpc.NewServer(
		grpc.ChainUnaryInterceptor(s.unaryMetrics),
		grpc.ChainStreamInterceptor(s.streamMetrics),
	)
	fathomv1.RegisterJobServiceServer(g, s)
	fathomv1.RegisterNodeServiceServer(g, s)
	fathomv1.RegisterAgentServiceServer(g, s)
	fathomv1.RegisterServiceServiceServer(g, serviceServer{s: s})
	var rec fathomv1.RecommendationServiceServer = unimplementedPredictor{}
	var mod fathomv1.ModelServiceServer = unimplementedPredictor{}
	if s.o.Recommendations != nil {
		rec = s.o.Recommendations
	}
	if s.o.Models != nil {
		mod = s.o.Models
	}
	fathomv1.RegisterRecommendationServiceServer(g, rec)
	fathomv1.RegisterModelServiceServer(g, mod)
	return g
}

func (s *Server) unaryMetrics(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	s.metrics.requests.WithLabelValues(info.FullMethod, "grpc", status.Code(err).String()).Inc()
	s.metrics.duration.WithLabelValues(info.FullMethod, "grpc").Observe(time.Since(start).Seconds())
	return resp, err
}

func (s *Server) streamMetrics(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	err := h(srv, ss)
	s.metrics.requests.WithLabelValues(info.FullMethod, "grpc", status.Code(err).String()).Inc()
	return err
}

// marshaler is the gateway's JSON: field names as in the .proto (snake_case),
// the same names the job spec uses.
var marshaler = &runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
}

// Handler returns the HTTP API: REST (grpc-gateway to gconn), POST /v1/jobs
// with the strict spec parser, task logs, health, /metrics, /api/v1/ and gRPC
// itself (HTTP/2 with content-type application/grpc).
func (s *Server) Handler(ctx context.Context, g *grpc.Server, gconn *grpc.ClientConn) (http.Handler, error) {
	gw := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler))
	for _, reg := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		fathomv1.RegisterJobServiceHandler, fathomv1.RegisterNodeServiceHandler, fathomv1.RegisterServiceServiceHandler,
		fathomv1.RegisterRecommendationServiceHandler, fathomv1.RegisterModelServiceHandler,
	} {
		if err := reg(ctx, gw, gconn); err != nil {
			return nil, err
		}
	}
	writeErr := func(w http.ResponseWriter, r *http.Request, err error) {
		runtime.HTTPError(r.Context(), gw, marshaler, w, r, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) { s.handleCreateJob(w, r, writeErr) })
	// The same strict YAML/JSON parser for an update and a plan.
	mux.HandleFunc("PUT /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) { s.handleUpdateJob(w, r, writeErr) })
	mux.HandleFunc("POST /v1/jobs:plan", func(w http.ResponseWriter, r *http.Request) { s.handlePlanJob(w, r, writeErr) })
	mux.HandleFunc("GET /v1/tasks/{task_id}/logs", func(w http.ResponseWriter, r *http.Request) { s.handleTaskLogs(w, r, writeErr) })
	// Every other REST body is a small request message: bounded like a spec,
	// so a client cannot make the gateway buffer more.
	mux.Handle("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > jobspec.MaxSpecBytes {
			writeErr(w, r, status.Errorf(codes.InvalidArgument, "request body is %d bytes; the limit is %d bytes (1 MiB)", r.ContentLength, jobspec.MaxSpecBytes))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, jobspec.MaxSpecBytes)
		gw.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.o.Gatherer, promhttp.HandlerOpts{}))
	if s.o.MetricsHandler != nil {
		mux.Handle("/api/v1/", s.o.MetricsHandler)
	} else {
		mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "the Prometheus-compatible API is not enabled in this server (no metrics store configured)", http.StatusServiceUnavailable)
		})
	}
	mux.Handle("/", console.Handler()) // the web console: static assets, public; it calls the API above
	inner := s.httpMetrics(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		inner.ServeHTTP(w, r)
	}), nil
}

func (s *Server) handleCreateJob(w http.ResponseWriter, r *http.Request, writeErr func(http.ResponseWriter, *http.Request, error)) {
	s.handleSpec(w, r, writeErr, func(spec *fathomv1.JobSpec) (proto.Message, error) { return s.createJob(r.Context(), spec) })
}

func (s *Server) handleUpdateJob(w http.ResponseWriter, r *http.Request, writeErr func(http.ResponseWriter, *http.Request, error)) {
	s.handleSpec(w, r, writeErr, func(spec *fathomv1.JobSpec) (proto.Message, error) {
		return s.updateJob(r.Context(), r.PathValue("id"), spec)
	})
}

func (s *Server) handlePlanJob(w http.ResponseWriter, r *http.Request, writeErr func(http.ResponseWriter, *http.Request, error)) {
	s.handleSpec(w, r, writeErr, func(spec *fathomv1.JobSpec) (proto.Message, error) { return s.planJob(spec) })
}

// handleSpec reads a YAML or JSON job spec strictly (jobspec.Parse) and
// answers with what fn returns.
func (s *Server) handleSpec(w http.ResponseWriter, r *http.Request, writeErr func(http.ResponseWriter, *http.Request, error), fn func(*fathomv1.JobSpec) (proto.Message, error)) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, jobspec.MaxSpecBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeErr(w, r, invalidArgument(jobspec.TooLarge(fmt.Sprintf("more than %d bytes", jobspec.MaxSpecBytes))))
			return
		}
		writeErr(w, r, status.Errorf(codes.InvalidArgument, "could not read the request body: %v", err))
		return
	}
	spec, err := jobspec.Parse(data)
	if err != nil {
		writeErr(w, r, invalidArgument(err))
		return
	}
	resp, err := fn(spec)
	if err != nil {
		writeErr(w, r, err)
		return
	}
	b, err := marshaler.Marshal(resp)
	if err != nil {
		writeErr(w, r, status.Errorf(codes.Internal, "encode response: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// handleTaskLogs proxies to the agent that runs the task:
// GET http://<agent_address>/v1/tasks/{task_id}/logs?follow=&tail=.
func (s *Server) handleTaskLogs(w http.ResponseWriter, r *http.Request, writeErr func(http.ResponseWriter, *http.Request, error)) {
	id := r.PathValue("task_id")
	s.mu.RLock()
	node, addr, ok := s.c.Placement(id)
	s.mu.RUnlock()
	switch {
	case !ok:
		writeErr(w, r, status.Errorf(codes.NotFound, "task %q not found; task ids look like <job_id>-<index> (see 'fathom job status JOB')", id))
		return
	case node == "":
		writeErr(w, r, status.Errorf(codes.FailedPrecondition, "task %q has not been placed on a node yet, so it has no logs", id))
		return
	case addr == "":
		writeErr(w, r, status.Errorf(codes.Unavailable, "node %q did not register an agent address, so its logs cannot be fetched", node))
		return
	}
	target := &url.URL{Scheme: "http", Host: addr}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = "/v1/tasks/" + url.PathEscape(id) + "/logs"
			pr.Out.URL.RawPath = ""
			pr.Out.URL.RawQuery = r.URL.RawQuery
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeErr(w, r, status.Errorf(codes.Unavailable, "agent of node %s at %s: %v", node, addr, err))
		},
	}
	rp.ServeHTTP(w, r)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	ready := s.ready
	s.mu.RUnlock()
	if !ready {
		http.Error(w, "not ready: control loops not started", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		http.Error(w, "not ready: etcd: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// httpMetrics counts HTTP requests by route pattern (bounded cardinality).
func (s *Server) httpMetrics(next *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		_, route := next.Handler(r)
		if route == "" {
			route = "unmatched"
		}
		// Patterns may carry a method ("POST /v1/jobs"); the label has it separately.
		if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.code)).Inc()
		s.metrics.duration.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
	})
}

// ServeOptions are the listeners Serve uses.
type ServeOptions struct {
	// HTTP serves REST, health, metrics and gRPC (h2c). Required.
	HTTP net.Listener
	// GRPC serves gRPC only. Optional.
	GRPC net.Listener
	// DNS (UDP) and DNSTCP answer service discovery (services.go). Optional.
	DNS    net.PacketConn
	DNSTCP net.Listener
	// ShutdownTimeout for in-flight requests when ctx ends; default 5 s.
	ShutdownTimeout time.Duration
}

// Serve runs the control loops and serves until ctx ends, then shuts down
// gracefully. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, so ServeOptions) error {
	if so.HTTP == nil {
		return errors.New("server: ServeOptions.HTTP is required")
	}
	if so.ShutdownTimeout <= 0 {
		so.ShutdownTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := s.GRPCServer()
	// The gateway reaches the services over gRPC, through an in-memory
	// listener when no gRPC port is given, so streaming REST calls work.
	gl := so.GRPC
	var internal *memListener
	if gl == nil {
		internal = newMemListener()
		gl = internal
	}
	target := "passthrough:///" + loopbackAddr(gl.Addr())
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if internal != nil {
		target = "passthrough:///fathom-internal"
		dialOpts = append(dialOpts, grpc.WithContextDialer(internal.dial))
	}
	gconn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return fmt.Errorf("server: gateway client: %w", err)
	}
	defer gconn.Close()
	h, err := s.Handler(ctx, g, gconn)
	if err != nil {
		return err
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{Handler: h, Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	wg.Add(3)
	if so.DNS != nil || so.DNSTCP != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ServeDNS(ctx, so.DNS, so.DNSTCP); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("server: dns: %w", err)
			}
		}()
	}
	go func() { defer wg.Done(); s.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := g.Serve(gl); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("server: grpc: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := hs.Serve(so.HTTP); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("server: http: %w", err)
		}
	}()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), so.ShutdownTimeout)
	defer scancel()
	hs.Shutdown(sctx)
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		g.Stop()
	}
	wg.Wait()
	return serveErr
}

// loopbackAddr turns ":7071" or "[::]:7071" into a dialable loopback address.
func loopbackAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// memListener is an in-process net.Listener for the gateway's gRPC client.
type memListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr{} }

func (l *memListener) dial(ctx context.Context, _ string) (net.Conn, error) {
	a, b := net.Pipe()
	select {
	case l.conns <- a:
		return b, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "fathom-internal" }
