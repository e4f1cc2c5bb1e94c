package sim

import (
	"encoding/csv"
	"io"
	"strconv"
)

// TimeseriesHeader is the header of WriteTimeseries' CSV.
var TimeseriesHeader = []string{"time", "timestamp_s", "policy", "machines", "lower_bound", "cpu_usage_cores", "memory_usage_bytes",
	"cpu_requested_cores", "memory_requested_bytes", "overloaded_machines", "evictions", "reschedules", "pending_tasks"}

// WriteTimeseries writes one CSV row per policy per window.
func WriteTimeseries(w io.Writer, pts []Point) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(TimeseriesHeader); err != nil {
		return err
	}
	for _, p := range pts {
		if err := cw.Write([]string{p.Time.UTC().Format("2006-01-02T15:04:05Z"), strconv.FormatInt(p.Time.Unix(), 10), p.Policy,
			strconv.Itoa(p.Machines), strconv.Itoa(p.LowerBound), fnum(p.Usage.CPU), fnum(p.Usage.Memory),
			fnum(p.Requested.CPU), fnum(p.Requested.Memory), strconv.Itoa(p.Overloaded), strconv.Itoa(p.Evictions),
			strconv.Itoa(p.Reschedules), strconv.Itoa(p.Pending)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// TaskSeriesHeader is the header of WriteTaskSeries' CSV.
var TaskSeriesHeader = []string{"time", "timestamp_s", "policy", "task", "cpu_usage_cores", "cpu_request_cores", "cpu_limit_cores",
	"memory_usage_bytes", "memory_request_bytes", "memory_limit_bytes"}

// WriteTaskSeries writes one CSV row per sample task per policy per window.
func WriteTaskSeries(w io.Writer, pts []TaskPoint) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(TaskSeriesHeader); err != nil {
		return err
	}
	for _, p := range pts {
		if err := cw.Write([]string{p.Time.UTC().Format("2006-01-02T15:04:05Z"), strconv.FormatInt(p.Time.Unix(), 10), p.Policy, p.Task,
			fnum(p.Usage.CPU), fnum(p.Request.CPU), fnum(p.Limit.CPU),
			fnum(p.Usage.Memory), fnum(p.Request.Memory), fnum(p.Limit.Memory)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func fnum(v float64) string { return strconv.FormatFloat(v, 'g', 7, 64) }
