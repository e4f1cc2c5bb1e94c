// Package trace reads public cluster traces into Fathom's own shapes, so that
// the predictor, the models and the simulator can be driven by real data.
//
// Readers stream: they yield one record at a time from an io.Reader (gzip is
// detected and unwrapped), so a month-long trace never has to sit in memory
// twice. Quirks of each trace are handled in the reader and counted, never
// hidden: every reader reports how many rows it dropped and why.
//
// Bitbrains GWA-T-12 (bitbrains.go): per-VM CPU and memory, provisioned and
// used, every ~5 minutes. Units are converted to Fathom's: CPU in cores
// (1 core = 1000 MHz) and memory in bytes (the trace's KB are KiB).
package trace
