// Package browser starts Debian's headless Chromium for tests that drive the
// web console in a real browser (console's own tests, e2e/console and the
// screenshots of docs/img). A test calls New; when no Chromium is installed
// (scripts/deps.sh test installs it) the test skips and says how to get it.
package browser

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// Path is the Chromium binary New starts: $FATHOM_CHROMIUM, else chromium
// (or chromium-browser, google-chrome) on PATH. "" when there is none.
func Path() string {
	if p := os.Getenv("FATHOM_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium with a fresh profile and returns a chromedp
// context for one tab, closed at the end of the test. Width and height are
// the window's size in CSS pixels.
func New(t testing.TB, width, height int) context.Context {
	t.Helper()
	path := Path()
	if path == "" {
		t.Skip("no Chromium: install it with `./scripts/deps.sh test` (Debian package chromium) or set FATHOM_CHROMIUM")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		// The flags that make Chromium start quietly on a closed network
		// (no update, sync or safe-browsing connections) and as root.
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("force-color-profile", "srgb"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// The first action starts the browser, bound to the context it runs
	// with: run it on ctx itself, not on a shorter-lived child.
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("starting %s: %v", path, err)
	}
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	return ctx
}

// Log records a tab's console messages and uncaught exceptions.
type Log struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

// Record starts recording the console of ctx's tab (until ctx ends).
func Record(ctx context.Context) *Log {
	l := &Log{}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, m)
			l.mu.Unlock()
		}
	}()
	return l
}

// Errors returns the uncaught exceptions and console errors so far, except
// those whose text contains one of allow (say, a 401 the test provoked).
func (l *Log) Errors(allow ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, m := range l.msgs {
		if !m.IsException() && m.Type != chromedp.ConsoleError {
			continue
		}
		s := m.String()
		for _, a := range allow {
			if strings.Contains(s, a) {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// All returns every message so far, one per line.
func (l *Log) All() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, m := range l.msgs {
		b.WriteString(m.String())
		b.WriteByte('\n')
	}
	return b.String()
}
