package logtail

import (
	"strings"
	"testing"
)

func TestBound(t *testing.T) {
	var lines []string
	for i := range 50 {
		lines = append(lines, strings.Repeat("x", 10)+string(rune('a'+i%26)))
	}
	got := Bound(strings.Join(lines, "\n") + "\n")
	if n := strings.Count(got, "\n") + 1; n != MaxLines {
		t.Errorf("%d lines kept; want %d", n, MaxLines)
	}
	if !strings.HasSuffix(got, lines[49]) {
		t.Errorf("tail %q does not end with the last line", got)
	}
	long := strings.Repeat("y", 5000) + "\nlast"
	if got := Bound(long); len(got) > MaxBytes || !strings.HasSuffix(got, "last") {
		t.Errorf("a long line: kept %d bytes ending %q; want ≤ %d ending with the last line", len(got), got[max(0, len(got)-10):], MaxBytes)
	}
	if got := Bound(strings.Repeat("z", 3000) + "\nend\n"); got != "end" {
		t.Errorf("a 3000-byte line then end = %q; want the cut line dropped", got[:min(len(got), 20)])
	}
	if got := Bound("a\nb\n"); got != "a\nb" {
		t.Errorf("Bound = %q", got)
	}
	if got := Bound(""); got != "" {
		t.Errorf("empty: %q", got)
	}
}
