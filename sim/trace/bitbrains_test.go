package trace

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/predictor"
)

func openExcerpt(t *testing.T) *BitbrainsReader {
	t.Helper()
	rc, err := OpenFile("testdata/bitbrains-rnd-excerpt.csv.gz")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	r, err := NewBitbrainsReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBitbrainsExcerpt(t *testing.T) {
	r := openExcerpt(t)
	perVM := map[int]int{}
	var first BitbrainsSample
	for s, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		if perVM[s.VM] == 0 && s.VM == 1 {
			first = s
		}
		perVM[s.VM]++
	}
	st := r.Stats()
	if st.Rows != 2597 || st.ZeroCapacity != 6 || st.Kept != 2591 {
		t.Fatalf("stats %+v, want 2597 rows, 6 zero-capacity dropped, 2591 kept", st)
	}
	if perVM[14] != 0 || len(perVM) != 3 {
		t.Fatalf("VMs %v: want VMs 1-3 only (VM 14's rows are all zero capacity)", perVM)
	}
	// First row: 1,1372629804,2,5851.9989,87.7799835,8218624.0,1034592.8
	want := BitbrainsSample{VM: 1, Time: time.Unix(1372629804, 0).UTC(), Cores: 2,
		CPUCap: 5.8519989, CPUUsage: 0.0877799835, MemCap: 8218624 * 1024, MemUsage: 1034592.8 * 1024}
	if first.VM != want.VM || !first.Time.Equal(want.Time) || first.Cores != 2 ||
		!near(first.CPUCap, want.CPUCap) || !near(first.CPUUsage, want.CPUUsage) ||
		!near(first.MemCap, want.MemCap) || !near(first.MemUsage, want.MemUsage) {
		t.Fatalf("first sample %+v, want %+v", first, want)
	}
}

func near(a, b float64) bool { return a-b < 1e-9*max(1, b) && b-a < 1e-9*max(1, b) }

func TestBitbrainsDropsDuplicatesAndZeroCapacity(t *testing.T) {
	in := `vm_id,timestamp_s,cpu_cores,cpu_capacity_provisioned_mhz,cpu_usage_mhz,memory_capacity_provisioned_kb,memory_usage_kb
7,1000,2,4000,100,1024,512
7,1000,2,4000,900,1024,512
7,1300,0,0,0,0,0
7,1200,2,4000,100,1024,512
7,1100,2,4000,100,1024,512
7,1600,2,4000,5000,1024,2048
8,1000,1,2000,10,0,10
`
	r, err := NewBitbrainsReader(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []BitbrainsSample
	for s, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	st := r.Stats()
	if len(got) != 3 || st.DuplicateTime != 1 || st.ZeroCapacity != 2 || st.OutOfOrderTime != 1 {
		t.Fatalf("got %d samples, stats %+v; want 3 kept, 1 duplicate, 2 zero-capacity, 1 out of order", len(got), st)
	}
	if got[0].CPUUsage != 0.1 || got[2].CPUUsage != 5 || got[2].MemUsage != 2048*1024 {
		t.Fatalf("samples %+v: first duplicate must win; usage above capacity is kept", got)
	}
}

func TestBitbrainsPerVMFormat(t *testing.T) {
	in := "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage [%];\tMemory capacity provisioned [KB];\tMemory usage [KB];\tDisk read throughput [KB/s];\tDisk write throughput [KB/s];\tNetwork received throughput [KB/s];\tNetwork transmitted throughput [KB/s]\n" +
		"1376314846;\t4;\t11703.99824;\t10912.027692;\t93.233333;\t67108864;\t6129274.4;\t0;\t5.333;\t0.4;\t0.066\n" +
		"1376315146000;\t4;\t11703.99824;\t1000;\t8.5;\t67108864;\t6129274.4;\t0;\t5.333;\t0.4;\t0.066\n"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "42.csv"), []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	got, st, err := ReadBitbrainsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || st.Kept != 2 {
		t.Fatalf("got %d samples (%+v), want 2", len(got), st)
	}
	if got[0].VM != 42 || got[0].Cores != 4 || !near(got[0].CPUUsage, 10.912027692) || !near(got[0].MemCap, 67108864*1024) {
		t.Fatalf("first %+v", got[0])
	}
	if got[1].Time.Unix() != 1376315146 {
		t.Fatalf("millisecond timestamp read as %v, want 1376315146 s", got[1].Time.Unix())
	}
}

func TestBitbrainsBadInputNamesTheProblem(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a,b,c\n", "header"},
		{"vm_id,timestamp_s,cpu_cores,cpu_capacity_provisioned_mhz,cpu_usage_mhz,memory_capacity_provisioned_kb,memory_usage_kb\n1,2,3\n", "want 7 comma-separated fields"},
		{"vm_id,timestamp_s,cpu_cores,cpu_capacity_provisioned_mhz,cpu_usage_mhz,memory_capacity_provisioned_kb,memory_usage_kb\n1,2,x,4,5,6,7\n", "cpu_cores"},
	} {
		r, err := NewBitbrainsReader(strings.NewReader(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Next()
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("input %q: error %v, want ErrFormat mentioning %q", tc.in, err, tc.want)
		}
	}
	r, _ := NewBitbrainsReader(strings.NewReader(""))
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("empty input: %v, want io.EOF", err)
	}
}

func TestVMRange(t *testing.T) {
	r, err := ParseVMRange("201-250")
	if err != nil || !r.Contains(201) || !r.Contains(250) || r.Contains(200) || r.Contains(251) {
		t.Fatalf("201-250: %+v %v", r, err)
	}
	if all, _ := ParseVMRange(""); !all.Contains(7) {
		t.Fatal("empty range must select all")
	}
	for _, bad := range []string{"0-3", "5-2", "x", "1-"} {
		if _, err := ParseVMRange(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBitbrainsSeries(t *testing.T) {
	r := openExcerpt(t)
	ss, err := BitbrainsSeries(r.All(), VMRange{From: 2, To: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 2 || ss[0].Task.Job != "vm-002" || ss[1].Task.Job != "vm-003" {
		t.Fatalf("series %v", ss)
	}
	for _, s := range ss {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if len(s.Windows) < 800 || len(s.Provisioned) != len(s.Windows) {
			t.Fatalf("%s: %d windows, %d provisioned", s.Task, len(s.Windows), len(s.Provisioned))
		}
	}
}

func TestSeriesHistoryDrivesThePredictor(t *testing.T) {
	r := openExcerpt(t)
	ss, err := BitbrainsSeries(r.All(), VMRange{From: 1, To: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := NewSeriesHistory(ss)
	p, err := predictor.New(predictor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w := ss[0].Windows
	now := w[len(w)/2].Start
	n, err := p.Update(context.Background(), h, ss[0].Task, now)
	if err != nil {
		t.Fatal(err)
	}
	// Only windows that ended by now: no look-ahead.
	want := 0
	for _, x := range w {
		if !x.Start.Add(5 * time.Minute).After(now) {
			want++
		}
	}
	if n != want {
		t.Fatalf("fed %d windows, want %d complete ones", n, want)
	}
	rec, err := p.Recommend(ss[0].Task, now)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Limit.CPU <= 0 || rec.Limit.Memory <= 0 || rec.Limit.CPU > ss[0].Provisioned[0].CPU {
		t.Errorf("recommendation %+v", rec)
	}
}
