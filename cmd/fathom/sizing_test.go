package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestUsageWindowTooShortIsRefused: a usage window under three of the
// agents' 1-s samples never fills; the flag is refused with a message that
// says what to use.
func TestUsageWindowTooShortIsRefused(t *testing.T) {
	for _, tc := range []struct {
		window string
		ok     bool
	}{{"1s", false}, {"2900ms", false}, {"3s", true}, {"10s", true}, {"5m", true}} {
		var c sizingConfig
		f := pflag.NewFlagSet("t", pflag.ContinueOnError)
		c.bind(f)
		if err := f.Parse([]string{"--usage-window", tc.window}); err != nil {
			t.Fatal(err)
		}
		err := c.validate()
		if (err == nil) != tc.ok {
			t.Errorf("--usage-window %s: %v; want ok=%v", tc.window, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "samples") {
			t.Errorf("--usage-window %s: %q does not say why", tc.window, err)
		}
	}
}
