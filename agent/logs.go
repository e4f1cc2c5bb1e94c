package agent

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// serveLogs answers GET /v1/tasks/{task_id}/logs?follow=true&tail=N with the
// task's combined stdout and stderr, oldest rotated file first. tail=N starts
// N lines from the end; follow=true keeps the response open and streams new
// output until the task is no longer running (and its output is drained) or
// the client goes away. Both work across log rotations.
func (a *agentRuntime) serveLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("task_id")
	if id == "" || id == "." || id == ".." || bytes.ContainsAny([]byte(id), "/\x00") {
		http.Error(w, "task id must be a plain name", http.StatusBadRequest)
		return
	}
	tail := -1
	if v := r.URL.Query().Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, "tail must be a non-negative number of lines", http.StatusBadRequest)
			return
		}
		tail = n
	}
	follow := false
	if v := r.URL.Query().Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			http.Error(w, "follow must be true or false", http.StatusBadRequest)
			return
		}
		follow = b
	}
	c, err := a.exec.OpenLog(id, tail)
	if err != nil {
		if _, known := a.exec.Status(id); !known {
			http.Error(w, "no task "+strconv.Quote(id)+" on this node", http.StatusNotFound)
			return
		}
		// A known task without output yet: the cursor waits for the file.
	}
	defer c.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 64<<10)
	// done is judged before a drain, so output written before the task
	// ended is still sent.
	done := a.taskDone(id)
	var tick *time.Ticker
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return
		}
		if !follow || done {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		if tick == nil {
			tick = time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		done = a.taskDone(id)
	}
}

// taskDone reports whether no process runs for the task any more.
func (a *agentRuntime) taskDone(id string) bool {
	st, ok := a.exec.Status(id)
	return !ok || st.State.Terminal()
}

// LogCursor reads a task's output in order across rotations: first what is
// left of the rotated files it was opened on, then output.log, following it
// through later rotations. Not safe for concurrent use.
type LogCursor struct {
	path    string
	t       *task // nil for a task the executor does not know (no rotation)
	pending []*os.File
	f       *os.File // output.log, nil until it exists
	rot     int64    // t.logRot when f's offset was last valid
}

// OpenLog returns a cursor on a task's output: the last tail lines (tail < 0:
// everything kept, oldest rotated file first). The error is for a log that
// does not exist (yet); the cursor is usable either way and picks the file
// up when it appears.
func (e *Executor) OpenLog(id string, tail int) (*LogCursor, error) {
	c := &LogCursor{path: e.LogPath(id)}
	e.mu.Lock()
	c.t = e.tasks[id]
	e.mu.Unlock()
	if c.t != nil {
		c.t.logMu.RLock()
		defer c.t.logMu.RUnlock()
		c.rot = c.t.logRot
	}
	f, err := os.Open(c.path)
	if err != nil {
		return c, err
	}
	c.f = f
	// Walk from output.log back through output.log.1, .2, ... until tail
	// lines are found (or every file is taken, for tail < 0).
	need := tail
	cur := f
	for i := 1; ; i++ {
		if tail >= 0 {
			off, found := tailOffset(cur, need)
			if _, err := cur.Seek(off, io.SeekStart); err != nil {
				return c, err
			}
			need -= found
			if need <= 0 {
				break
			}
		}
		older, err := os.Open(rotatedPath(c.path, i))
		if err != nil {
			break
		}
		c.pending = append([]*os.File{older}, c.pending...)
		cur = older
	}
	return c, nil
}

// Read reads the next output. It returns 0, io.EOF when it has caught up.
func (c *LogCursor) Read(p []byte) (int, error) {
	if c.t != nil {
		c.t.logMu.RLock()
		defer c.t.logMu.RUnlock()
		c.catchUp()
	}
	for len(c.pending) > 0 {
		n, err := c.pending[0].Read(p)
		if n > 0 {
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		c.pending[0].Close()
		c.pending = c.pending[1:]
	}
	if c.f == nil {
		f, err := os.Open(c.path)
		if err != nil {
			return 0, io.EOF
		}
		c.f = f
	}
	return c.f.Read(p)
}

// catchUp handles rotations since the last read (logMu held): the rest of
// what c.f was reading is now output.log.k for k rotations, followed by
// .k-1 ... .1 whole, then the emptied output.log from its start.
func (c *LogCursor) catchUp() {
	k := c.t.logRot - c.rot
	if k == 0 {
		return
	}
	c.rot = c.t.logRot
	if c.f == nil {
		return
	}
	off, _ := c.f.Seek(0, io.SeekCurrent)
	for i := k; i >= 1; i-- {
		f, err := os.Open(rotatedPath(c.path, int(i)))
		if err != nil {
			continue // rotated out of the kept files: lost to the reader
		}
		if i == k {
			_, _ = f.Seek(off, io.SeekStart)
		}
		c.pending = append(c.pending, f)
	}
	_, _ = c.f.Seek(0, io.SeekStart)
}

// Close releases the cursor's files.
func (c *LogCursor) Close() {
	for _, f := range c.pending {
		f.Close()
	}
	c.pending = nil
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

// tailOffset returns where the last n lines of f begin, and how many lines
// (at most n) lie after that offset.
func tailOffset(f *os.File, n int) (int64, int) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0
	}
	end := fi.Size()
	if n == 0 {
		return end, 0
	}
	buf := make([]byte, 8192)
	pos := end
	lines := 0
	// A final newline ends the last line; it does not start a new one.
	skipLast := true
	for pos > 0 {
		size := int64(len(buf))
		if pos < size {
			size = pos
		}
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil && err != io.EOF {
			return 0, lines
		}
		for i := size - 1; i >= 0; i-- {
			if buf[i] != '\n' {
				skipLast = false
				continue
			}
			if skipLast && pos+i == end-1 {
				skipLast = false
				continue
			}
			lines++
			if lines == n {
				return pos + i + 1, n
			}
		}
	}
	if end > 0 {
		lines++ // the first line, which no newline precedes
	}
	return 0, min(lines, n)
}
