// Package console is Fathom's web console: static HTML, CSS and plain ES
// modules (no build step, no third-party code, no CDN, no web fonts),
// embedded in the binary and served by the control plane at /.
//
// The assets are public; everything the console shows comes from the public
// API it calls from the browser (REST under /v1/, the watch streams
// /v1/watch/jobs and /v1/watch/tasks, PromQL under /api/v1/), each call with
// the token the person signed in with (Authorization: Bearer). A token in the
// URL fragment (#token=SECRET, see URL) is stored in the tab's
// sessionStorage and removed from the address bar; a fragment never reaches
// the server or its logs. See docs/console.md.
//
// Handler serves /assets/* as files and every other GET a browser navigates
// to (Accept: text/html) as index.html, so that /jobs/ID and the other
// client-side routes survive a reload; a request that does not accept HTML
// (curl, an API client with a typo'd path) gets a plain 404.
package console
