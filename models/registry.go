package models

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// RegistryEntry is one trained, versioned model as the server's registry
// stores it (one JSON value per version, e.g. under the etcd key
// /fathom/models/<name>/<version>) and as `GET /v1/models` and
// `fathom model list` show it.
type RegistryEntry struct {
	Name    string `json:"name"`    // e.g. "fathom"
	Version int    `json:"version"` // 1, 2, ... per name
	Kind    string `json:"kind"`    // recommender kind (Kinds)
	// Params are the recommender's parameters as JSON (e.g. FathomParams).
	Params json.RawMessage `json:"params,omitempty"`
	// TrainedAt is when training ran; Since and Until bound the history used.
	TrainedAt time.Time `json:"trained_at"`
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until"`
	Tasks     int       `json:"tasks"`
	Windows   int       `json:"windows"`
	// Eval holds the evaluation figures of this version (and of the
	// baselines it was compared with) on the same history.
	Eval []EvalFigures `json:"eval,omitempty"`
	// Active marks the version the predictor serves.
	Active bool   `json:"active"`
	Note   string `json:"note,omitempty"`
}

// EvalFigures mirror predictor.Result (same JSON names), so that a registry
// entry can carry them without models importing predictor.
type EvalFigures struct {
	Policy            string  `json:"policy"`
	Resource          string  `json:"resource"`
	Slack             float64 `json:"slack"`
	Footprint         float64 `json:"footprint"`
	Violations        float64 `json:"violations"`
	SevereViolations  float64 `json:"severe_violations"`
	ChangesPerTaskDay float64 `json:"changes_per_task_day"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Validate names the first thing wrong with an entry.
func (e RegistryEntry) Validate() error {
	if !nameRE.MatchString(e.Name) {
		return fmt.Errorf("registry entry: name %q must be lower-case letters, digits and '-', at most 63", e.Name)
	}
	if e.Version < 1 {
		return fmt.Errorf("registry entry %s: version %d must be >= 1", e.Name, e.Version)
	}
	if _, err := New(e.Kind); err != nil {
		return fmt.Errorf("registry entry %s v%d: %w", e.Name, e.Version, err)
	}
	if len(e.Params) > 0 && !json.Valid(e.Params) {
		return fmt.Errorf("registry entry %s v%d: params are not valid JSON", e.Name, e.Version)
	}
	if !e.Since.IsZero() && !e.Until.IsZero() && e.Until.Before(e.Since) {
		return fmt.Errorf("registry entry %s v%d: until %s is before since %s", e.Name, e.Version, e.Until.Format(time.RFC3339), e.Since.Format(time.RFC3339))
	}
	return nil
}

// Key is the entry's registry key below a prefix: <prefix>/<name>/<version>,
// the version zero-padded so that keys sort by version.
func (e RegistryEntry) Key(prefix string) string {
	return fmt.Sprintf("%s/%s/%08d", prefix, e.Name, e.Version)
}

// EncodeEntry validates and encodes an entry.
func EncodeEntry(e RegistryEntry) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// DecodeEntry decodes and validates an entry.
func DecodeEntry(b []byte) (RegistryEntry, error) {
	var e RegistryEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("decode registry entry: %w", err)
	}
	return e, e.Validate()
}

// NextVersion is one more than the highest version of name in entries.
func NextVersion(entries []RegistryEntry, name string) int {
	v := 0
	for _, e := range entries {
		if e.Name == name {
			v = max(v, e.Version)
		}
	}
	return v + 1
}

// NewFromEntry builds a fresh recommender of the entry's kind with its
// parameters (defaults when Params is empty).
func NewFromEntry(e RegistryEntry) (Recommender, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if len(e.Params) == 0 {
		return New(e.Kind)
	}
	switch e.Kind {
	case "vpa":
		p := DefaultVPAParams()
		if err := json.Unmarshal(e.Params, &p); err != nil {
			return nil, fmt.Errorf("vpa params: %w", err)
		}
		return NewVPA(p), nil
	case "autopilot":
		p := DefaultAutopilotParams()
		if err := json.Unmarshal(e.Params, &p); err != nil {
			return nil, fmt.Errorf("autopilot params: %w", err)
		}
		return NewAutopilot(p), nil
	case "fathom":
		p := DefaultFathomParams()
		if err := json.Unmarshal(e.Params, &p); err != nil {
			return nil, fmt.Errorf("fathom params: %w", err)
		}
		if err := p.Validate(); err != nil {
			return nil, err
		}
		return NewFathom(p), nil
	}
	return New(e.Kind)
}
