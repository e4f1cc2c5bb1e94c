package agent

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// serveLogs answers GET /v1/tasks/{task_id}/logs?follow=true&tail=N with the
// task's combined stdout and stderr. tail=N starts N lines from the end;
// follow=true keeps the response open and streams new output until the task
// is no longer running (and its output is drained) or the client goes away.
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
	f, err := os.Open(a.exec.LogPath(id))
	if err != nil {
		if _, known := a.exec.Status(id); known {
			f = nil // known task without output yet
		} else {
			http.Error(w, "no task "+strconv.Quote(id)+" on this node", http.StatusNotFound)
			return
		}
	}
	if f != nil {
		defer f.Close()
		if tail >= 0 {
			if _, err := f.Seek(tailOffset(f, tail), io.SeekStart); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if f != nil {
		_, _ = io.Copy(w, f)
	}
	if !follow {
		return
	}
	flusher, _ := w.(http.Flusher)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		if f == nil {
			if f, err = os.Open(a.exec.LogPath(id)); err != nil {
				f = nil
			} else {
				defer f.Close()
			}
		}
		n := int64(0)
		if f != nil {
			n, _ = io.Copy(w, f)
		}
		if st, ok := a.exec.Status(id); n == 0 && (!ok || st.State.Terminal()) {
			return
		}
	}
}

// tailOffset returns where the last n lines of f begin.
func tailOffset(f *os.File, n int) int64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	end := fi.Size()
	if n == 0 {
		return end
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
			return 0
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
				return pos + i + 1
			}
		}
	}
	return 0
}
