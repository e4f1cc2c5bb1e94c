package agent

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestReconnectWithinTwoSeconds: while the control plane is away (every
// session fails at once), the agent tries again at least every 3 s (the 2 s
// cap with its jitter), never in a tight loop, and is back on the first try
// after the server returns: on virtual time, so the test runs in no time and
// waits on nothing.
func TestReconnectWithinTwoSeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		start := time.Now()
		back := start.Add(25 * time.Second) // the server returns after a 25 s outage
		var tries []time.Time
		var reconnected time.Time
		done := make(chan struct{})
		go func() {
			defer close(done)
			retrySessions(ctx, func(ctx context.Context) error {
				now := time.Now()
				tries = append(tries, now)
				if now.Before(back) {
					return errors.New("connection refused")
				}
				reconnected = now
				cancel()
				return nil
			}, func(error, time.Duration) {})
		}()
		<-done
		if len(tries) < 10 {
			t.Fatalf("%d tries in a 25 s outage; want one every few seconds", len(tries))
		}
		for i := 1; i < len(tries); i++ {
			if gap := tries[i].Sub(tries[i-1]); gap > 3*time.Second || gap < 250*time.Millisecond {
				t.Errorf("try %d came %s after the one before; want between 250 ms and 3 s", i, gap)
			}
		}
		if late := reconnected.Sub(back); late > 3*time.Second {
			t.Errorf("back %s after the server returned; want within 3 s", late)
		}
		t.Logf("%d tries during the outage; reconnected %s after the server returned", len(tries)-1, reconnected.Sub(back))
	})
}
