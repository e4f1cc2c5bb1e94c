package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/robfig/cron/v3"
	"sigs.k8s.io/yaml"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// Limits on what a spec may ask for.
const (
	// MaxSpecBytes is the largest spec body accepted (1 MiB).
	MaxSpecBytes = 1 << 20
	// MaxReplicas is the largest replica count of one job.
	MaxReplicas = 10000
	// MaxCPUCores and MaxMemoryBytes bound resource hints to what a machine can have.
	MaxCPUCores    = 1024
	MaxMemoryBytes = 64 << 40
	// MaxCommandArgs and MaxEnv bound list sizes.
	MaxCommandArgs = 1024
	MaxEnv         = 1024
	// MaxArgBytes bounds one command argument and one NAME=value of the
	// environment: Linux's execve refuses a longer string (MAX_ARG_STRLEN,
	// 32 pages of 4 KiB, counting its NUL) with E2BIG, so such a task could
	// never start.
	MaxArgBytes = 32*4096 - 1
)

// TooLarge is the error for a spec beyond MaxSpecBytes; size says how large
// it is ("1100203 bytes", "more than 1048576 bytes"). REST and gRPC answer
// it as INVALID_ARGUMENT (HTTP 400).
func TooLarge(size string) *FieldError {
	return &FieldError{Msg: fmt.Sprintf("spec is %s; the limit is %d bytes (1 MiB)", size, MaxSpecBytes)}
}

// Allowed values.
var (
	Types      = []string{"service", "batch", "cron"}
	Priorities = []string{"prod", "batch", "best-effort"}
)

// FieldError is a spec error that names the field ("" for the whole spec).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "job spec: " + e.Msg
	}
	return "job spec: field " + e.Field + ": " + e.Msg
}

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Parse decodes a YAML or JSON spec strictly, validates it and fills defaults.
func Parse(data []byte) (*fathomv1.JobSpec, error) {
	if len(data) > MaxSpecBytes {
		return nil, TooLarge(fmt.Sprintf("%d bytes", len(data)))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fieldErr("", "spec is empty; give at least name and task.command")
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fieldErr("", "malformed YAML or JSON: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fieldErr("", "malformed YAML or JSON: %v", err)
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fieldErr("", "expected a mapping with name, type, task, ...; got %s", kind(v))
	}
	spec, err := fromMap(top)
	if err != nil {
		return nil, err
	}
	return Normalize(spec)
}

// known fields per level, in spec order for messages.
var (
	topFields  = []string{"name", "namespace", "type", "priority", "replicas", "schedule", "task", "update", "restart", "constraints", "spread"}
	taskFields = []string{"command", "env", "user", "resources", "health_check", "ports"}
	resFields  = []string{"cpu", "memory"}
)

func checkKeys(prefix string, m map[string]any, allowed []string) error {
	var unknown []string
	for k := range m {
		if !contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fieldErr(prefix+unknown[0], "unknown field; allowed here: %s", strings.Join(allowed, ", "))
}

func fromMap(m map[string]any) (*fathomv1.JobSpec, error) {
	if err := checkKeys("", m, topFields); err != nil {
		return nil, err
	}
	s := &fathomv1.JobSpec{}
	var err error
	str := func(field string, dst *string) {
		if err != nil {
			return
		}
		if v, ok := m[field]; ok && v != nil {
			*dst, err = asString(field, v)
		}
	}
	str("name", &s.Name)
	str("namespace", &s.Namespace)
	str("type", &s.Type)
	str("priority", &s.Priority)
	str("schedule", &s.Schedule)
	if err != nil {
		return nil, err
	}
	if v, ok := m["replicas"]; ok && v != nil {
		n, ok := v.(json.Number)
		if !ok {
			return nil, fieldErr("replicas", "expected a whole number 0..%d, got %s", MaxReplicas, kind(v))
		}
		i, perr := strconv.ParseInt(string(n), 10, 64)
		if perr != nil {
			return nil, fieldErr("replicas", "expected a whole number 0..%d, got %s", MaxReplicas, n)
		}
		if i < 0 || i > MaxReplicas {
			return nil, fieldErr("replicas", "%d is out of range; allowed 0..%d", i, MaxReplicas)
		}
		r := int32(i)
		s.Replicas = &r
	}
	if v, ok := m["task"]; ok && v != nil {
		tm, ok := v.(map[string]any)
		if !ok {
			return nil, fieldErr("task", "expected a mapping with command, env, user, resources; got %s", kind(v))
		}
		t, err := taskFromMap(tm)
		if err != nil {
			return nil, err
		}
		s.Task = t
	}
	if v, ok := m["update"]; ok && v != nil {
		u, err := updateFromMap(v)
		if err != nil {
			return nil, err
		}
		s.Update = u
	}
	if err := rulesFromMap(m, s); err != nil {
		return nil, err
	}
	return s, nil
}

func taskFromMap(m map[string]any) (*fathomv1.TaskSpec, error) {
	if err := checkKeys("task.", m, taskFields); err != nil {
		return nil, err
	}
	t := &fathomv1.TaskSpec{}
	if v, ok := m["command"]; ok && v != nil {
		l, ok := v.([]any)
		if !ok {
			return nil, fieldErr("task.command", "expected a list of strings such as [\"/usr/bin/python3\", \"-m\", \"http.server\"], got %s", kind(v))
		}
		for i, a := range l {
			sv, err := asString(fmt.Sprintf("task.command[%d]", i), a)
			if err != nil {
				return nil, err
			}
			t.Command = append(t.Command, sv)
		}
	}
	if v, ok := m["env"]; ok && v != nil {
		em, ok := v.(map[string]any)
		if !ok {
			return nil, fieldErr("task.env", "expected a mapping of NAME: value, got %s", kind(v))
		}
		t.Env = make(map[string]string, len(em))
		for k, a := range em {
			// Environment values are strings; numbers and booleans are
			// accepted as their text because YAML makes `PORT: 8080` a number.
			var sv string
			switch a := a.(type) {
			case string:
				sv = a
			case json.Number:
				sv = string(a)
			case bool:
				sv = strconv.FormatBool(a)
			default:
				return nil, fieldErr("task.env."+k, "expected a string, got %s", kind(a))
			}
			t.Env[k] = sv
		}
	}
	if v, ok := m["user"]; ok && v != nil {
		u, err := asString("task.user", v)
		if err != nil {
			return nil, err
		}
		t.User = u
	}
	if v, ok := m["resources"]; ok && v != nil {
		rm, ok := v.(map[string]any)
		if !ok {
			return nil, fieldErr("task.resources", "expected a mapping with cpu and/or memory, got %s", kind(v))
		}
		if err := checkKeys("task.resources.", rm, resFields); err != nil {
			return nil, err
		}
		r := &fathomv1.Resources{}
		for _, f := range resFields {
			a, ok := rm[f]
			if !ok || a == nil {
				continue
			}
			var sv string
			switch a := a.(type) {
			case string:
				sv = a
			case json.Number:
				sv = string(a)
			default:
				return nil, fieldErr("task.resources."+f, "expected a quantity such as %s, got %s", example(f), kind(a))
			}
			if f == "cpu" {
				r.Cpu = sv
			} else {
				r.Memory = sv
			}
		}
		t.Resources = r
	}
	if v, ok := m["health_check"]; ok && v != nil {
		h, err := checkFromMap(v)
		if err != nil {
			return nil, err
		}
		t.HealthCheck = h
	}
	if v, ok := m["ports"]; ok && v != nil {
		ps, err := portsFromMap(v)
		if err != nil {
			return nil, err
		}
		t.Ports = ps
	}
	return t, nil
}

func example(resource string) string {
	if resource == "cpu" {
		return `500m or 2`
	}
	return `256Mi or 1G`
}

func asString(field string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fieldErr(field, "expected a string, got %s", kind(v))
	}
	return s, nil
}

func kind(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("string %q", trunc(v))
	case json.Number:
		return "number " + trunc(string(v))
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	userName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
)

func checkDNSLabel(field, v string) error {
	if len(v) > 63 || !dnsLabel.MatchString(v) {
		return fieldErr(field, "%q is not a DNS label: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit", trunc(v))
	}
	return nil
}

// DefaultNamespace is used when a spec names none.
const DefaultNamespace = "default"

// Normalize validates a spec (from Parse or from a gRPC client) and returns a
// copy with defaults filled: namespace "default", type "service", priority
// "prod" for services and "batch" otherwise, replicas 1. The input is not
// modified.
func Normalize(in *fathomv1.JobSpec) (*fathomv1.JobSpec, error) {
	if in == nil {
		return nil, fieldErr("", "spec is empty; give at least name and task.command")
	}
	s := &fathomv1.JobSpec{
		Name: in.GetName(), Namespace: in.GetNamespace(), Type: in.GetType(),
		Priority: in.GetPriority(), Schedule: in.GetSchedule(),
	}
	if s.Name == "" {
		return nil, fieldErr("name", "required; a DNS label such as web or nightly-etl")
	}
	if err := checkDNSLabel("name", s.Name); err != nil {
		return nil, err
	}
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	if err := checkDNSLabel("namespace", s.Namespace); err != nil {
		return nil, err
	}
	if s.Type == "" {
		s.Type = "service"
	}
	if !contains(Types, s.Type) {
		return nil, fieldErr("type", "%q is not a job type; allowed: %s", trunc(s.Type), strings.Join(Types, ", "))
	}
	if s.Priority == "" {
		s.Priority = "batch"
		if s.Type == "service" {
			s.Priority = "prod"
		}
	}
	if !contains(Priorities, s.Priority) {
		return nil, fieldErr("priority", "%q is not a priority; allowed: %s", trunc(s.Priority), strings.Join(Priorities, ", "))
	}
	r := int32(1)
	if in.Replicas != nil {
		r = in.GetReplicas()
	}
	if r < 0 || r > MaxReplicas {
		return nil, fieldErr("replicas", "%d is out of range; allowed 0..%d", r, MaxReplicas)
	}
	s.Replicas = &r
	switch {
	case s.Type == "cron" && s.Schedule == "":
		return nil, fieldErr("schedule", `required for type cron, e.g. "*/5 * * * *"`)
	case s.Type != "cron" && s.Schedule != "":
		return nil, fieldErr("schedule", "only allowed for type cron (this job is type %s)", s.Type)
	case s.Schedule != "":
		if _, err := cron.ParseStandard(s.Schedule); err != nil {
			return nil, fieldErr("schedule", "%q is not a cron schedule (5 fields: minute hour day-of-month month day-of-week, or @hourly/@daily/@every 1h): %v", trunc(s.Schedule), err)
		}
	}
	t := in.GetTask()
	if t == nil {
		return nil, fieldErr("task", "required: a mapping with at least command")
	}
	if len(t.GetCommand()) == 0 {
		return nil, fieldErr("task.command", `required: a non-empty list such as ["/usr/bin/python3", "-m", "http.server"]`)
	}
	if len(t.GetCommand()) > MaxCommandArgs {
		return nil, fieldErr("task.command", "%d arguments; the limit is %d", len(t.GetCommand()), MaxCommandArgs)
	}
	if strings.TrimSpace(t.GetCommand()[0]) == "" {
		return nil, fieldErr("task.command[0]", "the program to run must not be empty")
	}
	for i, a := range t.GetCommand() {
		if strings.ContainsRune(a, 0) {
			return nil, fieldErr(fmt.Sprintf("task.command[%d]", i), "must not contain a NUL byte")
		}
		if len(a) > MaxArgBytes {
			return nil, fieldErr(fmt.Sprintf("task.command[%d]", i), "%d bytes; the limit is %d bytes per argument (Linux's MAX_ARG_STRLEN: the process could not start)", len(a), MaxArgBytes)
		}
	}
	if len(t.GetEnv()) > MaxEnv {
		return nil, fieldErr("task.env", "%d variables; the limit is %d", len(t.GetEnv()), MaxEnv)
	}
	keys := make([]string, 0, len(t.GetEnv()))
	for k := range t.GetEnv() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !envName.MatchString(k) {
			return nil, fieldErr("task.env."+k, "not a valid variable name: use letters, digits and '_', not starting with a digit")
		}
		if strings.ContainsRune(t.GetEnv()[k], 0) {
			return nil, fieldErr("task.env."+k, "value must not contain a NUL byte")
		}
		if n := len(k) + 1 + len(t.GetEnv()[k]); n > MaxArgBytes {
			return nil, fieldErr("task.env."+k, "%s=value is %d bytes; the limit is %d bytes per variable (Linux's MAX_ARG_STRLEN: the process could not start); split it or pass it in a file", k, n, MaxArgBytes)
		}
	}
	if u := t.GetUser(); u != "" && (len(u) > 32 || !userName.MatchString(u)) {
		return nil, fieldErr("task.user", "%q is not a user name (letters, digits, '_', '.', '-', at most 32)", trunc(u))
	}
	ts := &fathomv1.TaskSpec{Command: append([]string(nil), t.GetCommand()...), User: t.GetUser()}
	if len(t.GetEnv()) > 0 {
		ts.Env = make(map[string]string, len(t.GetEnv()))
		for k, v := range t.GetEnv() {
			ts.Env[k] = v
		}
	}
	if res := t.GetResources(); res != nil && (res.GetCpu() != "" || res.GetMemory() != "") {
		if res.GetCpu() != "" {
			if _, err := ParseCPU(res.GetCpu()); err != nil {
				return nil, fieldErr("task.resources.cpu", "%v", err)
			}
		}
		if res.GetMemory() != "" {
			if _, err := ParseMemory(res.GetMemory()); err != nil {
				return nil, fieldErr("task.resources.memory", "%v", err)
			}
		}
		ts.Resources = &fathomv1.Resources{Cpu: res.GetCpu(), Memory: res.GetMemory()}
	}
	hc, err := normalizeCheck(t.GetHealthCheck())
	if err != nil {
		return nil, err
	}
	ts.HealthCheck = hc
	ps, err := normalizePorts(t.GetPorts(), t.GetEnv())
	if err != nil {
		return nil, err
	}
	ts.Ports = ps
	s.Task = ts
	if s.Update, err = normalizeUpdate(in.GetUpdate(), s.Type, r); err != nil {
		return nil, err
	}
	if err := normalizeRules(in, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Hints returns the parsed resource hints of a normalized spec (0 = none).
func Hints(s *fathomv1.JobSpec) (cpuCores float64, memoryBytes int64) {
	r := s.GetTask().GetResources()
	if r.GetCpu() != "" {
		cpuCores, _ = ParseCPU(r.GetCpu())
	}
	if r.GetMemory() != "" {
		memoryBytes, _ = ParseMemory(r.GetMemory())
	}
	return cpuCores, memoryBytes
}

var quantity = regexp.MustCompile(`^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([A-Za-z]*)$`)

var errQuantity = errors.New("not a quantity")

func splitQuantity(q string) (float64, string, error) {
	m := quantity.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return 0, "", errQuantity
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, "", errQuantity
	}
	return f, m[2], nil
}

// ParseCPU parses a CPU quantity in cores: "2", "0.5", "500m".
func ParseCPU(q string) (float64, error) {
	f, suf, err := splitQuantity(q)
	if err != nil || (suf != "" && suf != "m") {
		return 0, fmt.Errorf("%q is not a CPU quantity; use cores (0.5, 2) or millicores (500m)", trunc(q))
	}
	if suf == "m" {
		f /= 1000
	}
	if f <= 0 || f > MaxCPUCores {
		return 0, fmt.Errorf("%q is out of range; allowed more than 0 and at most %d cores", trunc(q), MaxCPUCores)
	}
	return f, nil
}

var memUnits = map[string]float64{
	"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
}

// ParseMemory parses a memory quantity in bytes: "268435456", "256Mi", "1G".
func ParseMemory(q string) (int64, error) {
	f, suf, err := splitQuantity(q)
	mul, ok := memUnits[suf]
	if err != nil || !ok {
		return 0, fmt.Errorf("%q is not a memory quantity; use bytes or a suffix Ki, Mi, Gi, Ti, k, M, G, T (256Mi, 1G)", trunc(q))
	}
	b := f * mul
	if b < 1 || b > MaxMemoryBytes {
		return 0, fmt.Errorf("%q is out of range; allowed at least 1 byte and at most 64Ti", trunc(q))
	}
	return int64(b), nil
}

// CheckDNSLabel reports whether v is a DNS label (RFC 1123, at most 63),
// naming field in the error: the rule names and namespaces follow.
func CheckDNSLabel(field, v string) error { return checkDNSLabel(field, v) }
