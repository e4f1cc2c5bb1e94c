// Package trace reads public cluster traces into Fathom's own shapes, so that
// the predictor, the models and the simulator can be driven by real data.
//
// Readers stream: they yield one record at a time from an io.Reader (gzip is
// detected and unwrapped), so a month-long trace never has to sit in memory
// twice. Quirks of each trace are handled in the reader and counted, never
// hidden: every reader reports how many rows it dropped and why.
//
// Readers:
//
//   - Bitbrains GWA-T-12 (bitbrains.go): per-VM CPU and memory, provisioned
//     and used, every ~5 minutes, as the merged long CSV or the raw per-VM
//     files. Units are converted to Fathom's: CPU in cores (1 core =
//     1000 MHz) and memory in bytes (the trace's KB are KiB).
//     BitbrainsSeries groups it into predictor.Series; SeriesHistory serves
//     series as a predictor.History.
//   - Google cluster-usage 2011 task_events and task_usage (google2011.go,
//     googleusage.go), Alibaba 2018 machines, containers and batch tasks
//     (alibaba2018.go), and Fathom's own usage export (fathom.go).
package trace
