package predictor

import (
	"fmt"
	"time"

	"github.com/fathom-scheduler/fathom/models"
)

// TaskKey names a task: history is learned per namespace/job, and each task
// index has its own series.
type TaskKey struct {
	Namespace string `json:"namespace"`
	Job       string `json:"job"`
	Task      int    `json:"task"`
}

func (k TaskKey) String() string { return fmt.Sprintf("%s/%s/%d", k.Namespace, k.Job, k.Task) }

// Series is one task's usage windows in time order, optionally with the
// sizes its owner provisioned per window (used as the footprint reference).
type Series struct {
	Task        TaskKey         `json:"task"`
	Windows     []models.Window `json:"windows"`
	Provisioned []models.Size   `json:"provisioned,omitempty"`
}

// Validate checks that windows are in strictly increasing time order and
// that Provisioned, when given, has one entry per window.
func (s *Series) Validate() error {
	if len(s.Provisioned) != 0 && len(s.Provisioned) != len(s.Windows) {
		return fmt.Errorf("series %s: %d provisioned sizes for %d windows; give one per window or none", s.Task, len(s.Provisioned), len(s.Windows))
	}
	for i := 1; i < len(s.Windows); i++ {
		if !s.Windows[i].Start.After(s.Windows[i-1].Start) {
			return fmt.Errorf("series %s: window %d starts at %s, not after window %d (%s); sort windows and drop duplicates", s.Task, i, s.Windows[i].Start.Format(time.RFC3339), i-1, s.Windows[i-1].Start.Format(time.RFC3339))
		}
	}
	return nil
}

func (s *Series) provisioned(i int) models.Size {
	if i < len(s.Provisioned) {
		return s.Provisioned[i]
	}
	return models.Size{}
}
