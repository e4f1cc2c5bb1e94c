package models

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// synthJobs: sizes depend on the name's role token and the priority, with
// noise; namespaces and replica numbers are noise.
func synthJobs(n int, seed uint64) []ColdStartExample {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	roles := []struct {
		tok      string
		cpu, mem float64
	}{{"web", 0.2, 256 << 20}, {"db", 2, 8 << 30}, {"cache", 0.5, 4 << 30}, {"etl", 4, 2 << 30}, {"cron", 0.05, 64 << 20}}
	prios := []string{PriorityProd, PriorityBatch, PriorityBestEffort}
	out := make([]ColdStartExample, n)
	for i := range out {
		r := roles[rng.IntN(len(roles))]
		p := prios[rng.IntN(3)]
		noise := 0.8 + 0.4*rng.Float64()
		f := JobFeatures{
			Namespace: fmt.Sprintf("team-%d", rng.IntN(6)),
			Name:      fmt.Sprintf("%s-%d", r.tok, rng.IntN(100)),
			Command:   []string{"/usr/bin/" + r.tok + "d"},
			Type:      "service",
			Priority:  p,
		}
		scale := 1.0
		if p == PriorityBestEffort {
			scale = 0.5
		}
		out[i] = ColdStartExample{Features: f, Size: Size{CPU: r.cpu * scale * noise, Memory: r.mem * noise}}
	}
	return out
}

func TestColdStartBeatsMedian(t *testing.T) {
	train, test := synthJobs(600, 1), synthJobs(200, 2)
	rep, err := EvaluateColdStart(train, test, 6)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cpu: model %+v, median %+v; memory: model %+v, median %+v", rep.CPUModel, rep.CPUMedian, rep.MemModel, rep.MemMedian)
	if rep.CPUModel.Mean > rep.CPUMedian.Mean/2 || rep.MemModel.Mean > rep.MemMedian.Mean/2 {
		t.Errorf("model error not under half the median baseline's: %+v", rep)
	}
	if _, err := EvaluateColdStart(nil, test, 6); err == nil {
		t.Error("training on nothing accepted")
	}
	bad := []ColdStartExample{{Features: JobFeatures{Name: "x"}, Size: Size{CPU: 0, Memory: 1}}}
	if err := NewColdStart(0).Fit(bad); err == nil {
		t.Error("zero size accepted")
	}
}

func TestFeaturizeTokens(t *testing.T) {
	a := Featurize(JobFeatures{Name: "web-api-7", Type: "service", Priority: "prod", HintCPU: 0.5})
	b := Featurize(JobFeatures{Name: "web_api_12", Type: "service", Priority: "prod", HintCPU: 0.5})
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("feature %d differs for names differing only in replica number: %v vs %v", i, a, b)
		}
	}
	if len(a) != featureCount || a[featureCount-4] != -1 || a[featureCount-3] != 1 {
		t.Fatalf("hint features %v", a[featureCount-4:])
	}
}
