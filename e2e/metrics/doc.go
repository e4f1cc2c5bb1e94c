// Package e2emetrics holds end-to-end tests of Fathom's metrics path against
// real parts: Debian's prometheus (2.42) with its remote-write receiver and
// Fathom's recording rules, promtool against the embedded store, and (when the
// binaries exist) a Fathom server, agent and burn job pushing to a real
// Prometheus. Tests skip with a message naming what is missing; install it with
// `make deps-test` (scripts/deps.sh test).
package e2emetrics
