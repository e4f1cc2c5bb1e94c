package console

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/fathom-scheduler/fathom/internal/browser"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerServesAssetsAndRoutes(t *testing.T) {
	h := Handler()
	html := map[string]string{"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}
	for _, p := range []string{"/", "/jobs/web-abc123", "/cluster", "/index.html"} {
		w := get(t, h, "GET", p, html)
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(w.Body.String(), `src="/assets/app.js"`) {
			t.Errorf("GET %s (browser): %d %s", p, w.Code, w.Header().Get("Content-Type"))
		}
		for k, want := range map[string]string{"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"} {
			if got := w.Header().Get(k); got != want {
				t.Errorf("GET %s: %s = %q, want %q", p, k, got, want)
			}
		}
	}
	w := get(t, h, "GET", "/assets/app.js", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || w.Header().Get("ETag") == "" {
		t.Fatalf("GET /assets/app.js: %d %q etag %q", w.Code, w.Header().Get("Content-Type"), w.Header().Get("ETag"))
	}
	if w2 := get(t, h, "GET", "/assets/app.js", map[string]string{"If-None-Match": w.Header().Get("ETag")}); w2.Code != http.StatusNotModified {
		t.Errorf("revalidation with the ETag: %d, want 304", w2.Code)
	}
	if w := get(t, h, "HEAD", "/assets/style.css", nil); w.Code != 200 || w.Header().Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("HEAD style.css: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	// "/" is the console without a browser's Accept too (curl of the URL
	// fathom dev prints).
	if w := get(t, h, "GET", "/", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `src="/assets/app.js"`) {
		t.Errorf("GET / without Accept: %d %q, want the console", w.Code, w.Header().Get("Content-Type"))
	}
	// Not a file, not a browser: a plain 404 that says where things are.
	for _, p := range []string{"/assets/nope.js", "/v2/jobs", "/jobs/x"} {
		accept := html
		if !strings.HasPrefix(p, "/assets/") {
			accept = map[string]string{"Accept": "application/json"}
		}
		if w := get(t, h, "GET", p, accept); w.Code != 404 || !strings.Contains(w.Body.String(), "the API under /v1/") {
			t.Errorf("GET %s: %d %q, want 404 naming the console and API", p, w.Code, w.Body.String())
		}
	}
	if w := get(t, h, "POST", "/", html); w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d allow %q, want 405", w.Code, w.Header().Get("Allow"))
	}
	if w := get(t, h, "GET", "/../../etc/passwd", html); w.Code != 200 || !strings.Contains(w.Body.String(), "<!doctype html>") {
		t.Errorf("GET /../../etc/passwd: %d, want the console page (paths are cleaned, nothing outside the assets)", w.Code)
	}
}

// TestAssetsAreSelfContained: nothing the console loads comes from another
// host (no CDN, no web font), and no script or style is inline (the CSP
// forbids them, so one would silently not run).
func TestAssetsAreSelfContained(t *testing.T) {
	root, err := fs.Sub(static, "static")
	if err != nil {
		t.Fatal(err)
	}
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	allowed := map[string]bool{"http://www.w3.org": true}
	n := 0
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		s := string(b)
		for _, m := range external.FindAllString(s, -1) {
			if !allowed[strings.ToLower(m)] {
				t.Errorf("%s refers to another host: %s", p, m)
			}
		}
		if strings.Contains(s, "@font-face") || strings.Contains(s, "@import") {
			t.Errorf("%s loads a font or stylesheet", p)
		}
		if strings.HasSuffix(p, ".html") {
			for _, bad := range []string{"<script>", "<style", " style=", " onclick=", "javascript:"} {
				if strings.Contains(s, bad) {
					t.Errorf("%s has inline code or style (%q), which the CSP blocks", p, bad)
				}
			}
		}
		return nil
	})
	if err != nil || n < 10 {
		t.Fatalf("walked %d assets: %v", n, err)
	}
}

func TestURL(t *testing.T) {
	for _, tc := range []struct{ base, token, want string }{
		{"http://127.0.0.1:7070", "", "http://127.0.0.1:7070/"},
		{"https://fathom.example:7070/", "s3cr+t/x", "https://fathom.example:7070/#token=s3cr%2Bt%2Fx"},
	} {
		if got := URL(tc.base, tc.token); got != tc.want {
			t.Errorf("URL(%q, %q) = %q, want %q", tc.base, tc.token, got, tc.want)
		}
	}
}

// authAPI stands in for the server's REST API, with the auth contract of
// issue 13 that the console must honour (Bearer tokens; 401 without a valid
// one, 403 with one that lacks the right), until the server enforces it;
// e2e/console runs the console against the real server. It records the
// requests it sees.
type authAPI struct {
	mu    sync.Mutex
	seen  []string // "METHOD path?query Authorization"
	push  chan string
	ready chan struct{}
}

func (a *authAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.seen = append(a.seen, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.Header.Get("Authorization") {
	case "Bearer good":
	case "Bearer team-b":
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"code":7,"message":"token of namespace team-b may not read jobs of every namespace"}`)
		return
	default:
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"code":16,"message":"missing or invalid token"}`)
		return
	}
	created := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	switch r.URL.Path {
	case "/v1/jobs":
		fmt.Fprintf(w, `{"jobs":[{"id":"alpha-1","name":"alpha","namespace":"team-a","state":"JOB_STATE_RUNNING","created_at":%q,"task_counts":{"running":2}}]}`, created)
	case "/v1/watch/jobs":
		f := w.(http.Flusher)
		fmt.Fprintf(w, `{"result":{"type":"EVENT_TYPE_EXISTING","job":{"id":"alpha-1","name":"alpha","namespace":"team-a","state":"JOB_STATE_RUNNING","created_at":%q}}}`+"\n", created)
		f.Flush()
		select {
		case a.ready <- struct{}{}:
		default:
		}
		for {
			select {
			case <-r.Context().Done():
				return
			case line := <-a.push:
				// Split the message across two writes: the reader must
				// join chunks into lines.
				half := len(line) / 2
				fmt.Fprint(w, line[:half])
				f.Flush()
				time.Sleep(50 * time.Millisecond)
				fmt.Fprint(w, line[half:]+"\n")
				f.Flush()
			}
		}
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"code":5,"message":"not here"}`)
	}
}

func (a *authAPI) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

func poll(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		txt, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: %v; the page says:\n%s", what, err, txt)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// TestAuthContract drives the console in headless Chromium: a token in the
// URL fragment signs in and leaves the address bar; every API call carries
// it as a Bearer token and no request carries it in its URL; the watch
// stream's lines are joined across chunks; 401 shows the login form; 403
// says "not allowed" with the server's message.
func TestAuthContract(t *testing.T) {
	ctx := browser.New(t, 1024, 768)
	log := browser.Record(ctx)
	api := &authAPI{push: make(chan string, 1), ready: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle("/", Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/#token=good")); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "the jobs page with alpha", `!!document.querySelector('#jobs-table tr[data-job="alpha-1"]')`)
	if got := eval[string](t, ctx, `location.href`); got != srv.URL+"/" {
		t.Errorf("address bar %q: the token fragment should be gone", got)
	}
	if got := eval[string](t, ctx, `sessionStorage.getItem('fathom.token')`); got != "good" {
		t.Errorf("sessionStorage token %q, want good", got)
	}
	select {
	case <-api.ready:
	case <-time.After(15 * time.Second):
		t.Fatal("the console did not open the jobs watch stream")
	}
	api.push <- `{"result":{"type":"EVENT_TYPE_CREATED","job":{"id":"beta-2","name":"beta","namespace":"team-a","state":"JOB_STATE_PENDING"}}}`
	poll(t, ctx, "beta, pushed on the stream in two chunks", `document.querySelector('#jobs-table tr[data-job="beta-2"] a')?.textContent === 'beta'`)
	var sawJobs, sawWatch bool
	for _, r := range api.requests() {
		if !strings.HasSuffix(r, " Bearer good") {
			t.Errorf("request without the token: %s", r)
		}
		if strings.Contains(strings.TrimSuffix(r, " Bearer good"), "good") {
			t.Errorf("the token reached the server in a URL: %s", r)
		}
		sawJobs = sawJobs || strings.HasPrefix(r, "GET /v1/jobs ")
		sawWatch = sawWatch || strings.HasPrefix(r, "GET /v1/watch/jobs ")
	}
	if !sawJobs || !sawWatch {
		t.Errorf("requests %q: want GET /v1/jobs and the watch", api.requests())
	}

	// No token: the login form. A token without the right: "not allowed".
	eval[bool](t, ctx, `sessionStorage.clear(), true`)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "the login form", `document.querySelector('main h1')?.textContent === 'Sign in' && document.activeElement?.id === 'token'`)
	if got := eval[string](t, ctx, `document.querySelector('label[for=token]').textContent`); got != "Access token" {
		t.Errorf("token input label %q", got)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys("#token", "team-b"+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "not allowed, with the server's message", `document.querySelector('#notice')?.textContent === 'Not allowed: token of namespace team-b may not read jobs of every namespace' && !document.querySelector('#notice').hidden`)

	// A refused token: back to the form, saying so.
	eval[bool](t, ctx, `sessionStorage.setItem('fathom.token', 'revoked'), true`)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/nodes")); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "login after a refused token", `document.querySelector('main h1')?.textContent === 'Sign in' && document.querySelector('main .error')?.textContent.includes('refused that token')`)
	if errs := log.Errors("401", "403", "Unauthorized", "Forbidden"); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestFormatModules runs the console's pure helpers in the browser.
func TestFormatModules(t *testing.T) {
	ctx := browser.New(t, 800, 600)
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/assets/favicon.svg")); err != nil {
		t.Fatal(err)
	}
	got := eval[map[string]any](t, ctx, `import('/assets/format.js').then(f => ({
		bytes: [f.bytes(0), f.bytes(512), f.bytes(3 << 10), f.bytes(12582912), f.bytes(45090000), f.bytes(25276973056), f.bytes("67108864"), f.bytes(-22020096)].join(' '),
		cores: [f.cores(0), f.cores(0.0002), f.cores(0.05), f.cores(1.23456), f.cores(-0.152)].join(' '),
		confidence: [f.confidence(0), f.confidence(0.0002), f.confidence(0.25)].join(' '),
		state: [f.stateName('JOB_STATE_RUNNING'), f.stateName('TASK_STATE_LOST'), f.stateName('NODE_STATE_UP')].join(' '),
		sum: JSON.stringify(f.sumSeries([{values: [[1, 1], [2, 2]]}, {values: [[1, 3], [2, 0]]}])),
		sumLimits: JSON.stringify(f.sumSeries([{values: [[1, 1], [2, 2], [3, 1]]}, {values: [[1, 3], [2, 0]]}], true)),
		ticks: f.niceTicks(0.26).join(' '),
		byteTicks: f.niceByteTicks(100 * 2 ** 20).map(f.bytes).join(' '),
		regex: f.promRegex('a.b-1'),
		pct: [f.pct(0.004), f.pct(0.5), f.pct(NaN)].join(' '),
	}))`)
	want := map[string]string{
		"bytes":      "- 512B 3Ki 12Mi 43.0Mi 23.5Gi 64Mi -21Mi",
		"cores":      "- <0.001 0.05 1.23 -0.152",
		"confidence": "- <0.01 0.25",
		"state":      "running lost up",
		"sum":        "[[1,4],[2,2]]",
		"sumLimits":  "[[1,4]]",
		"ticks":      "0 0.1 0.2 0.3",
		"byteTicks":  "- 32Mi 64Mi 96Mi 128Mi",
		"regex":      `a\.b-1`,
		"pct":        "<1% 50% -",
	}
	for k, w := range want {
		if fmt.Sprint(got[k]) != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	lines := eval[[]any](t, ctx, `import('/assets/api.js').then(a => { const out = []; const rest = a.splitLines('{"a":1}\n\n{"b"', l => out.push(l)); out.push('rest=' + rest); return out; })`)
	if fmt.Sprint(lines) != `[{"a":1} rest={"b"]` {
		t.Errorf("splitLines: %v", lines)
	}
}

// TestContrast checks the colour pairs the stylesheet uses for text (and
// for chart lines on the page background) against WCAG AA, 4.5:1, in the
// light and the dark scheme.
func TestContrast(t *testing.T) {
	css, err := fs.ReadFile(static, "static/assets/style.css")
	if err != nil {
		t.Fatal(err)
	}
	s := string(css)
	dark := strings.Index(s, "@media (prefers-color-scheme: dark)")
	if dark < 0 {
		t.Fatal("no dark scheme")
	}
	decl := regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-f]{6})`)
	scheme := func(part string) map[string]string {
		m := map[string]string{}
		for _, d := range decl.FindAllStringSubmatch(part, -1) {
			m[d[1]] = d[2]
		}
		return m
	}
	light := scheme(s[:dark])
	darkVars := scheme(s[dark:])
	for k, v := range light { // the dark block overrides what it names
		if _, ok := darkVars[k]; !ok {
			darkVars[k] = v
		}
	}
	pairs := [][2]string{{"fg", "bg"}, {"fg", "card"}, {"muted", "bg"}, {"muted", "card"}, {"link", "bg"}, {"link", "card"},
		{"ok-fg", "ok-bg"}, {"wait-fg", "wait-bg"}, {"bad-fg", "bad-bg"}, {"off-fg", "off-bg"},
		{"usage", "bg"}, {"request", "bg"}, {"limit", "bg"}, {"peak", "bg"}, {"focus", "bg"}}
	for name, vars := range map[string]map[string]string{"light": light, "dark": darkVars} {
		for _, p := range pairs {
			a, b := vars[p[0]], vars[p[1]]
			if a == "" || b == "" {
				t.Errorf("%s: --%s or --%s missing", name, p[0], p[1])
				continue
			}
			if r := contrast(a, b); r < 4.5 {
				t.Errorf("%s: --%s %s on --%s %s: contrast %.2f, want ≥ 4.5", name, p[0], a, p[1], b, r)
			}
		}
	}
}

func contrast(a, b string) float64 {
	lum := func(hex string) float64 {
		var c [3]float64
		for i := range c {
			var v int
			fmt.Sscanf(hex[1+2*i:3+2*i], "%02x", &v)
			x := float64(v) / 255
			if x <= 0.03928 {
				c[i] = x / 12.92
			} else {
				c[i] = math.Pow((x+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
	}
	la, lb := lum(a), lum(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}
