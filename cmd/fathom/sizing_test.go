package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestUsageWindowShorterThanAPushIsRefused: a usage window shorter than the
// agents' default push interval would hold at most one sample and never
// fill; the flag is refused with a message that says what to use.
func TestUsageWindowShorterThanAPushIsRefused(t *testing.T) {
	for _, tc := range []struct {
		window string
		ok     bool
	}{{"5s", false}, {"9s", false}, {"10s", true}, {"5m", true}} {
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
		if err != nil && !strings.Contains(err.Error(), "push interval") {
			t.Errorf("--usage-window %s: %q does not say why", tc.window, err)
		}
	}
}
