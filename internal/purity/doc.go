// Package purity holds the test that keeps Fathom's core packages pure:
// scheduler, predictor, models and controller do no I/O, never read the
// clock and never use global randomness (they take now and seeds), so that
// the server and the simulator drive the very same code and every decision
// replays.
package purity
