package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"sigs.k8s.io/yaml"
)

// StaticControlPlane serves the desired set from a local file instead of a
// server, for a machine run on its own, demos and benchmarks (like a
// kubelet's static pods). The file is YAML or JSON:
//
//	assignments:
//	  - {task_id: web-0, command: [sleep, "3600"], job_type: service, priority: batch, generation: 1}
//
// It is re-read when it changes. Statuses go to the log.
type StaticControlPlane struct {
	Path string
	Log  *slog.Logger
}

type staticFile struct {
	Assignments []Assignment `json:"assignments"`
}

// LoadAssignments reads an assignments file.
func LoadAssignments(path string) ([]Assignment, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var f staticFile
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w (expected {assignments: [{task_id, command, ...}]})", path, err)
	}
	seen := map[string]bool{}
	for i, a := range f.Assignments {
		if a.TaskID == "" {
			return nil, fmt.Errorf("%s: assignments[%d] has no task_id", path, i)
		}
		if seen[a.TaskID] {
			return nil, fmt.Errorf("%s: task_id %q appears twice", path, a.TaskID)
		}
		seen[a.TaskID] = true
	}
	return f.Assignments, nil
}

func (s *StaticControlPlane) Register(context.Context, NodeInfo) (Registration, error) {
	if _, err := LoadAssignments(s.Path); err != nil {
		return Registration{}, err
	}
	return Registration{NodeID: "static", HeartbeatInterval: 60}, nil
}

func (s *StaticControlPlane) Heartbeat(context.Context, NodeHeartbeat) (bool, error) {
	return false, nil
}

func (s *StaticControlPlane) WatchAssignments(ctx context.Context, _ string, each func(AssignmentSet)) error {
	var last time.Time
	rev := int64(0)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if fi, err := os.Stat(s.Path); err == nil && !fi.ModTime().Equal(last) {
			as, err := LoadAssignments(s.Path)
			if err != nil {
				s.log().Error("assignments file unreadable; keeping the previous set", "err", err)
			} else {
				last = fi.ModTime()
				rev++
				each(AssignmentSet{Revision: rev, Assignments: as})
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *StaticControlPlane) ReportTaskStatus(_ context.Context, _ string, ss []TaskStatus) error {
	for _, st := range ss {
		s.log().Info("task status", "task", st.TaskID, "state", st.State, "pid", st.PID, "exit_code", st.ExitCode,
			"oom_killed", st.OOMKilled, "evicted", st.Evicted, "reason", st.Reason)
	}
	return nil
}

func (s *StaticControlPlane) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}
