package server

import (
	"fmt"
	"strings"
	"testing"
)

// TestVersionsOverREST drives versions, scaling, plans and bad input
// through the real loop, etcd and the REST API.
func TestVersionsOverREST(t *testing.T) {
	h := startServer(t, Options{})
	code, body := h.do("POST", "/v1/jobs", "name: web\nreplicas: 2\ntask: {command: [sleep, '60']}\n")
	if code != 200 || body["result"] != "created" {
		t.Fatalf("create = %d %v", code, body)
	}
	id := body["id"].(string)

	// A plan changes nothing and says what an update would do.
	code, body = h.do("POST", "/v1/jobs:plan", "name: web\nreplicas: 3\ntask: {command: [sleep, '61']}\n")
	if code != 200 || body["action"] != "update" || body["job_id"] != id || body["next_version"] != "2" || body["add"] != float64(1) {
		t.Fatalf("plan = %d %v", code, body)
	}
	if !strings.Contains(fmt.Sprint(body["changes"]), "task.command") {
		t.Errorf("plan changes %v do not name task.command", body["changes"])
	}
	code, body = h.do("POST", "/v1/jobs:plan", "name: other\ntask: {command: [x]}\n")
	if code != 200 || body["action"] != "create" {
		t.Fatalf("plan of a new job = %d %v", code, body)
	}

	// PUT with YAML: version 2.
	code, body = h.do("PUT", "/v1/jobs/"+id, "name: web\nreplicas: 2\ntask: {command: [sleep, '61']}\nupdate: {max_parallel: 2}\n")
	if code != 200 || body["version"] != "2" || body["result"] != "updated" {
		t.Fatalf("PUT = %d %v", code, body)
	}
	// Scale: version 3 with 5 tasks.
	code, body = h.do("POST", "/v1/jobs/"+id+":scale", `{"replicas": 5}`)
	if code != 200 || body["version"] != "3" {
		t.Fatalf("scale = %d %v", code, body)
	}
	code, body = h.do("GET", "/v1/jobs/"+id+"/tasks", "")
	if tasks, _ := body["tasks"].([]any); code != 200 || len(tasks) != 5 {
		t.Fatalf("tasks after scale = %d %v, want 5", code, body)
	}
	// History, newest first.
	code, body = h.do("GET", "/v1/jobs/"+id+"/versions", "")
	vs, _ := body["versions"].([]any)
	if code != 200 || len(vs) != 3 {
		t.Fatalf("versions = %d %v, want 3", code, body)
	}
	if v := vs[0].(map[string]any); v["version"] != "3" || v["reason"] != "scaled from 2 to 5" {
		t.Errorf("newest version = %v", v)
	}
	// Revert to version 1: version 4 with version 1's spec.
	code, body = h.do("POST", "/v1/jobs/"+id+":revert", `{"version": 1}`)
	if code != 200 || body["version"] != "4" {
		t.Fatalf("revert = %d %v", code, body)
	}
	job := body["job"].(map[string]any)
	spec := job["spec"].(map[string]any)
	if spec["replicas"] != float64(2) || fmt.Sprint(spec["task"].(map[string]any)["command"]) != "[sleep 60]" {
		t.Errorf("reverted spec = %v", spec)
	}

	// Bad input: 400 naming the field, or a clear refusal.
	for _, c := range []struct{ method, path, body, want string }{
		{"PUT", "/v1/jobs/" + id, "name: web\ntype: batch\ntask: {command: [x]}\n", "cannot change the job type"},
		{"PUT", "/v1/jobs/" + id, "name: web\nnamespace: team-b\ntask: {command: [x]}\n", "another namespace"},
		{"PUT", "/v1/jobs/" + id, "name: web\nupdate: {max_parallel: 0}\ntask: {command: [x]}\n", "update.max_parallel"},
		{"PUT", "/v1/jobs/" + id, "name: web\ntask: {command: [x], health_check: {tcp: {port: 0}}}\n", "task.health_check.tcp.port"},
		{"POST", "/v1/jobs/" + id + ":scale", `{"replicas": -1}`, "replicas"},
		{"POST", "/v1/jobs/" + id + ":revert", `{"version": 0}`, "version"},
		{"POST", "/v1/jobs/" + id + ":promote", `{}`, "no rollout waiting on canaries"},
	} {
		code, body := h.do(c.method, c.path, c.body)
		if code < 400 || code >= 500 || !strings.Contains(fmt.Sprint(body["message"]), c.want) {
			t.Errorf("%s %s %q = %d %v; want a 4xx saying %q", c.method, c.path, c.body, code, body, c.want)
		}
	}
	if code, body := h.do("POST", "/v1/jobs/"+id+":revert", `{"version": 99}`); code != 404 {
		t.Errorf("revert to an unknown version = %d %v, want 404", code, body)
	}
}
