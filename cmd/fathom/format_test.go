package main

import "testing"

func TestBytesStr(t *testing.T) {
	for _, tc := range []struct {
		b    int64
		want string
	}{
		{0, "-"}, {512, "512"}, {64 << 20, "64Mi"}, {1536 << 20, "1536Mi"}, {2 << 30, "2Gi"},
		{(64 << 20) + (1 << 19), "64.5Mi"}, {25276973056, "23.5Gi"}, {120 << 30, "120Gi"}, {(12 << 30) + (1 << 20), "12.0Gi"},
	} {
		if got := bytesStr(tc.b); got != tc.want {
			t.Errorf("bytesStr(%d) = %q, want %q", tc.b, got, tc.want)
		}
	}
}
