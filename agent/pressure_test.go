package agent

import (
	"reflect"
	"testing"
)

func TestSelectEvictionsOrder(t *testing.T) {
	cands := []EvictionCandidate{
		{TaskID: "prod-big", Priority: PriorityProd, WorkingSet: 900, Request: 100},
		{TaskID: "batch-over", Priority: PriorityBatch, WorkingSet: 300, Request: 100},
		{TaskID: "batch-fits", Priority: PriorityBatch, WorkingSet: 300, Request: 300},
		{TaskID: "be-small", Priority: PriorityBestEffort, WorkingSet: 50},
		{TaskID: "be-large", Priority: PriorityBestEffort, WorkingSet: 200},
	}
	ids := func(ev []Eviction) []string {
		var out []string
		for _, e := range ev {
			out = append(out, e.TaskID)
		}
		return out
	}
	for _, tc := range []struct {
		over int64
		want []string
	}{
		{0, nil},
		{150, []string{"be-large"}},
		{220, []string{"be-large", "be-small"}},
		{300, []string{"be-large", "be-small", "batch-over"}},
		{10000, []string{"be-large", "be-small", "batch-over", "batch-fits"}}, // never prod
	} {
		ev := SelectEvictions(cands, tc.over, "test")
		if got := ids(ev); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("over=%d: evicted %v, want %v", tc.over, got, tc.want)
		}
		for _, e := range ev {
			for _, c := range cands {
				if c.TaskID == e.TaskID && e.WorkingSet != c.WorkingSet {
					t.Errorf("over=%d: eviction of %s carries working set %d, want %d", tc.over, e.TaskID, e.WorkingSet, c.WorkingSet)
				}
			}
		}
	}
}
