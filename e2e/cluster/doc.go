// Package cluster holds Fathom's end-to-end tests: TestMain builds the real
// fathom binary (or uses $FATHOM_BIN), and each test starts a real server (embedded etcd and
// TSDB) and real agents running tasks in cgroups, then drives them over the
// REST API. Linux only; run as root for cgroup enforcement.
//
//	go test ./e2e/cluster/ -v
package cluster
