package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/access"
	"github.com/corral-project/corral/internal/guest"
	"github.com/corral-project/corral/internal/store"
)

// seedBatch keeps each transaction well under the store's MaxTxnOps (4096).
const seedBatch = 500

// openStore opens node n's store in this process. The daemon must be
// stopped: an etcd data dir can be used by one member process at a time.
// It reuses the daemon's peer URL, which is free while the daemon is down.
func openStore(ctx context.Context, n *node) (*store.Store, error) {
	if err := os.MkdirAll(n.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	st, err := store.Open(ctx, store.Config{
		Name:       nodeName,
		DataDir:    n.dataDir,
		ClientURL:  "unix://" + filepath.Join(n.dataDir, "bench-store.sock"),
		PeerURL:    n.peerURL,
		PeerSocket: filepath.Join(n.dataDir, "peer.sock"),
		// etcd's own warnings arrive through this logger too.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, fmt.Errorf("open store of %s: %w", n.label, err)
	}
	return st, nil
}

// guestMeta is the record of guest vmid: two thirds VMs, one third
// containers, a quarter stopped, some with tags, all on the bench node.
func guestMeta(vmid int) guest.Meta {
	m := guest.Meta{VMID: vmid, Type: api.GuestVM, Node: nodeName, Name: fmt.Sprintf("vm-%d.example.org", vmid), Status: "running"}
	if vmid%3 == 0 {
		m.Type, m.Name = api.GuestContainer, fmt.Sprintf("ct-%d", vmid)
	}
	if vmid%4 == 0 {
		m.Status = "stopped"
	}
	if vmid%10 == 0 {
		m.Tags = "prod;web"
	}
	return m
}

// seedGuests writes count guest records (IDs from guest.MinID) in batches,
// each batch one atomic create-only transaction.
func seedGuests(ctx context.Context, st *store.Store, count int) error {
	reg := guest.NewRegistry(st)
	ops := make([]store.Op, 0, seedBatch)
	for i := range count {
		vmid := guest.MinID + i
		op, err := reg.Guests.PutOp(guest.Key(vmid), guestMeta(vmid), 0)
		if err != nil {
			return err
		}
		ops = append(ops, op)
		if len(ops) == seedBatch || i == count-1 {
			if _, err := st.Apply(ctx, ops...); err != nil {
				return fmt.Errorf("seed guests up to %d: %w", vmid, err)
			}
			ops = ops[:0]
		}
	}
	if got := len(reg.List()); got != count {
		return fmt.Errorf("seeded %d guests but the store lists %d", count, got)
	}
	return nil
}

// breakdownRepeats is how often each in-process step is timed.
const breakdownRepeats = 30

// breakdown times, in this process and without HTTP, the steps that
// GET /cluster/resources performs, plus a raw etcd range read of the same
// keys. Each figure is the median of breakdownRepeats runs.
type breakdown struct {
	etcdRange  time.Duration // etcd Get of the guest prefix + JSON decode of every value
	listCold   time.Duration // first Guests.List() after open: decodes every value
	listWarm   time.Duration // later Guests.List(): decoded values are memoised
	aclChecks  time.Duration // a fresh Evaluator's Has("/vms/<id>", "VM.Audit") per guest
	encode     time.Duration // build []api.Resource (no checks) and encoding/json.Marshal it
	handler    time.Duration // the handler's whole loop: List, checks, rows, Marshal
	resources  int
	bodyBytes  int
	etcdValues int
}

// adminACL is the ACL a new cluster starts with: admin@corral is
// Administrator on "/", so every guest is visible, as in the API runs.
var adminACL = []api.ACLEntry{{Path: "/", User: "admin@corral", Role: access.RoleAdministrator, Propagate: true}}

// measureBreakdown re-enacts the resources handler step by step (see
// internal/server/h_cluster.go) so the report can say which step costs
// what. It mirrors the handler's logic; if the handler changes, so must this.
func measureBreakdown(ctx context.Context, st *store.Store) (breakdown, error) {
	var b breakdown
	reg := guest.NewRegistry(st)
	start := time.Now()
	b.resources = len(reg.List())
	b.listCold = time.Since(start)

	var err error
	if b.etcdRange, err = medianOf(func() error {
		n, err := etcdRangeDecode(ctx, st, reg.Guests.Prefix())
		b.etcdValues = n
		return err
	}); err != nil {
		return b, err
	}
	b.listWarm, _ = medianOf(func() error { reg.List(); return nil })
	guests := reg.List()
	b.aclChecks, _ = medianOf(func() error { countVisible(guests); return nil })
	if b.encode, err = medianOf(func() error {
		body, err := json.Marshal(toResources(guests, nil))
		b.bodyBytes = len(body)
		return err
	}); err != nil {
		return b, err
	}
	b.handler, err = medianOf(func() error {
		_, err := json.Marshal(toResources(reg.List(), adminEvaluator()))
		return err
	})
	return b, err
}

// etcdRangeDecode reads every key under prefix straight from etcd
// (bypassing the store's cache) and decodes each value, returning the count.
func etcdRangeDecode(ctx context.Context, st *store.Store, prefix string) (int, error) {
	resp, err := st.Client().Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("etcd range read: %w", err)
	}
	for _, kv := range resp.Kvs {
		var env struct {
			Schema int        `json:"schema"`
			Data   guest.Meta `json:"data"`
		}
		if err := json.Unmarshal(kv.Value, &env); err != nil {
			return 0, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
	}
	return len(resp.Kvs), nil
}

// adminEvaluator is a fresh evaluator for admin@corral, as every API
// request builds one: its per-path memo starts empty each time.
func adminEvaluator() *access.Evaluator {
	return access.NewEvaluator(adminACL, access.BuiltinRole, access.Principal{User: "admin@corral"}, nil)
}

// countVisible is the handler's permission check alone.
func countVisible(guests []guest.Meta) int {
	ev, n := adminEvaluator(), 0
	for _, g := range guests {
		if ev.Has("/vms/"+strconv.Itoa(g.VMID), "VM.Audit") {
			n++
		}
	}
	return n
}

// toResources maps guests to the API's resource rows like the handler,
// skipping those ev denies (ev nil: no permission check).
func toResources(guests []guest.Meta, ev *access.Evaluator) []api.Resource {
	out := []api.Resource{}
	for _, g := range guests {
		id := strconv.Itoa(g.VMID)
		if ev != nil && !ev.Has("/vms/"+id, "VM.Audit") {
			continue
		}
		out = append(out, api.Resource{ID: g.Type + "/" + id, Type: g.Type, Node: g.Node, VMID: g.VMID, Name: g.Name,
			Status: g.Status, Template: g.Template, Tags: g.Tags, Pool: g.Pool})
	}
	return out
}

// medianOf runs fn breakdownRepeats times and returns the median duration.
func medianOf(fn func() error) (time.Duration, error) {
	ds := make([]time.Duration, 0, breakdownRepeats)
	for range breakdownRepeats {
		start := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	return median(ds), nil
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// measureStoreWrites is the anchor for the API write benchmark: the same
// comment update on the same users through store.Collection.Update, in
// this process, with the same embedded etcd underneath.
func (l *lab) measureStoreWrites(ctx context.Context, st *store.Store) ([]writeResult, error) {
	users := store.NewCollection[api.User](st, "access/users")
	update := func(ctx context.Context, w, seq int) error {
		_, err := users.Update(ctx, benchUser(w), "", func(u *api.User) error {
			u.Comment = fmt.Sprintf("store write %d/%d", w, seq)
			return nil
		})
		return err
	}
	return l.writeSeries(ctx, "store Collection.Update", update)
}
