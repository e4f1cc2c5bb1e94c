package models

import (
	"encoding/json"
	"testing"

	"pgregory.net/rapid"
)

// slidingMax (the periodic windows' maxima bases reads) against its dumb
// twin rangeMax, which scans the ring: on windows of usage with gaps of up
// to days (so the ring drops values in bulk between reads), values that
// may be 0, and a JSON round trip part way (the cache is rebuilt), every
// window of periodicWindows gives the same maximum.
func TestSlidingMaxMatchesRangeMax(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var tr FathomTrack
		n := rapid.IntRange(1, 3000).Draw(t, "n")
		restoreAt := rapid.IntRange(0, n).Draw(t, "restore at")
		ts := int64(1_700_000_000)
		for i := range n {
			gap := int64(WindowSeconds)
			switch rapid.IntRange(0, 50).Draw(t, "gap kind") {
			case 0:
				gap = rapid.Int64Range(1, 10*86400).Draw(t, "long gap")
			case 1:
				gap = rapid.Int64Range(1, 3*3600).Draw(t, "short gap")
			}
			ts += gap
			v := 0.0
			if rapid.IntRange(0, 9).Draw(t, "zero") > 0 {
				v = rapid.Float64Range(0, 100).Draw(t, "v")
			}
			tr.ringPush(ts, v)
			if i == restoreAt {
				b, err := json.Marshal(&tr)
				if err != nil {
					t.Fatal(err)
				}
				var back FathomTrack
				if err := json.Unmarshal(b, &back); err != nil {
					t.Fatal(err)
				}
				tr = back
			}
			now := ts + WindowSeconds
			if len(tr.win) != len(periodicWindows) {
				tr.win = make([]slidingMax, len(periodicWindows))
			}
			for k, w := range periodicWindows {
				from, to := now-w.lag-w.before, now-w.lag+w.after
				if got, want := tr.win[k].max(&tr, from, to), tr.rangeMax(from, to); got != want {
					t.Fatalf("window %d [%d, %d] after %d values: sliding max %v, scan %v", k, from, to, i+1, got, want)
				}
			}
		}
	})
}
