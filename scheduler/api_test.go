package scheduler

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBadInputNamesWhatToFix(t *testing.T) {
	_, err := NewState(ClusterView{Nodes: []Node{{Name: "n1", Capacity: Resources{0, 4}}}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "n1: cpu capacity") {
		t.Errorf("zero capacity: %v", err)
	}
	_, err = NewState(ClusterView{Nodes: []Node{{Name: "n1", Capacity: Resources{4, 4}}}, Running: []Assignment{{Task: Task{ID: "t"}, Node: "nx"}}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `node "nx"`) {
		t.Errorf("unknown node: %v", err)
	}
	_, err = Place(ClusterView{}, nil, Options{OverloadRisk: 0.7})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "overload risk") {
		t.Errorf("bad ε: %v", err)
	}
	// An invalid task is reported, not fatal: the others still place.
	p, err := Place(ClusterView{Nodes: []Node{{Name: "n1", Capacity: Resources{4, 4}}}},
		[]Task{{ID: "bad", Request: Resources{2, 1}, Limit: Resources{1, 1}}, {ID: "ok", Request: Resources{1, 1}}}, Options{})
	if err != nil || len(p.Placements) != 1 || len(p.Unplaced) != 1 || !strings.Contains(p.Unplaced[0].Reason, "cpu limit 1 is below its request 2") {
		t.Errorf("plan %+v, err %v", p, err)
	}
	s, _ := NewState(ClusterView{})
	if _, err := s.Resize(nil, time.Unix(0, 0), MoveOptions{MoveCost: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad move options: %v", err)
	}
	if _, _, err := s.Consolidate(nil, nil, time.Unix(0, 0), ConsolidateOptions{Below: 2}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad consolidate options: %v", err)
	}
}

func TestExplanationForms(t *testing.T) {
	nodes := []Node{{Name: "a", Capacity: Resources{4, 4}}, {Name: "b", Capacity: Resources{1, 1}}, {Name: "c", Capacity: Resources{4, 4}, Cordoned: true}}
	p, err := Place(ClusterView{Nodes: nodes}, []Task{{ID: "t", Request: Resources{2, 2}}, {ID: "u", Request: Resources{3, 3}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Placements) != 1 || p.Placements[0].Node != "a" {
		t.Fatalf("plan %+v", p)
	}
	if got := p.Unplaced[0].Why.String(); got != "examined 3/3 nodes, 0 feasible; filtered cordoned=1 insufficient-cpu=2" {
		t.Errorf("unplaced explanation %q", got)
	}
	b, _ := json.Marshal(p.Unplaced[0].Why)
	if string(b) != `{"nodes":3,"examined":3,"feasible":0,"filtered":{"cordoned":1,"insufficient-cpu":2}}` {
		t.Errorf("json %s", b)
	}
}
