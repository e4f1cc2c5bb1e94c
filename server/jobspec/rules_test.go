package jobspec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

func TestParseRules(t *testing.T) {
	s, err := Parse([]byte(`
name: etl
type: batch
restart: {attempts: 2}
constraints:
  - {label: zone, op: "=", value: b}
  - {label: disk, op: in, value: [ssd, nvme]}
  - {label: gpu, op: exists}
  - {label: rack, op: "!=", value: r7}
spread: {label: zone}
task: {command: [/bin/false]}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &fathomv1.RestartPolicy{Attempts: proto.Int32(2), Interval: "24h0m0s", Delay: "15s", Mode: "fail"}
	if !proto.Equal(s.GetRestart(), want) {
		t.Errorf("restart %v; want %v (attempts given, the rest batch's defaults)", s.GetRestart(), want)
	}
	cs := s.GetConstraints()
	if len(cs) != 4 || cs[0].GetValue() != "b" || strings.Join(cs[1].GetValues(), ",") != "ssd,nvme" || cs[2].GetOp() != "exists" || cs[3].GetValue() != "r7" {
		t.Errorf("constraints %v", cs)
	}
	if s.GetSpread().GetLabel() != "zone" {
		t.Errorf("spread %v", s.GetSpread())
	}
	// values: is accepted for in, and a normalized spec normalizes again to
	// itself (a JSON round trip of GET /v1/jobs/{id}'s spec is accepted).
	s2, err := Parse([]byte(`{"name":"x","constraints":[{"label":"zone","op":"in","values":["a","b"]}],"task":{"command":["x"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	again, err := Normalize(s2)
	if err != nil || !proto.Equal(again, s2) {
		t.Errorf("normalize twice: %v %v\n%v", err, again, s2)
	}
	// Defaults per type.
	svc, err := Parse([]byte("name: web\ntask: {command: [x]}"))
	if err != nil {
		t.Fatal(err)
	}
	if r := svc.GetRestart(); r.GetAttempts() != 2 || r.GetInterval() != "30m0s" || r.GetDelay() != "15s" || r.GetMode() != "fail" {
		t.Errorf("service default restart %v", r)
	}
	d, err := Parse([]byte("name: web\nrestart: {attempts: 3, interval: 1h, delay: 1m, mode: delay}\ntask: {command: [x]}"))
	if err != nil {
		t.Fatal(err)
	}
	if r := d.GetRestart(); r.GetInterval() != "1h0m0s" || r.GetDelay() != "1m0s" || r.GetMode() != "delay" {
		t.Errorf("restart %v", r)
	}
}

// TestParseRulesBadInput: every bad restart, constraint or spread field is
// a FieldError naming it.
func TestParseRulesBadInput(t *testing.T) {
	const task = "\ntask: {command: [x]}"
	cases := []struct {
		name, spec, field, want string
	}{
		{"negative attempts", "name: a\nrestart: {attempts: -1}", "restart.attempts", "out of range"},
		{"attempts huge", "name: a\nrestart: {attempts: 5000}", "restart.attempts", "out of range"},
		{"attempts text", "name: a\nrestart: {attempts: two}", "restart.attempts", "whole number"},
		{"restart not a mapping", "name: a\nrestart: 3", "restart", "mapping"},
		{"restart unknown key", "name: a\nrestart: {tries: 3}", "restart.tries", "unknown field"},
		{"interval not a duration", "name: a\nrestart: {interval: soon}", "restart.interval", "not a duration"},
		{"interval a number", "name: a\nrestart: {interval: 30}", "restart.interval", "duration"},
		{"interval too short", "name: a\nrestart: {interval: 10ms}", "restart.interval", "too short"},
		{"negative delay", "name: a\nrestart: {delay: -5s}", "restart.delay", "out of range"},
		{"attempts do not fit", "name: a\nrestart: {attempts: 10, interval: 1m, delay: 15s}", "restart.interval", "do not fit"},
		{"unknown mode", "name: a\nrestart: {mode: retry}", "restart.mode", "fail"},
		{"delay without attempts", "name: a\nrestart: {attempts: 0, mode: delay}", "restart.mode", "attempts > 0"},
		{"constraints not a list", "name: a\nconstraints: {label: zone}", "constraints", "list"},
		{"constraint unknown op", "name: a\nconstraints: [{label: zone, op: '~=', value: b}]", "constraints[0].op", "not an operator"},
		{"constraint no op", "name: a\nconstraints: [{label: zone, value: b}]", "constraints[0].op", "required"},
		{"constraint no label", "name: a\nconstraints: [{op: exists}]", "constraints[0].label", "required"},
		{"in without values", "name: a\nconstraints: [{label: zone, op: in}]", "constraints[0].value", "list of values"},
		{"in with empty list", "name: a\nconstraints: [{label: zone, op: in, value: []}]", "constraints[0].value", "list of values"},
		{"= without value", "name: a\nconstraints: [{label: zone, op: '='}]", "constraints[0].value", "required"},
		{"= with a list", "name: a\nconstraints: [{label: zone, op: '=', value: [a, b]}]", "constraints[0].value", "op in"},
		{"exists with a value", "name: a\nconstraints: [{label: zone, op: exists, value: a}]", "constraints[0].value", "no value"},
		{"constraint unknown key", "name: a\nconstraints: [{label: zone, op: exists, weight: 3}]", "constraints[0].weight", "unknown field"},
		{"second constraint bad", "name: a\nconstraints: [{label: zone, op: exists}, {label: 'a=b', op: exists}]", "constraints[1].label", "not a label name"},
		{"in value not a string", "name: a\nconstraints: [{label: zone, op: in, value: [a, {x: 1}]}]", "constraints[0].value[1]", "expected a string"},
		{"spread without label", "name: a\nspread: {}", "spread.label", "required"},
		{"spread not a mapping", "name: a\nspread: zone", "spread", "mapping"},
		{"spread unknown key", "name: a\nspread: {label: zone, weight: 50}", "spread.weight", "unknown field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.spec + task))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FieldError for %s", err, tc.field)
			}
			if fe.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got field %q: %v; want field %q containing %q", fe.Field, err, tc.field, tc.want)
			}
		})
	}
	long := strings.Repeat("v,", 70)
	if _, err := Parse([]byte("name: a\nconstraints: [{label: zone, op: in, value: [" + long + "]}]" + task)); err == nil || !strings.Contains(err.Error(), "constraints[0].value") {
		t.Errorf("70 values: %v; want a limit error naming constraints[0].value", err)
	}
}

// TestExamplesParse: every job file in examples/ is a valid spec.
func TestExamplesParse(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	js, _ := filepath.Glob("../../examples/*.json")
	files = append(files, js...)
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
