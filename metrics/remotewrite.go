package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
)

// Series is one time series to push: its labels (including "__name__") and
// samples in time order.
type Series struct {
	Labels  map[string]string
	Samples []Sample
}

// Sample is one value at a Unix time in milliseconds.
type Sample struct {
	TimestampMs int64
	Value       float64
}

// EncodeWriteRequest encodes series as a Prometheus remote-write 1.0 request
// body: a prompb.WriteRequest, protobuf-marshalled and snappy-compressed
// (block format), labels sorted by name as the protocol requires.
func EncodeWriteRequest(series []Series) ([]byte, error) {
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(series))}
	for _, s := range series {
		if s.Labels["__name__"] == "" {
			return nil, fmt.Errorf("remote write: a series has no __name__ label: %v", s.Labels)
		}
		ts := prompb.TimeSeries{Labels: make([]prompb.Label, 0, len(s.Labels)), Samples: make([]prompb.Sample, len(s.Samples))}
		for k, v := range s.Labels {
			ts.Labels = append(ts.Labels, prompb.Label{Name: k, Value: v})
		}
		sort.Slice(ts.Labels, func(i, j int) bool { return ts.Labels[i].Name < ts.Labels[j].Name })
		for i, x := range s.Samples {
			ts.Samples[i] = prompb.Sample{Timestamp: x.TimestampMs, Value: x.Value}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	raw, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("remote write: marshal: %w", err)
	}
	return snappy.Encode(nil, raw), nil
}

// PushWrite POSTs an encoded remote-write 1.0 body to url (for example
// http://127.0.0.1:7070/api/v1/write or a Prometheus started with
// --web.enable-remote-write-receiver) with the headers the protocol requires.
// A non-2xx answer is an error that includes the receiver's message.
func PushWrite(ctx context.Context, c *http.Client, url string, body []byte) error {
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", "fathom")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("remote write to %s: %w", url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("remote write to %s: %s: %s", url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// AppendSeries appends series through a storage appender (in-process writes,
// e.g. benchmarks or backfill). The caller commits.
func AppendSeries(app storage.Appender, series []Series) error {
	for _, s := range series {
		lbl := labels.FromMap(s.Labels)
		var ref storage.SeriesRef
		for _, x := range s.Samples {
			var err error
			if ref, err = app.Append(ref, lbl, x.TimestampMs, x.Value); err != nil {
				return fmt.Errorf("append %s: %w", lbl, err)
			}
		}
	}
	return nil
}
