// Package models holds Fathom's learned models and their persisted form.
//
// A recommender is fed a task's usage one 5-minute Window at a time, in time
// order, and asked for a size at time t; it answers from the windows it was
// fed, so when the caller feeds only windows that started before t there is
// no look-ahead. Recommenders do no I/O, never read the clock and use no
// global randomness: time comes in with every window and every question.
// Every recommender is a plain struct with exported fields, so its whole
// state round-trips through encoding/json (see Marshal and Unmarshal) and a
// server can persist it between leader changes.
//
// Recommenders (see README.md for the algorithms and their parameters):
//
//   - vpa: the Kubernetes VPA recommender (decaying exponential histograms,
//     p90 + 15%, one memory peak per 24 h, floors 25 mCPU / 250 MiB).
//   - autopilot: Google Autopilot's moving-window recommender (EuroSys 2020,
//     §3.2.2): CPU p95 of a 12 h half-life histogram, memory max over 48 h,
//     +10%, then the max of recommendations over the last hour.
//   - fathom: an ensemble in the spirit of Autopilot's ML recommender: many
//     candidate limits per resource, each scored per task by decayed
//     overrun, severe-overrun and size costs; the cheapest wins, behind a
//     deadband so limits change at most a few times a day.
//   - provisioned: what the owner asked for (the trace's own sizes); a
//     reference, not a predictor.
//
// ViolationBudget (budget.go) is the operator's knob: the share of
// task-windows whose usage may exceed the limit, per resource
// (ParseViolationBudget, DefaultViolationBudget: the one parser and
// default every command uses). A fleet's fathom recommenders steer to it
// through one BudgetPool (a fleet-wide overrun weight λ moved on the
// fleet's own misses); Factory builds such a fleet.
//
// ColdStart (coldstart.go) sizes a job with no history from the sizes
// learned for past jobs with golearn regression trees on its spec, served
// per resource only where its cross-validated error beats the baseline
// (Advise), its limit never below the spec's hint (ColdStartAdvice.Limit,
// the one place that rule lives).
//
// The registry encoding (RegistryEntry) describes a trained, versioned model
// with its evaluation figures, as the server stores it.
package models
