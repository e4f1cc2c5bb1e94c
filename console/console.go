package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// CSP allows only the console's own origin: its scripts, styles and the API
// it calls. No inline script or style, no frames, no third-party hosts.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	body  []byte
	etag  string
	ctype string
}

var (
	loadOnce sync.Once
	assets   map[string]asset // "/index.html", "/assets/app.js", ...
)

func load() {
	assets = map[string]asset{}
	root, _ := fs.Sub(static, "static")
	_ = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) { // not left to the machine's mime.types
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		assets["/"+p] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ct}
		return nil
	})
}

// Handler serves the console: /assets/* from the embedded files, and
// index.html for any other path a browser navigates to. Only GET and HEAD.
func Handler() http.Handler {
	loadOnce.Do(load)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "the console serves only GET and HEAD; the API is under /v1/", http.StatusMethodNotAllowed)
			return
		}
		p := path.Clean("/" + r.URL.Path)
		a, ok := assets[p]
		// "/" is the console for anyone (curl of the printed URL too); a
		// deeper path only for a browser navigation, so that an API client
		// with a wrong path gets a 404 that says where things are.
		if !ok && (p == "/" || !strings.HasPrefix(p, "/assets/") && acceptsHTML(r)) {
			a, ok = assets["/index.html"]
		}
		if !ok {
			http.Error(w, "404 page not found (the web console is at /, the API under /v1/)", http.StatusNotFound)
			return
		}
		h.Set("Content-Type", a.ctype)
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		// Revalidate every time (the ETag makes that a 304): a new server
		// version must never run with an old module cached beside a new one.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

// acceptsHTML reports whether r is a browser navigation (or anything else
// that takes HTML), as opposed to an API client.
func acceptsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if mt == "text/html" || mt == "application/xhtml+xml" {
			return true
		}
	}
	return false
}

// URL is the console's address for an API base URL ("http://127.0.0.1:7070"),
// signed in with token when it is not empty: the token travels in the URL
// fragment (#token=...), which browsers never send to the server; the
// console stores it for the tab and strips it from the address bar.
func URL(base, token string) string {
	u := strings.TrimRight(base, "/") + "/"
	if token != "" {
		u += "#token=" + url.QueryEscape(token)
	}
	return u
}
