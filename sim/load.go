package sim

import (
	"fmt"
	"os"
	"strings"

	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

// Formats lists the trace formats Load reads.
var Formats = []string{"bitbrains", "google2011", "alibaba2018", "fathom"}

// LoadOptions tune Load.
type LoadOptions struct {
	// Priority is given to every task of a trace that has no priorities of
	// its own (Bitbrains). Default: batch, so that the scheduler may
	// oversubscribe them within the risk bound; prod tasks keep Σ limits
	// within capacity whatever the policy.
	Priority scheduler.Priority
	// PrioritySet says Priority was chosen (batch is not the zero value).
	PrioritySet bool
	// VMs selects Bitbrains VMs (zero: all).
	VMs trace.VMRange
}

// Load reads a trace file (or, for alibaba2018 and google2011, a file or a
// directory of the trace's files) into a workload.
func Load(path, format string, o LoadOptions) (*Workload, error) {
	if !o.PrioritySet {
		o.Priority = scheduler.Batch
	}
	switch format {
	case "bitbrains":
		series, err := LoadBitbrains(path, o.VMs)
		if err != nil {
			return nil, err
		}
		w, err := FromSeries(path, series, o.Priority)
		if err != nil {
			return nil, err
		}
		w.Assumptions = append(w.Assumptions, fmt.Sprintf("Bitbrains VMs carry no priority: every task is %s", o.Priority))
		return w, nil
	case "fathom":
		rows, err := readFathom(path)
		if err != nil {
			return nil, err
		}
		w, err := FromSeries(path, trace.FathomSeries(rows), o.Priority)
		if err != nil {
			return nil, err
		}
		prio := trace.FathomPriorities(rows)
		for i := range w.Tasks {
			if p, err := scheduler.ParsePriority(prio[w.Tasks[i].Key]); err == nil && !o.PrioritySet {
				w.Tasks[i].Priority = p
			}
		}
		return w, nil
	case "google2011":
		return loadGoogle(path)
	case "alibaba2018":
		return loadAlibaba(path)
	}
	return nil, fmt.Errorf("%w: trace format %q: use one of %s", ErrInvalid, format, strings.Join(Formats, ", "))
}

// LoadBitbrains reads a Bitbrains trace (the merged long CSV, gzipped or
// not, or a directory of raw per-VM files) into series, exactly as
// `fathom model eval --format bitbrains` does.
func LoadBitbrains(path string, vms trace.VMRange) ([]predictor.Series, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		samples, _, err := trace.ReadBitbrainsDir(path)
		if err != nil {
			return nil, err
		}
		return trace.BitbrainsSeries(func(yield func(trace.BitbrainsSample, error) bool) {
			for _, s := range samples {
				if !yield(s, nil) {
					return
				}
			}
		}, vms)
	}
	rc, err := trace.OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r, err := trace.NewBitbrainsReader(rc)
	if err != nil {
		return nil, err
	}
	series, err := trace.BitbrainsSeries(r.All(), vms)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return series, nil
}

// LoadFathomSeries reads a trace in Fathom's own format into series.
func LoadFathomSeries(path string) ([]predictor.Series, error) {
	rows, err := readFathom(path)
	if err != nil {
		return nil, err
	}
	return trace.FathomSeries(rows), nil
}

func readFathom(path string) ([]trace.FathomRow, error) {
	rc, err := trace.OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	rows, _, err := trace.ReadFathom(rc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rows, nil
}
