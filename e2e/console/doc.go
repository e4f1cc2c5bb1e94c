// Package console tests the web console end to end in a real browser:
// TestMain builds the real fathom binary (or uses $FATHOM_BIN), the test
// starts `fathom dev` (server, embedded etcd and TSDB, a local agent running
// tasks in cgroups), submits the examples, and drives Debian's headless
// Chromium through the console: the running job's name in the DOM, a chart
// drawn from real samples, the stop action. It skips when Chromium is absent
// (./scripts/deps.sh test installs it) and under -short.
//
// With FATHOM_SCREENSHOTS=DIR it writes the console's pages as PNG files
// there (make screenshots: docs/img/console-*.png).
//
//	go test ./e2e/console/ -v
package console
