package agent

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseBytes reads a size such as 268435456, 256Mi, 1.5Gi, 200M or 64k.
// Binary suffixes (Ki, Mi, Gi, Ti) are powers of 1024, decimal ones
// (k, M, G, T) powers of 1000, as in Kubernetes quantities.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range []struct {
		suf string
		m   float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSuffix(t, u.suf), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*mult > 1<<62 {
		return 0, fmt.Errorf("size %q is not a byte count like 268435456, 256Mi or 1.5Gi", s)
	}
	return int64(v * mult), nil
}

// ParseCores reads a CPU amount such as 2, 0.5 or 500m.
func ParseCores(s string) (float64, error) {
	t := strings.TrimSpace(s)
	div := 1.0
	if strings.HasSuffix(t, "m") {
		t, div = strings.TrimSuffix(t, "m"), 1000
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("cpu %q is not a core count like 2, 0.5 or 500m", s)
	}
	return v / div, nil
}
