// Package controlplane holds end-to-end tests of the fathom binary's control
// plane: it builds cmd/fathom, runs `fathom server` and `fathom dev` as real
// processes with a real embedded etcd, kills them with SIGKILL, and talks to
// them over REST and through the CLI. Skipped with -short.
package controlplane
