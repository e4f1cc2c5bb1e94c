package jobspec

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePorts(t *testing.T) {
	s, err := Parse([]byte("name: web\ntask:\n  command: [x]\n  ports: [{name: http}, {name: metrics-a, static: 9100}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ps := s.GetTask().GetPorts()
	if len(ps) != 2 || ps[0].GetName() != "http" || ps[0].GetStatic() != 0 || ps[1].GetStatic() != 9100 {
		t.Fatalf("ports %v", ps)
	}
}

func TestParsePortsBadInput(t *testing.T) {
	for _, c := range []struct{ name, ports, field, want string }{
		{"not a list", "http", "task.ports", "expected a list"},
		{"no name", "[{static: 80}]", "task.ports[0].name", "required"},
		{"bad name", "[{name: HTTP}]", "task.ports[0].name", "not a port name"},
		{"long name", "[{name: " + strings.Repeat("a", 16) + "}]", "task.ports[0].name", "not a port name"},
		{"dup name", "[{name: a}, {name: a}]", "task.ports[1].name", "unique"},
		{"static range", "[{name: a, static: 70000}]", "task.ports[0].static", "out of range"},
		{"static text", "[{name: a, static: eighty}]", "task.ports[0].static", "port number"},
		{"dup static", "[{name: a, static: 80}, {name: b, static: 80}]", "task.ports[1].static", "twice"},
		{"unknown key", "[{name: a, port: 80}]", "task.ports[0].port", "unknown field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte("name: web\ntask:\n  command: [x]\n  ports: " + c.ports + "\n"))
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v; want field %s saying %q", err, c.field, c.want)
			}
		})
	}
	_, err := Parse([]byte("name: web\ntask:\n  command: [x]\n  env: {FATHOM_PORT_HTTP: '1'}\n  ports: [{name: http}]\n"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "task.env.FATHOM_PORT_HTTP" {
		t.Fatalf("env clash: %v", err)
	}
}
