package jobspec

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

const webYAML = `
name: web
namespace: team-a
type: service
priority: prod
replicas: 3
task:
  command: ["/usr/bin/python3", "-m", "http.server", "0"]
  env: {MODE: prod, PORT: 8080}
  resources: {cpu: 500m, memory: 256Mi}
`

func TestParseWeb(t *testing.T) {
	s, err := Parse([]byte(webYAML))
	if err != nil {
		t.Fatal(err)
	}
	if s.GetName() != "web" || s.GetNamespace() != "team-a" || s.GetReplicas() != 3 || len(s.GetTask().GetCommand()) != 4 {
		t.Fatalf("parsed %v", s)
	}
	if s.GetTask().GetEnv()["PORT"] != "8080" {
		t.Fatalf("env PORT = %q, want the number as text", s.GetTask().GetEnv()["PORT"])
	}
	cpu, mem := Hints(s)
	if cpu != 0.5 || mem != 256<<20 {
		t.Fatalf("hints = %v cores, %v bytes; want 0.5, 268435456", cpu, mem)
	}
}

func TestParseDefaultsWithoutSizes(t *testing.T) {
	s, err := Parse([]byte(`{"name":"sleepy","task":{"command":["sleep","60"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.GetNamespace() != "default" || s.GetType() != "service" || s.GetPriority() != "prod" || s.GetReplicas() != 1 || s.GetTask().GetResources() != nil {
		t.Fatalf("defaults not applied: %v", s)
	}
	b, err := Parse([]byte("name: etl\ntype: batch\nreplicas: 0\ntask: {command: [/bin/true]}"))
	if err != nil {
		t.Fatal(err)
	}
	if b.GetPriority() != "batch" || b.GetReplicas() != 0 {
		t.Fatalf("batch defaults: %v", b)
	}
}

// TestParseBadInput checks that every kind of bad input names the field.
func TestParseBadInput(t *testing.T) {
	cases := []struct {
		name, spec, field, want string
	}{
		{"unknown top field", "name: a\ntask: {command: [x]}\nreplica: 3", "replica", "unknown field"},
		{"unknown task field", "name: a\ntask: {command: [x], cmd: y}", "task.cmd", "unknown field"},
		{"unknown resource", "name: a\ntask: {command: [x], resources: {gpu: 1}}", "task.resources.gpu", "unknown field"},
		{"replicas wrong type", "name: a\nreplicas: three\ntask: {command: [x]}", "replicas", "whole number"},
		{"replicas fraction", "name: a\nreplicas: 1.5\ntask: {command: [x]}", "replicas", "whole number"},
		{"replicas negative", "name: a\nreplicas: -1\ntask: {command: [x]}", "replicas", "out of range"},
		{"replicas huge", "name: a\nreplicas: 99999999999\ntask: {command: [x]}", "replicas", "out of range"},
		{"command string", "name: a\ntask: {command: sleep 1}", "task.command", "list of strings"},
		{"command empty", "name: a\ntask: {command: []}", "task.command", "non-empty"},
		{"command element number", "name: a\ntask: {command: [sleep, 1]}", "task.command[1]", "expected a string"},
		{"no task", "name: a", "task", "required"},
		{"no name", "task: {command: [x]}", "name", "required"},
		{"name not DNS", "name: Web_1\ntask: {command: [x]}", "name", "DNS label"},
		{"name too long", "name: " + strings.Repeat("a", 64) + "\ntask: {command: [x]}", "name", "DNS label"},
		{"namespace not DNS", "name: a\nnamespace: -x\ntask: {command: [x]}", "namespace", "DNS label"},
		{"unknown type", "name: a\ntype: daemon\ntask: {command: [x]}", "type", "service, batch, cron"},
		{"unknown priority", "name: a\npriority: high\ntask: {command: [x]}", "priority", "prod, batch, best-effort"},
		{"schedule on service", "name: a\nschedule: '* * * * *'\ntask: {command: [x]}", "schedule", "only allowed for type cron"},
		{"cron without schedule", "name: a\ntype: cron\ntask: {command: [x]}", "schedule", "required"},
		{"bad schedule", "name: a\ntype: cron\nschedule: every day\ntask: {command: [x]}", "schedule", "not a cron schedule"},
		{"bad cpu", "name: a\ntask: {command: [x], resources: {cpu: lots}}", "task.resources.cpu", "not a CPU quantity"},
		{"zero cpu", "name: a\ntask: {command: [x], resources: {cpu: 0}}", "task.resources.cpu", "out of range"},
		{"bad memory", "name: a\ntask: {command: [x], resources: {memory: 12Qi}}", "task.resources.memory", "not a memory quantity"},
		{"bad env name", "name: a\ntask: {command: [x], env: {1X: y}}", "task.env.1X", "not a valid variable name"},
		{"env list", "name: a\ntask: {command: [x], env: [A=b]}", "task.env", "mapping"},
		{"name number", "name: 12\ntask: {command: [x]}", "name", "expected a string"},
		{"malformed yaml", "name: a\n  task: [", "", "malformed"},
		{"malformed json", `{"name": "a", "task": {`, "", "malformed"},
		{"not a mapping", "- a\n- b", "", "expected a mapping"},
		{"empty", "  \n", "", "empty"},
		{"oversized", "name: a\n#" + strings.Repeat("x", MaxSpecBytes), "", "limit"},
		{"update on batch", "name: a\ntype: batch\nupdate: {max_parallel: 1}\ntask: {command: [x]}", "update", "only for services"},
		{"update unknown", "name: a\nupdate: {parallel: 1}\ntask: {command: [x]}", "update.parallel", "unknown field"},
		{"update not a mapping", "name: a\nupdate: fast\ntask: {command: [x]}", "update", "expected a mapping"},
		{"max_parallel zero", "name: a\nupdate: {max_parallel: 0}\ntask: {command: [x]}", "update.max_parallel", "out of range"},
		{"max_parallel string", "name: a\nupdate: {max_parallel: one}\ntask: {command: [x]}", "update.max_parallel", "whole number"},
		{"min_healthy_time number", "name: a\nupdate: {min_healthy_time: 10}\ntask: {command: [x]}", "update.min_healthy_time", "duration"},
		{"min_healthy_time bad", "name: a\nupdate: {min_healthy_time: soon}\ntask: {command: [x]}", "update.min_healthy_time", "not a duration"},
		{"deadline not after min", "name: a\nupdate: {min_healthy_time: 1m, healthy_deadline: 30s}\ntask: {command: [x]}", "update.healthy_deadline", "longer than"},
		{"auto_revert string", "name: a\nupdate: {auto_revert: yes please}\ntask: {command: [x]}", "update.auto_revert", "true or false"},
		{"canary above replicas", "name: a\nreplicas: 2\nupdate: {canary: 3}\ntask: {command: [x]}", "update.canary", "out of range"},
		{"check none", "name: a\ntask: {command: [x], health_check: {interval: 1s}}", "task.health_check", "exactly one"},
		{"check two", "name: a\ntask: {command: [x], health_check: {command: [z], tcp: {port: 80}}}", "task.health_check", "exactly one"},
		{"check unknown", "name: a\ntask: {command: [x], health_check: {grpc: {port: 1}}}", "task.health_check.grpc", "unknown field"},
		{"check http no port", "name: a\ntask: {command: [x], health_check: {http: {path: /}}}", "task.health_check.http.port", "required"},
		{"check http bad path", "name: a\ntask: {command: [x], health_check: {http: {port: 80, path: health}}}", "task.health_check.http.path", "URL path"},
		{"check tcp port range", "name: a\ntask: {command: [x], health_check: {tcp: {port: 70000}}}", "task.health_check.tcp.port", "out of range"},
		{"check command string", "name: a\ntask: {command: [x], health_check: {command: true}}", "task.health_check.command", "list of strings"},
		{"check interval short", "name: a\ntask: {command: [x], health_check: {command: [z], interval: 1ms}}", "task.health_check.interval", "out of range"},
		{"check timeout over interval", "name: a\ntask: {command: [x], health_check: {command: [z], interval: 1s, timeout: 5s}}", "task.health_check.timeout", "longer than the interval"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse([]byte(c.spec))
			if err == nil {
				t.Fatalf("accepted bad spec, got %v", s)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, want *FieldError", err, err)
			}
			if fe.Field != c.field {
				t.Errorf("field = %q, want %q (err: %v)", fe.Field, c.field, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestQuantities(t *testing.T) {
	for q, want := range map[string]float64{"2": 2, "0.5": 0.5, "500m": 0.5, "1500m": 1.5, ".25": 0.25} {
		got, err := ParseCPU(q)
		if err != nil || got != want {
			t.Errorf("ParseCPU(%q) = %v, %v; want %v", q, got, err, want)
		}
	}
	for q, want := range map[string]int64{"1024": 1024, "256Mi": 256 << 20, "1G": 1e9, "1.5Gi": 3 << 29, "64k": 64000} {
		got, err := ParseMemory(q)
		if err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %v, %v; want %v", q, got, err, want)
		}
	}
}

// FuzzParse: Parse never panics, every rejection is a *FieldError, and what it
// accepts is a fixed point of Normalize (validating again changes nothing).
func FuzzParse(f *testing.F) {
	f.Add([]byte(webYAML))
	f.Add([]byte(`{"name":"a","task":{"command":["x"]}}`))
	f.Add([]byte("name: a\ntype: cron\nschedule: '@hourly'\ntask: {command: [x]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, want *FieldError", err, err)
			}
			return
		}
		again, err := Normalize(s)
		if err != nil {
			t.Fatalf("accepted spec fails validation again: %v", err)
		}
		if !proto.Equal(s, again) {
			t.Fatalf("Normalize is not idempotent: %v != %v", s, again)
		}
	})
}

func TestParseDeploymentFields(t *testing.T) {
	s, err := Parse([]byte("name: web\nreplicas: 4\nupdate: {max_parallel: 2, min_healthy_time: 5s, auto_revert: true, canary: 1}\n" +
		"task: {command: [x], health_check: {http: {port: 8080}, interval: 1s}}"))
	if err != nil {
		t.Fatal(err)
	}
	u, h := s.GetUpdate(), s.GetTask().GetHealthCheck()
	if u.GetMaxParallel() != 2 || u.GetMinHealthyTime() != "5s" || u.GetHealthyDeadline() != "5m" || !u.GetAutoRevert() || u.GetCanary() != 1 {
		t.Errorf("update = %v", u)
	}
	if h.GetHttp().GetPort() != 8080 || h.GetHttp().GetPath() != "/" || h.GetInterval() != "1s" || h.GetTimeout() != "1s" {
		t.Errorf("health_check = %v", h)
	}
	// A service without update gets the defaults; a batch job none.
	s, _ = Parse([]byte("name: web\ntask: {command: [x]}"))
	if u := s.GetUpdate(); u.GetMaxParallel() != 1 || u.GetMinHealthyTime() != "10s" || u.GetHealthyDeadline() != "5m" {
		t.Errorf("default update = %v", u)
	}
	s, _ = Parse([]byte("name: b\ntype: batch\ntask: {command: [x]}"))
	if s.GetUpdate() != nil {
		t.Errorf("batch update = %v", s.GetUpdate())
	}
}
