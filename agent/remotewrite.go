package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
)

// RemoteWriter pushes batches of samples with Prometheus remote write
// (protobuf v1, snappy). Enqueue never blocks: batches wait in a buffer
// bounded by MaxPending samples, and when the endpoint is away long enough
// to fill it, the oldest batches are dropped and counted. Safe for
// concurrent use.
type RemoteWriter struct {
	client     *http.Client
	log        *slog.Logger
	maxPending int

	mu      sync.Mutex
	url     string
	queue   [][]prompb.TimeSeries
	pending int // samples in queue
	kick    chan struct{}

	sent, dropped, failures prometheus.Counter
	pendingG                prometheus.Gauge
}

// NewRemoteWriter returns a writer to url (may be changed later with SetURL)
// holding at most maxPending samples while the endpoint is down.
func NewRemoteWriter(url string, maxPending int, reg prometheus.Registerer, log *slog.Logger) *RemoteWriter {
	if maxPending <= 0 {
		maxPending = 50000
	}
	if log == nil {
		log = slog.Default()
	}
	w := &RemoteWriter{
		client: &http.Client{Timeout: 10 * time.Second}, log: log, maxPending: maxPending, url: url,
		kick: make(chan struct{}, 1),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "fathom_agent_remote_write_samples_total",
			Help: "Samples accepted by the remote-write endpoint."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "fathom_agent_remote_write_dropped_samples_total",
			Help: "Samples dropped because the buffer was full while the endpoint was unreachable, or the endpoint refused them as invalid."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "fathom_agent_remote_write_failures_total",
			Help: "Remote-write requests that failed (network error or non-2xx status)."}),
		pendingG: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fathom_agent_remote_write_pending_samples",
			Help: "Samples buffered for the remote-write endpoint."}),
	}
	if reg != nil {
		reg.MustRegister(w.sent, w.dropped, w.failures, w.pendingG)
	}
	return w
}

// SetURL changes the endpoint (the server may name one on registration).
func (w *RemoteWriter) SetURL(url string) {
	w.mu.Lock()
	w.url = url
	w.mu.Unlock()
}

// URL returns the current endpoint.
func (w *RemoteWriter) URL() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.url
}

func samplesIn(b []prompb.TimeSeries) int {
	n := 0
	for i := range b {
		n += len(b[i].Samples)
	}
	return n
}

// Enqueue adds a batch and wakes the sender. It never blocks on the network.
func (w *RemoteWriter) Enqueue(batch []prompb.TimeSeries) {
	n := samplesIn(batch)
	if n == 0 {
		return
	}
	w.mu.Lock()
	w.queue = append(w.queue, batch)
	w.pending += n
	dropped := 0
	for w.pending > w.maxPending && len(w.queue) > 1 {
		d := samplesIn(w.queue[0])
		w.queue[0] = nil
		w.queue = w.queue[1:]
		w.pending -= d
		dropped += d
	}
	if len(w.queue) == 0 || cap(w.queue) > 4*len(w.queue)+64 {
		w.queue = append([][]prompb.TimeSeries(nil), w.queue...) // let go of the dropped prefix's array
	}
	w.pendingG.Set(float64(w.pending))
	w.mu.Unlock()
	if dropped > 0 {
		w.dropped.Add(float64(dropped))
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Pending reports the buffered sample count.
func (w *RemoteWriter) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending
}

// Run sends buffered batches oldest first until ctx is done. After a failure
// it waits (1s doubling to 30s) before trying again; new batches keep
// arriving in the bounded buffer meanwhile.
func (w *RemoteWriter) Run(ctx context.Context) {
	backoff, fails := time.Duration(0), 0
	for {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		} else {
			select {
			case <-ctx.Done():
				return
			case <-w.kick:
			}
		}
		backoff = 0
		for ctx.Err() == nil {
			w.mu.Lock()
			if len(w.queue) == 0 {
				w.mu.Unlock()
				break
			}
			batch, url := w.queue[0], w.url
			w.mu.Unlock()
			retry, err := w.send(ctx, url, batch)
			if err != nil && retry {
				w.failures.Inc()
				w.log.Debug("remote write failed; will retry", "url", url, "err", err)
				fails++
				backoff = min(30*time.Second, time.Second<<min(fails-1, 5))
				break
			}
			fails = 0
			n := samplesIn(batch)
			w.mu.Lock()
			if len(w.queue) > 0 && &w.queue[0][0] == &batch[0] {
				w.queue[0] = nil
				w.queue = w.queue[1:]
				w.pending -= n
			}
			w.pendingG.Set(float64(w.pending))
			w.mu.Unlock()
			if err != nil {
				w.failures.Inc()
				w.dropped.Add(float64(n))
				w.log.Warn("remote write endpoint refused a batch; dropped", "url", url, "err", err)
			} else {
				w.sent.Add(float64(n))
			}
		}
	}
}

// send posts one batch. retry reports whether a failure is worth retrying
// (network, 5xx, 429) rather than a refusal of the data itself (other 4xx).
func (w *RemoteWriter) send(ctx context.Context, url string, batch []prompb.TimeSeries) (retry bool, err error) {
	req := &prompb.WriteRequest{Timeseries: batch}
	raw, err := req.Marshal()
	if err != nil {
		return false, err
	}
	body := snappy.Encode(nil, raw)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	hreq.Header.Set("User-Agent", "fathom-agent")
	resp, err := w.client.Do(hreq)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests, err
}
