package trace

// Small CSV helpers shared by the Alibaba, Google and Fathom readers: these
// traces quote nothing, so a split on commas is exact and much cheaper than
// encoding/csv.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"
)

// csvFields splits a simple CSV line (the Alibaba and Google traces quote
// nothing) into fields.
func csvFields(line []byte, want int, dst []string) ([]string, error) {
	dst = dst[:0]
	for {
		i := bytes.IndexByte(line, ',')
		if i < 0 {
			dst = append(dst, string(bytes.TrimSpace(line)))
			break
		}
		dst = append(dst, string(bytes.TrimSpace(line[:i])))
		line = line[i+1:]
	}
	if want > 0 && len(dst) != want {
		return dst, fmt.Errorf("want %d comma-separated fields, got %d", want, len(dst))
	}
	return dst, nil
}

func parseNum(s, what string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a number", what, s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%s %v is negative", what, v)
	}
	return v, nil
}

func seconds(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

// lineReader yields non-empty lines with their 1-based numbers, skipping a
// header line when skipHeader reports one.
func lineReader(r io.Reader, skipHeader func(first string) bool) (iter.Seq2[int, []byte], func() error, error) {
	rr, err := maybeGunzip(r)
	if err != nil {
		return nil, nil, err
	}
	sc := bufio.NewScanner(rr)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	seq := func(yield func(int, []byte) bool) {
		n := 0
		for sc.Scan() {
			n++
			b := sc.Bytes()
			if len(bytes.TrimSpace(b)) == 0 {
				continue
			}
			if n == 1 && skipHeader != nil && skipHeader(string(b)) {
				continue
			}
			if !yield(n, b) {
				return
			}
		}
	}
	return seq, sc.Err, nil
}

func isHeader(prefix string) func(string) bool {
	return func(first string) bool { return strings.HasPrefix(strings.TrimSpace(first), prefix) }
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
