// Package predictor turns a task's usage history into sizing
// recommendations, and measures how good those are.
//
// The pipeline (see README.md):
//
//	History ──windows──▶ Aggregate (raw samples → 5-minute windows)
//	        ──▶ models.Recommender per task (trained by replaying windows)
//	        ──▶ Recommendation{Request, Limit, Quantiles, Confidence, Model, Why}
//	OOM / eviction feedback ──▶ memory raised at once
//
// The package does no I/O, never reads the clock and uses no global
// randomness: history comes through the small History interface (a PromQL
// client in predictor/promhistory, a trace reader in sim/trace), and every
// call takes now. Evaluate replays series with no look-ahead and computes
// the published figures (slack, footprint, violations, severe violations,
// limit changes per task-day); the simulator uses the same Tally so that
// its figures are the same. Config.Budget and EvalOptions.Budget are the
// violation budget a Predictor's or an evaluation's fathom fleet steers
// to; Sweep compares fathom with the baselines at equal violations
// (`fathom model eval --sweep`, docs/predictor.md).
package predictor
