package jobspec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// Deployment fields: `update:` (services) and `task.health_check:`
// (docs/deployments.md).

// Defaults and bounds of the deployment fields.
const (
	DefaultMinHealthyTime  = 10 * time.Second
	DefaultHealthyDeadline = 5 * time.Minute
	MaxHealthyDeadline     = 24 * time.Hour
	DefaultCheckInterval   = 10 * time.Second
	DefaultCheckTimeout    = 2 * time.Second
	MinCheckInterval       = 100 * time.Millisecond
	MaxCheckInterval       = time.Hour
)

var (
	updateFields = []string{"max_parallel", "min_healthy_time", "healthy_deadline", "auto_revert", "canary"}
	checkFields  = []string{"command", "http", "tcp", "interval", "timeout"}
)

func asInt(field string, v any, lo, hi int64) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fieldErr(field, "expected a whole number %d..%d, got %s", lo, hi, kind(v))
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, fieldErr(field, "expected a whole number %d..%d, got %s", lo, hi, n)
	}
	if i < lo || i > hi {
		return 0, fieldErr(field, "%d is out of range; allowed %d..%d", i, lo, hi)
	}
	return i, nil
}

func updateFromMap(v any) (*fathomv1.UpdateStrategy, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fieldErr("update", "expected a mapping with %s; got %s", strings.Join(updateFields, ", "), kind(v))
	}
	if err := checkKeys("update.", m, updateFields); err != nil {
		return nil, err
	}
	u := &fathomv1.UpdateStrategy{}
	for _, k := range updateFields {
		a, ok := m[k]
		if !ok || a == nil {
			continue
		}
		f := "update." + k
		switch k {
		case "max_parallel":
			n, err := asInt(f, a, 1, MaxReplicas)
			if err != nil {
				return nil, err
			}
			mp := int32(n)
			u.MaxParallel = &mp
		case "canary":
			n, err := asInt(f, a, 0, MaxReplicas)
			if err != nil {
				return nil, err
			}
			u.Canary = int32(n)
		case "auto_revert":
			b, ok := a.(bool)
			if !ok {
				return nil, fieldErr(f, "expected true or false, got %s", kind(a))
			}
			u.AutoRevert = b
		case "min_healthy_time", "healthy_deadline":
			s, err := asString(f, a)
			if err != nil {
				return nil, fieldErr(f, `expected a duration such as "10s" or "5m", got %s`, kind(a))
			}
			if k == "min_healthy_time" {
				u.MinHealthyTime = s
			} else {
				u.HealthyDeadline = s
			}
		}
	}
	return u, nil
}

func checkFromMap(v any) (*fathomv1.HealthCheck, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fieldErr("task.health_check", "expected a mapping with one of command, http, tcp (and interval, timeout); got %s", kind(v))
	}
	if err := checkKeys("task.health_check.", m, checkFields); err != nil {
		return nil, err
	}
	h := &fathomv1.HealthCheck{}
	if a, ok := m["command"]; ok && a != nil {
		l, ok := a.([]any)
		if !ok {
			return nil, fieldErr("task.health_check.command", `expected a list of strings such as ["/usr/bin/curl", "-f", "http://127.0.0.1:8080/"], got %s`, kind(a))
		}
		for i, x := range l {
			s, err := asString(fmt.Sprintf("task.health_check.command[%d]", i), x)
			if err != nil {
				return nil, err
			}
			h.Command = append(h.Command, s)
		}
	}
	port := func(field string, a any) (int32, error) {
		n, err := asInt(field, a, 1, 65535)
		return int32(n), err
	}
	if a, ok := m["http"]; ok && a != nil {
		hm, ok := a.(map[string]any)
		if !ok {
			return nil, fieldErr("task.health_check.http", "expected a mapping with port and path, got %s", kind(a))
		}
		if err := checkKeys("task.health_check.http.", hm, []string{"port", "path"}); err != nil {
			return nil, err
		}
		h.Http = &fathomv1.HTTPCheck{}
		if p, ok := hm["port"]; ok {
			n, err := port("task.health_check.http.port", p)
			if err != nil {
				return nil, err
			}
			h.Http.Port = n
		}
		if p, ok := hm["path"]; ok && p != nil {
			s, err := asString("task.health_check.http.path", p)
			if err != nil {
				return nil, err
			}
			h.Http.Path = s
		}
	}
	if a, ok := m["tcp"]; ok && a != nil {
		tm, ok := a.(map[string]any)
		if !ok {
			return nil, fieldErr("task.health_check.tcp", "expected a mapping with port, got %s", kind(a))
		}
		if err := checkKeys("task.health_check.tcp.", tm, []string{"port"}); err != nil {
			return nil, err
		}
		h.Tcp = &fathomv1.TCPCheck{}
		if p, ok := tm["port"]; ok {
			n, err := port("task.health_check.tcp.port", p)
			if err != nil {
				return nil, err
			}
			h.Tcp.Port = n
		}
	}
	for _, k := range []string{"interval", "timeout"} {
		if a, ok := m[k]; ok && a != nil {
			s, err := asString("task.health_check."+k, a)
			if err != nil {
				return nil, fieldErr("task.health_check."+k, `expected a duration such as "10s", got %s`, kind(a))
			}
			if k == "interval" {
				h.Interval = s
			} else {
				h.Timeout = s
			}
		}
	}
	return h, nil
}

// parseDuration parses a duration field within [lo, hi]; "" is def.
func parseDuration(field, s string, def, lo, hi time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fieldErr(field, `%q is not a duration; use a number with a unit: "500ms", "10s", "5m", "1h"`, trunc(s))
	}
	if d < lo || d > hi {
		return 0, fieldErr(field, "%s is out of range; allowed %s..%s", s, FormatDuration(lo), FormatDuration(hi))
	}
	return d, nil
}

// FormatDuration is d as the spec writes it: "10s", "5m", "1h30m", "500ms".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// normalizeUpdate validates a service's update strategy and fills its
// defaults (every service has one; other types may not).
func normalizeUpdate(in *fathomv1.UpdateStrategy, typ string, replicas int32) (*fathomv1.UpdateStrategy, error) {
	if typ != "service" {
		if in != nil {
			return nil, fieldErr("update", "only for services: a %s job's tasks that start after an update run the new version (this job is type %s)", typ, typ)
		}
		return nil, nil
	}
	out := &fathomv1.UpdateStrategy{}
	mp := int32(1)
	if in.GetMaxParallel() != 0 || (in != nil && in.MaxParallel != nil) {
		mp = in.GetMaxParallel()
		if mp < 1 || mp > MaxReplicas {
			return nil, fieldErr("update.max_parallel", "%d is out of range; allowed 1..%d", mp, MaxReplicas)
		}
	}
	out.MaxParallel = &mp
	minH, err := parseDuration("update.min_healthy_time", in.GetMinHealthyTime(), DefaultMinHealthyTime, 0, time.Hour)
	if err != nil {
		return nil, err
	}
	dl, err := parseDuration("update.healthy_deadline", in.GetHealthyDeadline(), DefaultHealthyDeadline, time.Second, MaxHealthyDeadline)
	if err != nil {
		return nil, err
	}
	if dl <= minH {
		return nil, fieldErr("update.healthy_deadline", "%s must be longer than update.min_healthy_time (%s)", FormatDuration(dl), FormatDuration(minH))
	}
	out.MinHealthyTime, out.HealthyDeadline = FormatDuration(minH), FormatDuration(dl)
	out.AutoRevert = in.GetAutoRevert()
	if c := in.GetCanary(); c < 0 || c > replicas {
		return nil, fieldErr("update.canary", "%d is out of range; allowed 0..%d (replicas)", c, replicas)
	}
	out.Canary = in.GetCanary()
	return out, nil
}

// normalizeCheck validates a health check and fills its defaults.
func normalizeCheck(in *fathomv1.HealthCheck) (*fathomv1.HealthCheck, error) {
	if in == nil {
		return nil, nil
	}
	n := 0
	out := &fathomv1.HealthCheck{}
	if len(in.GetCommand()) > 0 {
		n++
		if len(in.GetCommand()) > MaxCommandArgs {
			return nil, fieldErr("task.health_check.command", "%d arguments; the limit is %d", len(in.GetCommand()), MaxCommandArgs)
		}
		if strings.TrimSpace(in.GetCommand()[0]) == "" {
			return nil, fieldErr("task.health_check.command[0]", "the program to run must not be empty")
		}
		for i, a := range in.GetCommand() {
			if strings.ContainsRune(a, 0) {
				return nil, fieldErr(fmt.Sprintf("task.health_check.command[%d]", i), "must not contain a NUL byte")
			}
		}
		out.Command = append([]string(nil), in.GetCommand()...)
	}
	if h := in.GetHttp(); h != nil {
		n++
		if h.GetPort() < 1 || h.GetPort() > 65535 {
			return nil, fieldErr("task.health_check.http.port", "required: the port the task listens on, 1..65535")
		}
		path := h.GetPath()
		if path == "" {
			path = "/"
		}
		if !strings.HasPrefix(path, "/") || len(path) > 1024 || strings.ContainsAny(path, " \t\r\n\x00") {
			return nil, fieldErr("task.health_check.http.path", "%q is not a URL path: start with / and use no spaces (at most 1024 characters)", trunc(path))
		}
		out.Http = &fathomv1.HTTPCheck{Port: h.GetPort(), Path: path}
	}
	if t := in.GetTcp(); t != nil {
		n++
		if t.GetPort() < 1 || t.GetPort() > 65535 {
			return nil, fieldErr("task.health_check.tcp.port", "required: the port the task listens on, 1..65535")
		}
		out.Tcp = &fathomv1.TCPCheck{Port: t.GetPort()}
	}
	if n != 1 {
		return nil, fieldErr("task.health_check", "give exactly one of command, http or tcp (got %d)", n)
	}
	iv, err := parseDuration("task.health_check.interval", in.GetInterval(), DefaultCheckInterval, MinCheckInterval, MaxCheckInterval)
	if err != nil {
		return nil, err
	}
	to, err := parseDuration("task.health_check.timeout", in.GetTimeout(), min(DefaultCheckTimeout, iv), 10*time.Millisecond, time.Minute)
	if err != nil {
		return nil, err
	}
	if to > iv {
		return nil, fieldErr("task.health_check.timeout", "%s is longer than the interval (%s)", FormatDuration(to), FormatDuration(iv))
	}
	out.Interval, out.Timeout = FormatDuration(iv), FormatDuration(to)
	return out, nil
}

// UpdateDurations returns a normalized strategy's durations.
func UpdateDurations(u *fathomv1.UpdateStrategy) (minHealthy, deadline time.Duration) {
	minHealthy, _ = time.ParseDuration(u.GetMinHealthyTime())
	deadline, _ = time.ParseDuration(u.GetHealthyDeadline())
	return minHealthy, deadline
}

// CheckDurations returns a normalized check's interval and timeout.
func CheckDurations(h *fathomv1.HealthCheck) (interval, timeout time.Duration) {
	interval, _ = time.ParseDuration(h.GetInterval())
	timeout, _ = time.ParseDuration(h.GetTimeout())
	return interval, timeout
}
