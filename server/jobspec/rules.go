package jobspec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// The restart policy (restart:) and the placement rules (constraints:,
// spread:) of a job spec: parsing from YAML/JSON, validation and defaults.

// Limits on the rules.
const (
	MaxRestartAttempts = 1000
	MaxConstraints     = 32
	MaxConstraintIn    = 64
	maxLabelLen        = 253
	maxRestartDelay    = 24 * time.Hour
	minRestartInterval = time.Second
)

// Allowed values.
var (
	RestartModes      = []string{"fail", "delay"}
	ConstraintOps     = []string{"=", "!=", "in", "exists"}
	restartFields     = []string{"attempts", "interval", "delay", "mode"}
	constraintFields  = []string{"label", "op", "value", "values"}
	spreadFields      = []string{"label"}
	restartDefaultFor = map[string]*fathomv1.RestartPolicy{
		"service": {Attempts: ptr(int32(2)), Interval: "30m0s", Delay: "15s", Mode: "fail"},
		"batch":   {Attempts: ptr(int32(3)), Interval: "24h0m0s", Delay: "15s", Mode: "fail"},
		"cron":    {Attempts: ptr(int32(3)), Interval: "24h0m0s", Delay: "15s", Mode: "fail"},
	}
)

func ptr[T any](v T) *T { return &v }

// DefaultRestart is the restart policy of a job type when the spec gives
// none (Nomad's defaults): batch and cron 3 attempts in 24h, service 2 in
// 30m; delay 15s; mode fail.
func DefaultRestart(jobType string) *fathomv1.RestartPolicy {
	d := restartDefaultFor[jobType]
	if d == nil {
		d = restartDefaultFor["service"]
	}
	return &fathomv1.RestartPolicy{Attempts: ptr(d.GetAttempts()), Interval: d.Interval, Delay: d.Delay, Mode: d.Mode}
}

// rulesFromMap reads restart, constraints and spread from the top level.
func rulesFromMap(m map[string]any, s *fathomv1.JobSpec) error {
	if v, ok := m["restart"]; ok && v != nil {
		rm, ok := v.(map[string]any)
		if !ok {
			return fieldErr("restart", "expected a mapping with attempts, interval, delay, mode; got %s", kind(v))
		}
		if err := checkKeys("restart.", rm, restartFields); err != nil {
			return err
		}
		r := &fathomv1.RestartPolicy{}
		if a, ok := rm["attempts"]; ok && a != nil {
			n, ok := a.(json.Number)
			i, err := strconv.ParseInt(string(n), 10, 32)
			if !ok || err != nil {
				return fieldErr("restart.attempts", "expected a whole number 0..%d, got %s", MaxRestartAttempts, kind(a))
			}
			r.Attempts = ptr(int32(i))
		}
		for _, f := range []struct {
			name string
			dst  *string
		}{{"interval", &r.Interval}, {"delay", &r.Delay}, {"mode", &r.Mode}} {
			if a, ok := rm[f.name]; ok && a != nil {
				sv, ok := a.(string)
				if !ok {
					if f.name == "mode" {
						return fieldErr("restart.mode", "expected fail or delay, got %s", kind(a))
					}
					return fieldErr("restart."+f.name, `expected a duration such as "15s", "30m" or "24h", got %s`, kind(a))
				}
				*f.dst = sv
			}
		}
		s.Restart = r
	}
	if v, ok := m["constraints"]; ok && v != nil {
		l, ok := v.([]any)
		if !ok {
			return fieldErr("constraints", `expected a list such as [{label: zone, op: "=", value: b}], got %s`, kind(v))
		}
		if len(l) > MaxConstraints {
			return fieldErr("constraints", "%d constraints; the limit is %d", len(l), MaxConstraints)
		}
		for i, a := range l {
			field := fmt.Sprintf("constraints[%d]", i)
			cm, ok := a.(map[string]any)
			if !ok {
				return fieldErr(field, "expected a mapping with label, op and value, got %s", kind(a))
			}
			if err := checkKeys(field+".", cm, constraintFields); err != nil {
				return err
			}
			c := &fathomv1.Constraint{}
			var err error
			if c.Label, err = optString(field+".label", cm["label"]); err != nil {
				return err
			}
			if c.Op, err = optString(field+".op", cm["op"]); err != nil {
				return err
			}
			// value: a string for = and !=; for in, a list (or values:).
			switch x := cm["value"].(type) {
			case nil:
			case []any:
				if c.Values, err = stringList(field+".value", x); err != nil {
					return err
				}
			case string:
				c.Value = x
			case json.Number:
				c.Value = string(x)
			case bool:
				c.Value = strconv.FormatBool(x)
			default:
				return fieldErr(field+".value", "expected a string (or, for op in, a list of strings), got %s", kind(x))
			}
			if x, ok := cm["values"]; ok && x != nil {
				xl, ok := x.([]any)
				if !ok {
					return fieldErr(field+".values", "expected a list of strings, got %s", kind(x))
				}
				vs, err := stringList(field+".values", xl)
				if err != nil {
					return err
				}
				c.Values = append(c.Values, vs...)
			}
			s.Constraints = append(s.Constraints, c)
		}
	}
	if v, ok := m["spread"]; ok && v != nil {
		sm, ok := v.(map[string]any)
		if !ok {
			return fieldErr("spread", "expected a mapping such as {label: zone}, got %s", kind(v))
		}
		if err := checkKeys("spread.", sm, spreadFields); err != nil {
			return err
		}
		l, err := optString("spread.label", sm["label"])
		if err != nil {
			return err
		}
		s.Spread = &fathomv1.Spread{Label: l}
	}
	return nil
}

func optString(field string, v any) (string, error) {
	if v == nil {
		return "", nil
	}
	return asString(field, v)
}

func stringList(field string, l []any) ([]string, error) {
	out := make([]string, 0, len(l))
	for i, a := range l {
		var sv string
		switch a := a.(type) {
		case string:
			sv = a
		case json.Number:
			sv = string(a)
		case bool:
			sv = strconv.FormatBool(a)
		default:
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, i), "expected a string, got %s", kind(a))
		}
		out = append(out, sv)
	}
	return out, nil
}

func checkLabel(field, l string) error {
	switch {
	case l == "":
		return fieldErr(field, "required: a node label name such as zone (nodes get labels with fathom agent --label zone=a)")
	case len(l) > maxLabelLen:
		return fieldErr(field, "%d bytes; the limit is %d", len(l), maxLabelLen)
	case strings.ContainsAny(l, "=\x00") || strings.TrimSpace(l) != l:
		return fieldErr(field, "%q is not a label name: no '=', NUL or surrounding spaces", trunc(l))
	}
	return nil
}

func checkLabelValue(field, v string) error {
	if len(v) > maxLabelLen {
		return fieldErr(field, "%d bytes; the limit is %d", len(v), maxLabelLen)
	}
	if strings.ContainsRune(v, 0) {
		return fieldErr(field, "must not contain a NUL byte")
	}
	return nil
}

func parseDur(field, v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fieldErr(field, `%q is not a duration; use a number and a unit such as "15s", "30m" or "24h"`, trunc(v))
	}
	if d < lo || (hi > 0 && d > hi) {
		if hi > 0 {
			return 0, fieldErr(field, "%s is out of range; allowed %s..%s", d, lo, hi)
		}
		return 0, fieldErr(field, "%s is too short; at least %s", d, lo)
	}
	return d, nil
}

// normalizeRules validates the rules of in and sets them, normalized, on
// out (whose type is already normalized): the restart policy complete (the
// type's defaults fill what is omitted; durations in Go's form), the
// constraints with their values where the operator wants them.
func normalizeRules(in, out *fathomv1.JobSpec) error {
	r := DefaultRestart(out.GetType())
	if p := in.GetRestart(); p != nil {
		if p.Attempts != nil {
			r.Attempts = ptr(p.GetAttempts())
		}
		if p.GetInterval() != "" {
			r.Interval = p.GetInterval()
		}
		if p.GetDelay() != "" {
			r.Delay = p.GetDelay()
		}
		if p.GetMode() != "" {
			r.Mode = p.GetMode()
		}
	}
	if a := r.GetAttempts(); a < 0 || a > MaxRestartAttempts {
		return fieldErr("restart.attempts", "%d is out of range; allowed 0..%d (0: never restart)", a, MaxRestartAttempts)
	}
	iv, err := parseDur("restart.interval", r.GetInterval(), minRestartInterval, 0)
	if err != nil {
		return err
	}
	dl, err := parseDur("restart.delay", r.GetDelay(), 0, maxRestartDelay)
	if err != nil {
		return err
	}
	if !contains(RestartModes, r.GetMode()) {
		return fieldErr("restart.mode", "%q is not a restart mode; allowed: fail (the task fails once the attempts are used up), delay (it waits for the interval to end)", trunc(r.GetMode()))
	}
	if r.GetAttempts() == 0 && r.GetMode() == "delay" {
		return fieldErr("restart.mode", "delay with 0 attempts never restarts and never fails; give attempts > 0 or mode fail")
	}
	if time.Duration(r.GetAttempts())*dl > iv {
		return fieldErr("restart.interval", "%d attempts %s apart do not fit in an interval of %s; lengthen the interval or shorten the delay", r.GetAttempts(), dl, iv)
	}
	r.Interval, r.Delay = iv.String(), dl.String()
	out.Restart = r

	if len(in.GetConstraints()) > MaxConstraints {
		return fieldErr("constraints", "%d constraints; the limit is %d", len(in.GetConstraints()), MaxConstraints)
	}
	for i, c := range in.GetConstraints() {
		field := fmt.Sprintf("constraints[%d]", i)
		if c == nil {
			return fieldErr(field, "empty; give label, op and value")
		}
		if err := checkLabel(field+".label", c.GetLabel()); err != nil {
			return err
		}
		op := c.GetOp()
		nc := &fathomv1.Constraint{Label: c.GetLabel(), Op: op}
		switch op {
		case "=", "!=":
			if len(c.GetValues()) > 0 {
				return fieldErr(field+".value", "op %q takes one value (a string), not a list; use op in for a set", op)
			}
			if c.GetValue() == "" {
				return fieldErr(field+".value", "required for op %q: the label's value, e.g. {label: zone, op: %q, value: b}", op, op)
			}
			nc.Value = c.GetValue()
		case "in":
			vs := c.GetValues()
			if c.GetValue() != "" {
				vs = append([]string{c.GetValue()}, vs...)
			}
			if len(vs) == 0 {
				return fieldErr(field+".value", "op in needs a list of values, e.g. {label: zone, op: in, value: [a, b]}")
			}
			if len(vs) > MaxConstraintIn {
				return fieldErr(field+".value", "%d values; the limit is %d", len(vs), MaxConstraintIn)
			}
			nc.Values = append([]string(nil), vs...)
		case "exists":
			if c.GetValue() != "" || len(c.GetValues()) > 0 {
				return fieldErr(field+".value", "op exists takes no value")
			}
		case "":
			return fieldErr(field+".op", `required: one of "=", "!=", "in", "exists"`)
		default:
			return fieldErr(field+".op", `%q is not an operator; allowed: "=", "!=", "in", "exists"`, trunc(op))
		}
		if err := checkLabelValue(field+".value", nc.Value); err != nil {
			return err
		}
		for j, v := range nc.Values {
			if err := checkLabelValue(fmt.Sprintf("%s.value[%d]", field, j), v); err != nil {
				return err
			}
		}
		out.Constraints = append(out.Constraints, nc)
	}
	if sp := in.GetSpread(); sp != nil {
		if err := checkLabel("spread.label", sp.GetLabel()); err != nil {
			return err
		}
		out.Spread = &fathomv1.Spread{Label: sp.GetLabel()}
	}
	return nil
}

// Restart returns the normalized restart policy's durations (Normalize
// guarantees they parse).
func Restart(s *fathomv1.JobSpec) (attempts int32, interval, delay time.Duration, mode string) {
	r := s.GetRestart()
	if r == nil {
		r = DefaultRestart(s.GetType())
	}
	interval, _ = time.ParseDuration(r.GetInterval())
	delay, _ = time.ParseDuration(r.GetDelay())
	return r.GetAttempts(), interval, delay, r.GetMode()
}
