package main

import (
	"strings"
	"testing"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

func TestBytesStr(t *testing.T) {
	for _, tc := range []struct {
		b    int64
		want string
	}{
		{0, "-"}, {512, "512B"}, {3 << 10, "3.0Ki"}, {64 << 20, "64Mi"}, {1536 << 20, "1536Mi"}, {2 << 30, "2Gi"},
		{(64 << 20) + (1 << 19), "64.5Mi"}, {25276973056, "23.5Gi"}, {120 << 30, "120Gi"}, {(12 << 30) + (1 << 20), "12.0Gi"},
	} {
		if got := bytesStr(tc.b); got != tc.want {
			t.Errorf("bytesStr(%d) = %q, want %q", tc.b, got, tc.want)
		}
	}
}

// TestRecommendationTableUnits: memory in Mi/Gi, never raw bytes, and no
// "0.00" confidence for a size that has no history behind it.
func TestRecommendationTableUnits(t *testing.T) {
	recs := &fathomv1.ListRecommendationsResponse{Recommendations: []*fathomv1.Recommendation{
		{Task: "burn-0", Resource: "memory", Model: "none", Request: 64 << 20, Limit: 0, CurrentRequest: 64 << 20, Why: "no usage history yet"},
		{Task: "web-0", Resource: "memory", Model: "fathom", Usage: 11429478, Request: 12 << 20, Limit: 33554432, Confidence: 0.0002,
			CurrentRequest: 12 << 20, CurrentLimit: 45090000},
		{Task: "web-0", Resource: "cpu", Model: "fathom", Usage: 0.000209, Request: 0.001, Limit: 0.05, Confidence: 0.75},
	}}
	var b strings.Builder
	printRecommendations(&b, recs)
	out := b.String()
	for _, bad := range []string{"e+07", "33554432", "45090000", "0.00\t", " 0.00 "} {
		if strings.Contains(out, bad) {
			t.Errorf("table shows %q:\n%s", bad, out)
		}
	}
	for _, want := range []string{"10.9Mi", "12Mi/43.0Mi", "12Mi/32Mi", "<0.01", "0.75"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if line := strings.Split(out, "\n")[2]; !strings.Contains(line, "none  -") && !strings.Contains(line, "none\t-") {
		t.Errorf("a size with no history shows a confidence: %q", line)
	}
}
