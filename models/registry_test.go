package models

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRegistryEntryRoundTrip(t *testing.T) {
	p, _ := json.Marshal(DefaultFathomParams())
	e := RegistryEntry{Name: "fathom", Version: 3, Kind: "fathom", Params: p, Tasks: 250, Windows: 1713732,
		Eval: []EvalFigures{{Policy: "fathom", Resource: "cpu", Slack: 0.58, Footprint: 0.256}}}
	b, err := EncodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 3 || got.Eval[0].Footprint != 0.256 || e.Key("/fathom/models") != "/fathom/models/fathom/00000003" {
		t.Fatalf("round trip %+v", got)
	}
	r, err := NewFromEntry(got)
	if err != nil || r.Kind() != "fathom" {
		t.Fatalf("NewFromEntry: %v %v", r, err)
	}
	if NextVersion([]RegistryEntry{e, {Name: "other", Version: 9}}, "fathom") != 4 {
		t.Error("next version")
	}
	for _, bad := range []RegistryEntry{
		{Name: "Fathom!", Version: 1, Kind: "fathom"},
		{Name: "fathom", Version: 0, Kind: "fathom"},
		{Name: "fathom", Version: 1, Kind: "oracle"},
		{Name: "fathom", Version: 1, Kind: "fathom", Params: json.RawMessage(`{"margins":[]}`)},
	} {
		if _, err := EncodeEntry(bad); err == nil {
			if _, err := NewFromEntry(bad); err == nil || !strings.Contains(err.Error(), "margins") {
				t.Errorf("bad entry %+v accepted", bad)
			}
		}
	}
}
