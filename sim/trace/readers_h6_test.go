package trace

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func openTestdata(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestReadAlibabaMachines(t *testing.T) {
	ms, st, err := ReadAlibabaMachines(openTestdata(t, "alibaba2018-machine_meta-20rows.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 20 || st.Kept != 20 || len(ms) != 20 {
		t.Fatalf("rows %d kept %d len %d, want 20", st.Rows, st.Kept, len(ms))
	}
	// First row: m_1,0,219,17.0,96,100,USING
	m := ms[0]
	if m.ID != "m_1" || m.Time != 0 || m.FailureDomain1 != "219" || m.CPU != 96 || m.Memory != 100 || m.Status != "USING" {
		t.Fatalf("first machine %+v", m)
	}
	if ms[1].Time != 148984*time.Second {
		t.Fatalf("second row time %v, want 148984s", ms[1].Time)
	}
}

func TestReadAlibabaContainers(t *testing.T) {
	cs, _, err := ReadAlibabaContainers(openTestdata(t, "alibaba2018-container_meta-30rows.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// First row: c_1,m_2556,0,app_5052,started,400,400,1.56
	c := cs[0]
	if c.ID != "c_1" || c.Machine != "m_2556" || c.App != "app_5052" || c.Status != "started" || c.CPUReq != 4 || c.CPULimit != 4 || c.Memory != 1.56 {
		t.Fatalf("first container %+v (cpu must be converted from 1/100 core)", c)
	}
}

func TestReadAlibabaBatchTasks(t *testing.T) {
	bs, st, err := ReadAlibabaBatchTasks(openTestdata(t, "alibaba2018-batch_task-30rows.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 30 || st.Rows != 30 {
		t.Fatalf("got %d tasks from %d rows, want 30 (header skipped)", len(bs), st.Rows)
	}
	// First row: M1,1,j_1,1,Terminated,419912,419912,100,0.2
	b := bs[0]
	if b.Task != "M1" || b.Instances != 1 || b.Job != "j_1" || b.Status != "Terminated" || b.Start != 419912*time.Second || b.PlanCPU != 1 || b.PlanMem != 0.2 {
		t.Fatalf("first batch task %+v", b)
	}
}

func TestAlibabaBadRowsNameTheFix(t *testing.T) {
	_, _, err := ReadAlibabaContainers(strings.NewReader("c_1,m_1,0,app,started,abc,400,1\n"))
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "cpu_request") || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err = %v, want ErrFormat naming cpu_request on line 1", err)
	}
	_, _, err = ReadAlibabaMachines(strings.NewReader("m_1,0,1,2,96\n"))
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "want 7") {
		t.Fatalf("err = %v, want a field-count error", err)
	}
}

func TestReadGoogleUsage(t *testing.T) {
	us, st, err := ReadGoogleUsage(openTestdata(t, "google2011-task_usage-20rows.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 20 || len(us) != 20 {
		t.Fatalf("read %d rows, want 20", st.Rows)
	}
	// 600000000,900000000,3418309,0,4155527081,0.001562,0.06787,0.07568,...,0.06787(max_memory),...,0.03967(max_cpu_rate)
	u := us[0]
	if u.Start != 600*time.Second || u.End != 900*time.Second || u.Job != 3418309 || u.Index != 0 || u.Machine != 4155527081 ||
		u.CPU != 0.001562 || u.Memory != 0.06787 || u.Assigned != 0.07568 || u.MaxMemory != 0.06787 || u.MaxCPU != 0.03967 || u.Aggregate != 1 {
		t.Fatalf("first usage row %+v", u)
	}
	_, _, err = ReadGoogleUsage(strings.NewReader("600000000,300000000,1,0,1,0.1,0.1,0.1,0,0,0.1,0,0,0.1,0,0,0,0,1,0\n"))
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "before start_time") {
		t.Fatalf("err = %v, want end-before-start error", err)
	}
}

func TestFathomFormatRoundTrip(t *testing.T) {
	t0 := time.Unix(1700000000, 0).UTC()
	rows := []FathomRow{
		{Time: t0, Namespace: "team-a", Job: "web", Task: 0, Priority: "prod", CPU: 0.12, CPUPeak: 0.45, Memory: 134217728, CPURequest: 0.5, MemoryRequest: 268435456},
		{Time: t0.Add(5 * time.Minute), Namespace: "team-a", Job: "web", Task: 0, Priority: "prod", CPU: 0.2, Memory: 140000000, CPURequest: 0.5, MemoryRequest: 268435456},
		{Time: t0, Namespace: "team-a", Job: "batch", Task: 3, CPU: 1.5, Memory: 1e9},
	}
	var buf bytes.Buffer
	w := NewFathomWriter(&buf)
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	// A duplicate window is dropped and counted.
	if err := w.Write(rows[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), FathomHeader+"\n") {
		t.Fatalf("no header:\n%s", buf.String())
	}
	got, st, err := ReadFathom(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 4 || st.Kept != 3 || st.DuplicateTime != 1 {
		t.Fatalf("stats %+v, want 4 rows, 3 kept, 1 duplicate", st)
	}
	// Sorted by task: team-a/batch/3 before team-a/web/0.
	if got[0] != rows[2] || got[1] != rows[0] || got[2] != rows[1] {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, []FathomRow{rows[2], rows[0], rows[1]})
	}
	series := FathomSeries(got)
	if len(series) != 2 || len(series[1].Windows) != 2 || series[1].Provisioned[0].Memory != 268435456 || series[0].Provisioned != nil {
		t.Fatalf("series %+v", series)
	}
	if series[1].Windows[1].CPUPeak != 0.2 {
		t.Fatalf("a window without cpu_peak_cores must take the mean as its peak, got %v", series[1].Windows[1].CPUPeak)
	}
	if p := FathomPriorities(got); p[series[0].Task] != "prod" || p[series[1].Task] != "prod" {
		t.Fatalf("priorities %v, want prod (explicit and default)", p)
	}
}

func TestReadFathomErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a,b,c\n", "not Fathom's trace header"},
		{"", "no header line"},
		{FathomHeader + "\n1700000000,ns,job,0,urgent,1,,1,,\n", "priority \"urgent\""},
		{FathomHeader + "\n1700000000,ns,job,0,,,,1,,\n", "required"},
		{FathomHeader + "\nnow,ns,job,0,,1,,1,,\n", "timestamp_s"},
		{FathomHeader + "\n1700000000,ns,job,-1,,1,,1,,\n", "task"},
	} {
		_, _, err := ReadFathom(strings.NewReader(c.in))
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ReadFathom(%q) = %v, want ErrFormat mentioning %q", c.in, err, c.want)
		}
	}
	w := NewFathomWriter(&bytes.Buffer{})
	if err := w.Write(FathomRow{Job: "a,b"}); err == nil {
		t.Error("a job name with a comma must be refused")
	}
}
