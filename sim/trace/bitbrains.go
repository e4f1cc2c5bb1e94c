package trace

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
)

// MHzPerCore converts the trace's MHz into cores: 1 core = 1000 MHz.
const MHzPerCore = 1000.0

// KiB is the size of the trace's "KB" unit in bytes.
const KiB = 1024.0

// BitbrainsSample is one row of a Bitbrains GWA-T-12 trace in Fathom units.
type BitbrainsSample struct {
	VM       int       // VM number (the per-VM file name, or the vm_id column)
	Time     time.Time // start of the ~5-minute measurement window
	Cores    int       // virtual cores
	CPUCap   float64   // provisioned CPU, cores (capacity MHz / 1000)
	CPUUsage float64   // mean CPU used in the window, cores
	MemCap   float64   // provisioned memory, bytes
	MemUsage float64   // memory used in the window, bytes
}

// BitbrainsStats counts what a reader read and what it dropped, and why.
type BitbrainsStats struct {
	Rows           int // data rows read
	Kept           int // rows yielded
	ZeroCapacity   int // dropped: cpu_cores = 0 or zero provisioned CPU/memory
	DuplicateTime  int // dropped: same VM and timestamp as an earlier row
	OutOfOrderTime int // dropped: timestamp before the VM's previous row
}

// ErrFormat is wrapped by every parse error of a trace file.
var ErrFormat = errors.New("trace: bad format")

// OpenFile opens a trace file, unwrapping gzip when the content is gzipped.
// The caller closes the returned ReadCloser.
func OpenFile(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := maybeGunzip(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{r, f}, nil
}

func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(2)
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return br, nil
}

// BitbrainsReader streams a Bitbrains trace. It accepts two layouts:
//
//   - the merged long CSV: a header
//     vm_id,timestamp_s,cpu_cores,cpu_capacity_provisioned_mhz,cpu_usage_mhz,memory_capacity_provisioned_kb,memory_usage_kb
//     then one row per VM per window;
//   - a raw per-VM GWA-T-12 file: a header starting "Timestamp [ms];CPU cores;"
//     and ';'-separated rows (tabs after separators allowed). Its VM number is
//     given by the caller (see ReadBitbrainsDir). Despite the header, the
//     published files hold Unix seconds; values above 1e11 are taken as ms.
//
// Rows with zero cores or zero provisioned capacity are dropped, and so are
// rows repeating (or going back before) a VM's previous timestamp; Stats
// counts them. Usage above provisioned is kept: it happened.
type BitbrainsReader struct {
	sc      *bufio.Scanner
	vm      int // VM number for per-VM files
	perVM   bool
	line    int
	last    map[int]int64
	stats   BitbrainsStats
	started bool
}

// NewBitbrainsReader reads the merged long CSV (or a per-VM file whose VM
// number is then 0; use NewBitbrainsVMReader to give it one). Gzip is
// detected and unwrapped.
func NewBitbrainsReader(r io.Reader) (*BitbrainsReader, error) {
	return NewBitbrainsVMReader(r, 0)
}

// NewBitbrainsVMReader is NewBitbrainsReader for a per-VM file of VM vm.
func NewBitbrainsVMReader(r io.Reader, vm int) (*BitbrainsReader, error) {
	rr, err := maybeGunzip(r)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(rr)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	return &BitbrainsReader{sc: sc, vm: vm, last: map[int]int64{}}, nil
}

// Stats returns the counts so far.
func (b *BitbrainsReader) Stats() BitbrainsStats { return b.stats }

// Next returns the next kept sample, or io.EOF at the end.
func (b *BitbrainsReader) Next() (BitbrainsSample, error) {
	if !b.started {
		b.started = true
		if !b.sc.Scan() {
			if err := b.sc.Err(); err != nil {
				return BitbrainsSample{}, err
			}
			return BitbrainsSample{}, io.EOF
		}
		b.line++
		h := strings.TrimSpace(b.sc.Text())
		switch {
		case strings.HasPrefix(h, "vm_id,timestamp_s,"):
		case strings.HasPrefix(h, "Timestamp [ms];"):
			b.perVM = true
		default:
			return BitbrainsSample{}, fmt.Errorf("%w: line 1: header %.60q is neither the merged Bitbrains CSV (vm_id,timestamp_s,...) nor a GWA-T-12 per-VM file (Timestamp [ms];...)", ErrFormat, h)
		}
	}
	for b.sc.Scan() {
		b.line++
		line := b.sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		b.stats.Rows++
		s, err := b.parse(line)
		if err != nil {
			return BitbrainsSample{}, fmt.Errorf("%w: line %d: %v", ErrFormat, b.line, err)
		}
		if s.Cores == 0 || s.CPUCap <= 0 || s.MemCap <= 0 {
			b.stats.ZeroCapacity++
			continue
		}
		ts := s.Time.Unix()
		if prev, ok := b.last[s.VM]; ok {
			if ts == prev {
				b.stats.DuplicateTime++
				continue
			}
			if ts < prev {
				b.stats.OutOfOrderTime++
				continue
			}
		}
		b.last[s.VM] = ts
		b.stats.Kept++
		return s, nil
	}
	if err := b.sc.Err(); err != nil {
		return BitbrainsSample{}, err
	}
	return BitbrainsSample{}, io.EOF
}

// All yields every kept sample; iteration stops at the first error, which
// is yielded with a zero sample.
func (b *BitbrainsReader) All() iter.Seq2[BitbrainsSample, error] {
	return func(yield func(BitbrainsSample, error) bool) {
		for {
			s, err := b.Next()
			if err == io.EOF {
				return
			}
			if !yield(s, err) || err != nil {
				return
			}
		}
	}
}

func (b *BitbrainsReader) parse(line []byte) (BitbrainsSample, error) {
	var f [11]string
	n := 0
	sep := byte(',')
	if b.perVM {
		sep = ';'
	}
	rest := string(line)
	for n < len(f) {
		i := strings.IndexByte(rest, sep)
		if i < 0 {
			f[n] = strings.TrimSpace(rest)
			n++
			break
		}
		f[n] = strings.TrimSpace(rest[:i])
		n++
		rest = rest[i+1:]
	}
	var s BitbrainsSample
	num := func(i int, what string) (float64, error) {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0, fmt.Errorf("field %d (%s) %q is not a number", i+1, what, f[i])
		}
		return v, nil
	}
	var vals [6]float64
	var ts float64
	var err error
	if b.perVM {
		if n < 7 {
			return s, fmt.Errorf("want at least 7 ';'-separated fields (Timestamp;CPU cores;CPU capacity;CPU usage MHz;CPU usage %%;Memory capacity;Memory usage), got %d", n)
		}
		s.VM = b.vm
		if ts, err = num(0, "Timestamp"); err != nil {
			return s, err
		}
		names := []string{"CPU cores", "CPU capacity provisioned [MHZ]", "CPU usage [MHZ]", "", "Memory capacity provisioned [KB]", "Memory usage [KB]"}
		for i, fi := range []int{1, 2, 3, -1, 5, 6} {
			if fi < 0 {
				continue
			}
			if vals[i], err = num(fi, names[i]); err != nil {
				return s, err
			}
		}
		vals[3] = vals[4]
		vals[4] = vals[5]
	} else {
		if n != 7 {
			return s, fmt.Errorf("want 7 comma-separated fields (vm_id,timestamp_s,cpu_cores,cpu_capacity_provisioned_mhz,cpu_usage_mhz,memory_capacity_provisioned_kb,memory_usage_kb), got %d", n)
		}
		vm, err := strconv.Atoi(f[0])
		if err != nil {
			return s, fmt.Errorf("vm_id %q is not an integer", f[0])
		}
		s.VM = vm
		if ts, err = num(1, "timestamp_s"); err != nil {
			return s, err
		}
		names := []string{"cpu_cores", "cpu_capacity_provisioned_mhz", "cpu_usage_mhz", "memory_capacity_provisioned_kb", "memory_usage_kb"}
		for i := range 5 {
			if vals[i], err = num(i+2, names[i]); err != nil {
				return s, err
			}
		}
	}
	if ts > 1e11 { // milliseconds
		ts /= 1000
	}
	s.Time = time.Unix(int64(ts), 0).UTC()
	s.Cores = int(vals[0])
	s.CPUCap = vals[1] / MHzPerCore
	s.CPUUsage = vals[2] / MHzPerCore
	s.MemCap = vals[3] * KiB
	s.MemUsage = vals[4] * KiB
	for i, v := range vals[:5] {
		if v < 0 {
			return s, fmt.Errorf("negative value %v in field %d", v, i+3)
		}
	}
	return s, nil
}

// ReadBitbrainsDir reads a directory of raw per-VM GWA-T-12 files named
// N.csv (as published: fastStorage/2013-8/1.csv, Rnd/2013-7/1.csv, ...),
// taking N as the VM number, and returns the samples of all of them in VM
// then time order, with the summed stats.
func ReadBitbrainsDir(dir string) ([]BitbrainsSample, BitbrainsStats, error) {
	var all []BitbrainsSample
	var st BitbrainsStats
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, st, err
	}
	for _, e := range ents {
		name := e.Name()
		base := strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), ".csv")
		vm, err := strconv.Atoi(base)
		if err != nil || e.IsDir() {
			continue
		}
		rc, err := OpenFile(filepath.Join(dir, name))
		if err != nil {
			return nil, st, err
		}
		r, err := NewBitbrainsVMReader(rc, vm)
		if err == nil {
			for s, e2 := range r.All() {
				if e2 != nil {
					err = fmt.Errorf("%s: %w", name, e2)
					break
				}
				all = append(all, s)
			}
		}
		rc.Close()
		if err != nil {
			return nil, st, err
		}
		rs := r.Stats()
		st.Rows += rs.Rows
		st.Kept += rs.Kept
		st.ZeroCapacity += rs.ZeroCapacity
		st.DuplicateTime += rs.DuplicateTime
		st.OutOfOrderTime += rs.OutOfOrderTime
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].VM != all[j].VM {
			return all[i].VM < all[j].VM
		}
		return all[i].Time.Before(all[j].Time)
	})
	return all, st, nil
}

// VMRange selects VMs by number, inclusive; the zero value selects all.
type VMRange struct{ From, To int }

// ParseVMRange parses "N", "A-B" or "" (all).
func ParseVMRange(s string) (VMRange, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return VMRange{}, nil
	}
	a, b, found := strings.Cut(s, "-")
	from, err1 := strconv.Atoi(strings.TrimSpace(a))
	to := from
	var err2 error
	if found {
		to, err2 = strconv.Atoi(strings.TrimSpace(b))
	}
	if err1 != nil || err2 != nil || from < 1 || to < from {
		return VMRange{}, fmt.Errorf("VM range %q: want N or A-B with 1 <= A <= B, e.g. 1-200", s)
	}
	return VMRange{from, to}, nil
}

// Contains reports whether vm is in the range.
func (r VMRange) Contains(vm int) bool {
	return r == (VMRange{}) || (vm >= r.From && vm <= r.To)
}

// BitbrainsSeries groups samples into one predictor.Series per VM (task
// "vm-NNN", namespace "bitbrains"), keeping VMs in rng. Each row becomes one
// window: the trace holds 5-minute means, so CPU mean and CPU peak are both
// the row's mean and memory peak is the row's usage. Provisioned sizes are
// kept per window for footprint figures.
func BitbrainsSeries(samples iter.Seq2[BitbrainsSample, error], rng VMRange) ([]predictor.Series, error) {
	byVM := map[int]*predictor.Series{}
	var order []int
	for s, err := range samples {
		if err != nil {
			return nil, err
		}
		if !rng.Contains(s.VM) {
			continue
		}
		ser, ok := byVM[s.VM]
		if !ok {
			ser = &predictor.Series{Task: predictor.TaskKey{Namespace: "bitbrains", Job: fmt.Sprintf("vm-%03d", s.VM), Task: 0}}
			byVM[s.VM] = ser
			order = append(order, s.VM)
		}
		ser.Windows = append(ser.Windows, models.Window{
			Start:   s.Time,
			CPU:     s.CPUUsage,
			CPUPeak: s.CPUUsage,
			Memory:  s.MemUsage,
		})
		ser.Provisioned = append(ser.Provisioned, models.Size{CPU: s.CPUCap, Memory: s.MemCap})
	}
	sort.Ints(order)
	out := make([]predictor.Series, 0, len(order))
	for _, vm := range order {
		out = append(out, *byVM[vm])
	}
	return out, nil
}

// SeriesHistory serves series held in memory as a predictor.History, so
// that the predictor can be driven from a trace exactly as from Prometheus.
type SeriesHistory map[predictor.TaskKey][]models.Window

// NewSeriesHistory indexes series by task.
func NewSeriesHistory(series []predictor.Series) SeriesHistory {
	h := SeriesHistory{}
	for _, s := range series {
		h[s.Task] = s.Windows
	}
	return h
}

// Windows implements predictor.History.
func (h SeriesHistory) Windows(_ context.Context, task predictor.TaskKey, from, to time.Time) ([]models.Window, error) {
	ws := h[task]
	i := sort.Search(len(ws), func(i int) bool { return !ws[i].Start.Before(from) })
	j := sort.Search(len(ws), func(i int) bool { return !ws[i].Start.Before(to) })
	if j < i {
		return nil, nil
	}
	return ws[i:j], nil
}

var _ predictor.History = SeriesHistory(nil)
