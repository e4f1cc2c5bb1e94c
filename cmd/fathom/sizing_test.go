package main

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/server"
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

// TestViolationBudgetReachesTheServersPredictor: `fathom server
// --violation-budget` is the budget the right-sizer's fleet steers to, the
// default when not given, and a bad one is refused by the flag parser.
func TestViolationBudgetReachesTheServersPredictor(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want models.ViolationBudget
	}{
		{nil, models.DefaultViolationBudget()},
		{[]string{"--violation-budget", "cpu=1%"}, models.ViolationBudget{CPU: 0.01, Memory: models.DefaultViolationBudget().Memory}},
		{[]string{"--violation-budget", "cpu=0.002,memory=0.0001"}, models.ViolationBudget{CPU: 0.002, Memory: 0.0001}},
	} {
		var c sizingConfig
		f := pflag.NewFlagSet("t", pflag.ContinueOnError)
		c.bind(f)
		if err := f.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var o server.Options
		if err := c.apply(&o, nil, "http://127.0.0.1:9", nil); err != nil {
			t.Fatal(err)
		}
		pool := o.RightSizer.Predictor().BudgetPool()
		if pool == nil {
			t.Fatalf("%v: the server's predictor has no budget pool", tc.args)
		}
		if got := pool.Budget(); got != tc.want {
			t.Errorf("%v: the server's fleet steers to %v, want %v", tc.args, got, tc.want)
		}
	}
	var c sizingConfig
	f := pflag.NewFlagSet("t", pflag.ContinueOnError)
	f.SetOutput(io.Discard)
	c.bind(f)
	if err := f.Parse([]string{"--violation-budget", "memory=0"}); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Errorf("memory=0 parsed (%v); want an error naming memory", err)
	}
}
