// Package store keeps Fathom's control-plane state in etcd through the official
// client (go.etcd.io/etcd/client/v3). By default it runs an embedded
// single-member etcd (go.etcd.io/etcd/server/v3/embed) in a data directory;
// with endpoints it uses an external etcd cluster.
//
// Durability: every write is a raft proposal that etcd commits to its WAL with
// fsync before the call returns, so a caller that acknowledges after a
// successful write never acknowledges something a crash can lose. Concurrent
// writes are batched by etcd into one raft entry batch and one fsync (group
// commit), which is what makes many small acknowledged writes fast.
//
// Key layout (all values are binary protobuf from api/gen/fathom/v1):
//
//	/fathom/v1/jobs/<namespace>/<job_id>      Job (spec and desired state)
//	/fathom/v1/jobnames/<namespace>/<name>    job id holding the name while the job is active
//	/fathom/v1/tasks/<job_id>/<index:06d>     Task (placement, observed state); absent = pending
//	/fathom/v1/nodes/<name>                   Node (registration, cordon/drain, up/down)
//	/fathom/v1/models/<namespace>/<job_name>  learned model state (predictor; reserved)
//	/fathom/v1/leader                         election prefix for HA (client/v3/concurrency)
//
// The layout is already what a three-server HA mode needs: all state is in
// etcd under one versioned prefix, ids do not depend on which server wrote
// them, and the leader key is reserved, so adding leader election changes no
// key and needs no migration.
package store
