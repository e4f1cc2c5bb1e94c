// Package logtail is the one rule for how much of a task's last output
// travels with its exit: the agent bounds what it reports, and the
// controller bounds again what it keeps in a failed task's reason (a report
// comes from the network). No I/O.
package logtail

import "strings"

// Bounds of the output kept.
const (
	MaxLines = 10
	MaxBytes = 1024
)

// Bound keeps at most the last MaxLines lines and MaxBytes bytes of s (cut
// at a line start where it can be), without a trailing newline.
func Bound(s string) string {
	s = strings.TrimRight(s, "\n")
	if len(s) > MaxBytes {
		s = s[len(s)-MaxBytes:]
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
		s = strings.ToValidUTF8(s, "")
	}
	if lines := strings.Split(s, "\n"); len(lines) > MaxLines {
		s = strings.Join(lines[len(lines)-MaxLines:], "\n")
	}
	return s
}
