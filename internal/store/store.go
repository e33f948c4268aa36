// Package store is corral's cluster store: an embedded etcd member plus a
// typed layer over it. Every write is a compare-and-swap on the key's
// revision; reads come from a watch-fed in-memory copy so that hot paths
// (permission checks, the resource list) never wait on the network.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
)

// Prefix is the root of corral's keyspace; the version lets a future
// incompatible layout live beside this one during an upgrade.
const Prefix = "/corral/v1/"

// SecretPrefix holds keys that must never appear in API output.
const SecretPrefix = Prefix + "secret/"

var (
	// ErrConflict means the key changed since it was read (lost CAS).
	ErrConflict = errors.New("store: conflict: the object was changed concurrently")
	// ErrExists means a create found the key already present.
	ErrExists = errors.New("store: already exists")
	// ErrNotFound means the key is absent.
	ErrNotFound = errors.New("store: not found")
)

// Config says where and how the embedded member runs.
type Config struct {
	Name      string // member name, the node name
	DataDir   string // the store lives in DataDir/store
	ClientURL string // e.g. unix:///var/lib/corral/store.sock
	// PeerURL is the URL other members dial (advertised), e.g.
	// https://10.0.0.1:8008. With PeerSocket set the member itself listens
	// only there, a unix socket in the 0700 data dir; the node's cluster
	// channel (mutual TLS) carries peer traffic from the advertised address
	// to it. Without PeerSocket the member listens on PeerURL itself.
	PeerURL    string
	PeerSocket string
	// PeerTLS is the node certificate the member presents when it dials
	// other members; empty on a node that never had one.
	PeerTLS TLSFiles
	// Join, when set, starts a new member of an existing cluster (etcd's
	// initial-cluster-state "existing") instead of a new cluster, or a member
	// that is already part of one.
	Join *Join
	// Ready runs after the member serves and before the cache loads: a
	// joining learner waits there until it is promoted (a learner serves no
	// linearizable reads).
	Ready  func(ctx context.Context, e *embed.Etcd) error
	Logger *slog.Logger
}

// TLSFiles names a certificate, its key and the CA that signs its peers.
type TLSFiles struct{ CertFile, KeyFile, CAFile string }

// Join describes the cluster a new member enters.
type Join struct {
	// InitialCluster is etcd's name=peerURL list of every member, this one
	// included.
	InitialCluster string
	Token          string
}

// KV is one cached key.
type KV struct {
	Key       string
	Value     []byte
	ModRev    int64
	CreateRev int64
	Lease     int64

	decoded sync.Map // type name -> decoded value, memoised per revision
	digest  atomic.Pointer[string]
}

// Digest is the digest of the value, computed once per revision.
func (kv *KV) Digest() string {
	if d := kv.digest.Load(); d != nil {
		return *d
	}
	d := Digest(kv.Value)
	kv.digest.Store(&d)
	return d
}

// Store is the embedded etcd member, a client to it and the read cache.
type Store struct {
	etcd *embed.Etcd
	cli  *clientv3.Client
	log  *slog.Logger

	mu     sync.RWMutex
	cond   *sync.Cond
	data   map[string]*KV
	keys   []string // data's keys, sorted: List is a binary search, not a scan
	rev    int64
	closed bool

	subsMu sync.Mutex
	subs   map[int]chan Event
	nextID int

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Event is one change seen by the watch.
type Event struct {
	Key     string
	Value   []byte // nil on delete
	Deleted bool
	Rev     int64
	Prev    []byte // the value before this change; nil if the key was new (or compacted away)
}

// Open starts the embedded member, waits until it serves, loads the cache
// and starts the watch that keeps it current.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cu, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("store: client url: %w", err)
	}
	pu, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("store: peer url: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = filepath.Join(cfg.DataDir, "store")
	ec.ListenClientUrls = []url.URL{*cu}
	ec.AdvertiseClientUrls = []url.URL{*cu}
	if cu.Scheme == "unix" {
		// etcd insists on host:port in advertised URLs; a unix socket has
		// none, and nobody but this node uses it.
		adv := *cu
		adv.Host = "localhost:0"
		ec.AdvertiseClientUrls = []url.URL{adv}
	}
	ec.ListenPeerUrls = []url.URL{*pu}
	if cfg.PeerSocket != "" {
		// etcd takes a unix peer listener's path from the URL's host.
		ec.ListenPeerUrls = []url.URL{{Scheme: "unix", Host: cfg.PeerSocket}}
	}
	ec.AdvertisePeerUrls = []url.URL{*pu}
	ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	ec.InitialClusterToken = "corral"
	if cfg.Join != nil {
		ec.InitialCluster = cfg.Join.InitialCluster
		ec.InitialClusterToken = cfg.Join.Token
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	if cfg.PeerTLS.CertFile != "" {
		ec.PeerTLSInfo.CertFile = cfg.PeerTLS.CertFile
		ec.PeerTLSInfo.KeyFile = cfg.PeerTLS.KeyFile
		ec.PeerTLSInfo.TrustedCAFile = cfg.PeerTLS.CAFile
	}
	ec.MaxLearners = 3
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newEtcdLogger(log))
	ec.SnapshotCount = 10000
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	ec.QuotaBackendBytes = 2 << 30
	ec.MaxTxnOps = 4096
	ec.ListenMetricsUrls = nil
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("store: start etcd in %s: %w", ec.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("store: etcd failed while starting: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("store: waiting for etcd: %w", ctx.Err())
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("store: etcd not ready after 60s")
	}
	// Only this daemon may connect to its member: the sockets live in the
	// 0700 data dir, and are made owner-only as well.
	for _, u := range append(ec.ListenClientUrls, ec.ListenPeerUrls...) {
		if u.Scheme == "unix" {
			if err := os.Chmod(u.Host+u.Path, 0o600); err != nil {
				e.Close()
				return nil, fmt.Errorf("store: socket mode: %w", err)
			}
		}
	}
	if cfg.Ready != nil {
		if err := cfg.Ready(ctx, e); err != nil {
			e.Close()
			return nil, err
		}
	}
	s := &Store{etcd: e, cli: v3client.New(e.Server), log: log, data: map[string]*KV{}, subs: map[int]chan Event{}}
	s.cond = sync.NewCond(&s.mu)
	if err := s.load(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) load(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := s.cli.Get(cctx, Prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("store: initial load: %w", err)
	}
	s.mu.Lock()
	for _, kv := range resp.Kvs {
		s.data[string(kv.Key)] = &KV{Key: string(kv.Key), Value: kv.Value, ModRev: kv.ModRevision, CreateRev: kv.CreateRevision, Lease: kv.Lease}
	}
	s.rebuildKeys()
	s.rev = resp.Header.Revision
	s.mu.Unlock()
	wctx, wcancel := context.WithCancel(context.Background())
	s.cancel = wcancel
	s.wg.Add(1)
	go s.watch(wctx, resp.Header.Revision+1)
	return nil
}

// watch applies every change to the cache and fans it out to subscribers.
// If the watch breaks (compaction, leader loss) it reloads and resumes.
func (s *Store) watch(ctx context.Context, from int64) {
	defer s.wg.Done()
	for ctx.Err() == nil {
		wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), Prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithPrevKV())
		for wr := range wch {
			if err := wr.Err(); err != nil {
				s.log.Warn("store watch interrupted", "err", err)
				break
			}
			var evs []Event
			s.mu.Lock()
			for _, ev := range wr.Events {
				k := string(ev.Kv.Key)
				var prev []byte
				if ev.PrevKv != nil {
					prev = ev.PrevKv.Value
				}
				if ev.Type == clientv3.EventTypeDelete {
					if _, ok := s.data[k]; ok {
						delete(s.data, k)
						s.removeKey(k)
					}
					evs = append(evs, Event{Key: k, Deleted: true, Rev: ev.Kv.ModRevision, Prev: prev})
				} else {
					if _, ok := s.data[k]; !ok {
						s.insertKey(k)
					}
					s.data[k] = &KV{Key: k, Value: ev.Kv.Value, ModRev: ev.Kv.ModRevision, CreateRev: ev.Kv.CreateRevision, Lease: ev.Kv.Lease}
					evs = append(evs, Event{Key: k, Value: ev.Kv.Value, Rev: ev.Kv.ModRevision, Prev: prev})
				}
			}
			if wr.Header.Revision > s.rev {
				s.rev = wr.Header.Revision
			}
			from = s.rev + 1
			s.cond.Broadcast()
			s.mu.Unlock()
			s.publish(evs)
		}
		if ctx.Err() != nil {
			return
		}
		// Resync from scratch: the cache may have missed compacted events.
		time.Sleep(200 * time.Millisecond)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := s.cli.Get(rctx, Prefix, clientv3.WithPrefix())
		cancel()
		if err != nil {
			s.log.Warn("store resync failed", "err", err)
			continue
		}
		fresh := make(map[string]*KV, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			fresh[string(kv.Key)] = &KV{Key: string(kv.Key), Value: kv.Value, ModRev: kv.ModRevision, CreateRev: kv.CreateRevision, Lease: kv.Lease}
		}
		s.mu.Lock()
		s.data = fresh
		s.rebuildKeys()
		s.rev = resp.Header.Revision
		from = s.rev + 1
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

func (s *Store) publish(evs []Event) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for _, ch := range s.subs {
		for _, ev := range evs {
			select {
			case ch <- ev:
			default: // a slow subscriber loses events rather than stalling the cache
			}
		}
	}
}

// Subscribe returns a channel of changes under prefix until cancel is called.
func (s *Store) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, buffer)
	s.subsMu.Lock()
	id := s.nextID
	s.nextID++
	s.subs[id] = ch
	s.subsMu.Unlock()
	return ch, func() {
		s.subsMu.Lock()
		if _, ok := s.subs[id]; ok {
			delete(s.subs, id)
			close(ch)
		}
		s.subsMu.Unlock()
	}
}

// Close stops the watch, the client and the member.
func (s *Store) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.wg.Wait()
	if s.cli != nil {
		s.cli.Close()
	}
	if s.etcd != nil {
		s.etcd.Close()
	}
	return nil
}

// Client exposes the raw etcd client for leases and elections.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Healthy reports whether the member has a leader.
func (s *Store) Healthy() bool {
	return s.etcd != nil && s.etcd.Server.Leader() != 0
}

// waitRev blocks until the cache has applied revision rev, so a caller
// reads its own writes.
func (s *Store) waitRev(ctx context.Context, rev int64) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.cond.Broadcast()
			s.mu.Unlock()
		case <-done:
		}
	}()
	s.mu.Lock()
	for s.rev < rev && !s.closed && ctx.Err() == nil {
		s.cond.Wait()
	}
	s.mu.Unlock()
	close(done)
}

// Rev is the revision the cache has applied.
func (s *Store) Rev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rev
}

// Get returns a key from the cache.
func (s *Store) Get(key string) (*KV, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	kv, ok := s.data[key]
	return kv, ok
}

// List returns the cached keys under prefix, sorted by key.
func (s *Store) List(prefix string) []*KV {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := sort.SearchStrings(s.keys, prefix)
	j := i
	for j < len(s.keys) && strings.HasPrefix(s.keys[j], prefix) {
		j++
	}
	out := make([]*KV, j-i)
	for n, k := range s.keys[i:j] {
		out[n] = s.data[k]
	}
	return out
}

// The key index is kept under s.mu.

func (s *Store) rebuildKeys() {
	s.keys = s.keys[:0]
	for k := range s.data {
		s.keys = append(s.keys, k)
	}
	sort.Strings(s.keys)
}

func (s *Store) insertKey(k string) {
	i := sort.SearchStrings(s.keys, k)
	s.keys = append(s.keys, "")
	copy(s.keys[i+1:], s.keys[i:])
	s.keys[i] = k
}

func (s *Store) removeKey(k string) {
	i := sort.SearchStrings(s.keys, k)
	if i < len(s.keys) && s.keys[i] == k {
		s.keys = append(s.keys[:i], s.keys[i+1:]...)
	}
}

// Op is one write in an atomic batch.
type Op struct {
	Key    string
	Value  []byte
	Delete bool
	// Rev is the expected ModRev: 0 means "must not exist", -1 means "any".
	Rev   int64
	Lease clientv3.LeaseID
}

// Apply writes ops atomically: all compare-and-swap guards must hold or
// nothing is written and ErrConflict (or ErrExists) is returned. It returns
// the new revision once the cache has caught up with it.
func (s *Store) Apply(ctx context.Context, ops ...Op) (int64, error) {
	if len(ops) == 0 {
		return s.Rev(), nil
	}
	var cmps []clientv3.Cmp
	var thens []clientv3.Op
	for _, op := range ops {
		if !strings.HasPrefix(op.Key, Prefix) {
			return 0, fmt.Errorf("store: key %q outside keyspace", op.Key)
		}
		switch {
		case op.Rev == 0:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(op.Key), "=", 0))
		case op.Rev > 0:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(op.Key), "=", op.Rev))
		}
		if op.Delete {
			thens = append(thens, clientv3.OpDelete(op.Key))
		} else if op.Lease != 0 {
			thens = append(thens, clientv3.OpPut(op.Key, string(op.Value), clientv3.WithLease(op.Lease)))
		} else {
			thens = append(thens, clientv3.OpPut(op.Key, string(op.Value)))
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := s.cli.Txn(tctx).If(cmps...).Then(thens...).Commit()
	if err != nil {
		return 0, fmt.Errorf("store: write: %w", err)
	}
	if !resp.Succeeded {
		// A create guard that failed means the object exists: report that
		// rather than a generic conflict.
		for _, op := range ops {
			if op.Rev == 0 && !op.Delete {
				if g, err := s.cli.Get(tctx, op.Key, clientv3.WithCountOnly()); err == nil && g.Count > 0 {
					return 0, ErrExists
				}
			}
		}
		return 0, ErrConflict
	}
	s.waitRev(tctx, resp.Header.Revision)
	return resp.Header.Revision, nil
}
