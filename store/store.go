package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"google.golang.org/protobuf/proto"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// Prefix is the root of every Fathom key. The version segment lets a future
// incompatible layout live beside this one.
const Prefix = "/fathom/v1/"

// Key prefixes; see the package documentation for the layout.
const (
	JobsPrefix     = Prefix + "jobs/"
	JobNamesPrefix = Prefix + "jobnames/"
	TasksPrefix    = Prefix + "tasks/"
	NodesPrefix    = Prefix + "nodes/"
	CopiesPrefix   = Prefix + "copies/"
	// VersionsPrefix holds job versions: versions/<job id>/<version>.
	VersionsPrefix = Prefix + "versions/"
	ModelsPrefix   = Prefix + "models/"
	LeaderKey      = Prefix + "leader"
)

// JobKey is the key of a job.
func JobKey(namespace, id string) string { return JobsPrefix + namespace + "/" + id }

// JobNameKey is the key that reserves a job name in a namespace.
func JobNameKey(namespace, name string) string { return JobNamesPrefix + namespace + "/" + name }

// TaskKey is the key of task index idx of a job.
func TaskKey(jobID string, idx int32) string {
	return TasksPrefix + jobID + "/" + fmt.Sprintf("%06d", idx)
}

// VersionKey is the key of version v of a job (zero-padded, so keys sort
// by version).
func VersionKey(jobID string, v int64) string { return VersionsOfJob(jobID) + fmt.Sprintf("%010d", v) }

// VersionsOfJob is the prefix of a job's versions.
func VersionsOfJob(jobID string) string { return VersionsPrefix + jobID + "/" }

// NodeKey is the key of a node.
func NodeKey(name string) string { return NodesPrefix + name }

// TasksOfJob is the prefix of every task key of a job.
func TasksOfJob(jobID string) string { return TasksPrefix + jobID + "/" }

// CopyKey is the key of the copy of a task a node keeps (see
// fathomv1.TaskCopy).
func CopyKey(taskID, node string) string { return CopiesPrefix + taskID + "/" + node }

// ErrNameTaken is returned by CreateJob when an active job already holds the
// name in the namespace.
var ErrNameTaken = errors.New("job name already in use in this namespace")

// ErrIDTaken is returned by CreateJob when the job id already exists (a
// random-id collision; the caller picks a new id and retries).
var ErrIDTaken = errors.New("job id already exists")

// Options say where the state lives.
type Options struct {
	// DataDir holds the embedded etcd's data (in DataDir/etcd). Ignored when
	// Endpoints is set.
	DataDir string
	// Endpoints of an external etcd cluster; empty = run an embedded member.
	Endpoints []string
	// DialTimeout for external endpoints; default 5 s.
	DialTimeout time.Duration
	// MaxTxnOps caps the operations per transaction: default 128, etcd's
	// own default, for an external cluster; the embedded member is started
	// with 2048 and used with that. MaxTxnBytes caps a transaction's size:
	// default 1 MiB (etcd refuses requests over 1.5 MiB by default; the
	// embedded member is started with 8 MiB and used with 6 MiB).
	MaxTxnOps   int
	MaxTxnBytes int
	// EtcdLogLevel for the embedded member: debug, info, warn, error; default "error".
	EtcdLogLevel string
}

// Store is Fathom's state in etcd. Safe for concurrent use.
type Store struct {
	client   *clientv3.Client
	etcd     *embed.Etcd
	maxOps   int
	maxBytes int
}

// Open connects to external etcd or starts the embedded member and waits
// until it serves.
func Open(ctx context.Context, o Options) (*Store, error) {
	embedded := len(o.Endpoints) == 0
	if o.MaxTxnOps <= 0 {
		o.MaxTxnOps = 128
		if embedded {
			o.MaxTxnOps = 2048
		}
	}
	if o.MaxTxnBytes <= 0 {
		o.MaxTxnBytes = 1 << 20
		if embedded {
			o.MaxTxnBytes = 6 << 20
		}
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	s := &Store{maxOps: o.MaxTxnOps, maxBytes: o.MaxTxnBytes}
	if len(o.Endpoints) > 0 {
		c, err := clientv3.New(clientv3.Config{Endpoints: o.Endpoints, DialTimeout: o.DialTimeout, Context: ctx})
		if err != nil {
			return nil, fmt.Errorf("store: connect to etcd %v: %w", o.Endpoints, err)
		}
		cctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
		defer cancel()
		if _, err := c.Get(cctx, LeaderKey); err != nil {
			c.Close()
			return nil, fmt.Errorf("store: etcd %v does not answer: %w", o.Endpoints, err)
		}
		s.client = c
		return s, nil
	}
	if o.DataDir == "" {
		return nil, errors.New("store: DataDir is required for the embedded etcd (or give Endpoints)")
	}
	dir := filepath.Join(o.DataDir, "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "fathom"
	cfg.Dir = dir
	cfg.LogLevel = o.EtcdLogLevel
	if cfg.LogLevel == "" {
		cfg.LogLevel = "error"
	}
	cfg.LogOutputs = []string{filepath.Join(o.DataDir, "etcd.log")}
	// Loopback only: the embedded member serves this process (through an
	// in-process client) and nobody else. Ports are picked free at start.
	cu, err := freeURL()
	if err != nil {
		return nil, err
	}
	pu, err := freeURL()
	if err != nil {
		return nil, err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	cfg.MaxTxnOps = uint(max(o.MaxTxnOps, 128))
	cfg.MaxRequestBytes = uint(max(o.MaxTxnBytes+o.MaxTxnBytes/3, 8<<20))
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("store: start embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("store: embedded etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("store: embedded etcd did not become ready in 60s (see etcd.log in the data dir)")
	}
	s.etcd = e
	s.client = v3client.New(e.Server)
	return s, nil
}

func freeURL() (*url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("store: pick a loopback port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return url.Parse("http://127.0.0.1:" + strconv.Itoa(port))
}

// Client is the etcd client, for leader election and watches.
func (s *Store) Client() *clientv3.Client { return s.client }

// Embedded reports whether this store runs its own etcd member.
func (s *Store) Embedded() bool { return s.etcd != nil }

// Close closes the client and stops the embedded member, if any.
func (s *Store) Close() error {
	err := s.client.Close()
	if s.etcd != nil {
		// The in-process client reports its own cancellation on close.
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		s.etcd.Close()
	}
	return err
}

// Op is one put or delete (of a key, or with Prefix of every key under it).
type Op struct {
	Key    string
	Value  []byte
	Delete bool
	Prefix bool
}

// Put returns an Op that stores m at key.
func Put(key string, m proto.Message) Op {
	b, err := proto.Marshal(m)
	if err != nil {
		// Marshalling our own generated messages cannot fail short of a bug.
		panic(fmt.Sprintf("store: marshal %T: %v", m, err))
	}
	return Op{Key: key, Value: b}
}

// Delete returns an Op that removes key.
func Delete(key string) Op { return Op{Key: key, Delete: true} }

// DeletePrefix returns an Op that removes every key under prefix.
func DeletePrefix(prefix string) Op { return Op{Key: prefix, Delete: true, Prefix: true} }

// PutJob stores a job.
func PutJob(j *fathomv1.Job) Op { return Put(JobKey(j.GetNamespace(), j.GetId()), j) }

// PutTask stores a task.
func PutTask(t *fathomv1.Task) Op { return Put(TaskKey(t.GetJobId(), t.GetIndex()), t) }

// PutNode stores a node.
func PutNode(n *fathomv1.Node) Op { return Put(NodeKey(n.GetName()), n) }

// PutCopy stores the copy of a task a node keeps.
func PutCopy(c *fathomv1.TaskCopy) Op { return Put(CopyKey(c.GetTaskId(), c.GetNode()), c) }

func toEtcd(o Op) clientv3.Op {
	if o.Delete && o.Prefix {
		return clientv3.OpDelete(o.Key, clientv3.WithPrefix())
	}
	if o.Delete {
		return clientv3.OpDelete(o.Key)
	}
	return clientv3.OpPut(o.Key, string(o.Value))
}

// Commit applies ops in transactions of at most MaxTxnOps operations and
// MaxTxnBytes bytes each. Each transaction is atomic; a large batch is not
// atomic as a whole, and ops are applied in order. When it returns nil all
// ops are committed (and, on etcd, fsync'd); rev is the etcd revision after
// the last transaction (0 when ops is empty).
//
// etcd refuses a transaction that names a key twice, so an op on a key that
// a later op of the same call changes again is dropped (the later one
// wins), and a prefix delete goes in a transaction of its own.
func (s *Store) Commit(ctx context.Context, ops ...Op) (rev int64, err error) {
	last := make(map[string]int, len(ops))
	for i, o := range ops {
		if !o.Prefix {
			last[o.Key] = i
		}
	}
	kept := ops[:0:0]
	for i, o := range ops {
		if o.Prefix || last[o.Key] == i {
			kept = append(kept, o)
		}
	}
	ops = kept
	for len(ops) > 0 {
		n, size := 0, 0
		for n < len(ops) && n < s.maxOps {
			sz := len(ops[n].Key) + len(ops[n].Value) + 16
			if n > 0 && (size+sz > s.maxBytes || ops[n].Prefix || ops[n-1].Prefix) {
				break
			}
			size += sz
			n++
		}
		eops := make([]clientv3.Op, n)
		for i, o := range ops[:n] {
			eops[i] = toEtcd(o)
		}
		resp, err := s.client.Txn(ctx).Then(eops...).Commit()
		if err != nil {
			return rev, fmt.Errorf("store: commit %d ops (%d bytes): %w", n, size, err)
		}
		rev = resp.Header.Revision
		ops = ops[n:]
	}
	return rev, nil
}

// Snapshot is the whole state as loaded at one etcd revision.
type Snapshot struct {
	Revision int64
	Jobs     []*fathomv1.Job
	Tasks    []*fathomv1.Task
	Nodes    []*fathomv1.Node
	Copies   []*fathomv1.TaskCopy
	// JobNames maps "<namespace>/<name>" to the job id holding it.
	JobNames map[string]string
}

// Load reads every job, task and node at one revision, in pages.
func (s *Store) Load(ctx context.Context) (*Snapshot, error) {
	snap := &Snapshot{JobNames: map[string]string{}}
	first, err := s.client.Get(ctx, LeaderKey)
	if err != nil {
		return nil, fmt.Errorf("store: load: %w", err)
	}
	snap.Revision = first.Header.Revision
	err = s.scan(ctx, JobsPrefix, snap.Revision, func(k, v []byte) error {
		j := &fathomv1.Job{}
		if err := proto.Unmarshal(v, j); err != nil {
			return fmt.Errorf("decode %s: %w", k, err)
		}
		snap.Jobs = append(snap.Jobs, j)
		return nil
	})
	if err == nil {
		err = s.scan(ctx, TasksPrefix, snap.Revision, func(k, v []byte) error {
			t := &fathomv1.Task{}
			if err := proto.Unmarshal(v, t); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			snap.Tasks = append(snap.Tasks, t)
			return nil
		})
	}
	if err == nil {
		err = s.scan(ctx, NodesPrefix, snap.Revision, func(k, v []byte) error {
			n := &fathomv1.Node{}
			if err := proto.Unmarshal(v, n); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			snap.Nodes = append(snap.Nodes, n)
			return nil
		})
	}
	if err == nil {
		err = s.scan(ctx, CopiesPrefix, snap.Revision, func(k, v []byte) error {
			c := &fathomv1.TaskCopy{}
			if err := proto.Unmarshal(v, c); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			snap.Copies = append(snap.Copies, c)
			return nil
		})
	}
	if err == nil {
		err = s.scan(ctx, JobNamesPrefix, snap.Revision, func(k, v []byte) error {
			snap.JobNames[string(k[len(JobNamesPrefix):])] = string(v)
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("store: load: %w", err)
	}
	return snap, nil
}

// scan visits every key under prefix at revision rev, 1,000 keys per request.
func (s *Store) scan(ctx context.Context, prefix string, rev int64, f func(k, v []byte) error) error {
	end := clientv3.GetPrefixRangeEnd(prefix)
	key := prefix
	for {
		resp, err := s.client.Get(ctx, key, clientv3.WithRange(end), clientv3.WithRev(rev),
			clientv3.WithLimit(1000), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			if err := f(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// KV is one stored key and its value.
type KV struct {
	Key   string
	Value []byte
}

// Get reads one key; ok is false when it is not stored.
func (s *Store) Get(ctx context.Context, key string) (value []byte, ok bool, err error) {
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("store: get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	return resp.Kvs[0].Value, true, nil
}

// List reads every key under prefix in key order (newest last), in pages.
func (s *Store) List(ctx context.Context, prefix string) ([]KV, error) {
	first, err := s.client.Get(ctx, prefix, clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", prefix, err)
	}
	var out []KV
	err = s.scan(ctx, prefix, first.Header.Revision, func(k, v []byte) error {
		out = append(out, KV{Key: string(k), Value: v})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", prefix, err)
	}
	return out, nil
}

// Last returns the greatest key under prefix (ok false: none).
func (s *Store) Last(ctx context.Context, prefix string) (key string, ok bool, err error) {
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return "", false, fmt.Errorf("store: last under %s: %w", prefix, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false, nil
	}
	return string(resp.Kvs[0].Key), true, nil
}

// Ping checks that etcd answers (a read of one key).
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.client.Get(ctx, LeaderKey)
	return err
}
