package synth_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/metrics/synth"
)

func TestDeterministicAndChunkedLikeWhole(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	c := synth.Cluster{Jobs: []string{"a", "b"}, Tasks: 2, Nodes: 3, Start: start, End: start.Add(5 * time.Minute), Seed: 3}
	whole, err := synth.Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := synth.Generate(c)
	if !reflect.DeepEqual(whole, again) {
		t.Fatal("same seed, different series")
	}
	// 4 tasks × 8 metrics + 3 nodes × 5 metrics, 31 samples each.
	if len(whole) != 4*8+3*5 || len(whole[0].Samples) != 31 {
		t.Fatalf("%d series of %d samples", len(whole), len(whole[0].Samples))
	}
	// Pushing in 10-sample chunks yields the same samples per series.
	got := map[string][]metrics.Sample{}
	key := func(s metrics.Series) string {
		return s.Labels["__name__"] + s.Labels[metrics.LabelTask] + s.Labels[metrics.LabelNode]
	}
	if err := synth.Walk(c, 10, func(b []metrics.Series) error {
		for _, s := range b {
			got[key(s)] = append(got[key(s)], s.Samples...)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range whole {
		if !reflect.DeepEqual(got[key(s)], s.Samples) {
			t.Fatalf("%s: chunked samples differ", key(s))
		}
		for i := 1; i < len(s.Samples); i++ {
			if s.Samples[i].TimestampMs <= s.Samples[i-1].TimestampMs {
				t.Fatalf("%s: samples out of order", key(s))
			}
		}
		if s.Labels["__name__"] == metrics.TaskCPUUsageSecondsTotal {
			for i := 1; i < len(s.Samples); i++ {
				if s.Samples[i].Value < s.Samples[i-1].Value {
					t.Fatalf("%s: counter decreased", key(s))
				}
			}
		}
	}
	if _, err := synth.Generate(synth.Cluster{Start: start, End: start}); err == nil {
		t.Error("empty time range accepted")
	}
}
