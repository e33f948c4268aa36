package guest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/store"
	"github.com/corral-project/corral/internal/task"
)

// Record is what the guest core needs of a driver's stored record (the VM
// or container config with its pending changes, lock and snapshots).
type Record interface {
	// Meta is the record's entry in the guest index (ID, kind, node,
	// name, template, tags); Status is filled by the caller.
	Meta() Meta
	// LockName is the long operation holding the guest ("" when idle).
	LockName() string
	SetLockName(string)
	// Protected guests can't be destroyed until protection is cleared.
	Protected() bool
}

// Records is one guest kind's records in the store, with what every
// operation on a guest needs: lookup, ownership, a queue per guest, the
// compare-and-swap lock on the record and the guest index. The drivers
// (qemu, lxc) embed it and add what differs between the kinds.
//
// Two kinds of exclusion, on purpose:
//   - Queue: an in-process mutex per guest. Operations wait their turn for
//     as long as it takes, so parallel automation (clones of one template,
//     start after create) queues instead of failing on a lock timeout.
//   - the record's lock: a named, cluster-wide CAS lock for long
//     operations that change the guest itself (create, clone, snapshot,
//     disk moves). While it is held, other operations fail at once with
//     409 naming it, as on Proxmox, instead of queueing behind minutes of
//     work.
type Records[R any, P interface {
	*R
	Record
}] struct {
	Kind  string // "VM" or "container", in messages
	Node  string // this node
	St    *store.Store
	Coll  *store.Collection[R]
	Index *Registry
	Log   *slog.Logger

	queues sync.Map // vmid -> *sync.Mutex
}

// NewRecords returns the records of one guest kind kept in collection.
func NewRecords[R any, P interface {
	*R
	Record
}](kind, collection, node string, st *store.Store, index *Registry, log *slog.Logger) *Records[R, P] {
	return &Records[R, P]{Kind: kind, Node: node, St: st, Coll: store.NewCollection[R](st, collection), Index: index, Log: log}
}

// Queue serialises every operation on one guest on this node; it returns
// the unlock function. Callers wait as long as the operation before them
// takes.
func (r *Records[R, P]) Queue(vmid int) func() {
	l, _ := r.queues.LoadOrStore(vmid, &sync.Mutex{})
	l.(*sync.Mutex).Lock()
	return l.(*sync.Mutex).Unlock
}

// TryQueue takes the guest's queue only if no operation holds it: for
// background work (the stop poller) that must not wait behind, or race
// with, an operation in progress.
func (r *Records[R, P]) TryQueue(vmid int) (unlock func(), ok bool) {
	l, _ := r.queues.LoadOrStore(vmid, &sync.Mutex{})
	if !l.(*sync.Mutex).TryLock() {
		return nil, false
	}
	return l.(*sync.Mutex).Unlock, true
}

// Get loads one guest's record.
func (r *Records[R, P]) Get(vmid int) (store.Object[R], error) {
	o, err := r.Coll.Get(Key(vmid))
	if err != nil {
		return o, errs.NotFound("%s %d does not exist", r.Kind, vmid)
	}
	return o, nil
}

// List returns the records of node's guests (node == "" for all).
func (r *Records[R, P]) List(node string) []store.Object[R] {
	var out []store.Object[R]
	for _, o := range r.Coll.List() {
		if node == "" || P(&o.Value).Meta().Node == node {
			out = append(out, o)
		}
	}
	return out
}

// listWorkers bounds the conversions ListAs runs at once: converting a
// running guest asks its process (a QMP round trip, an lxc-info), and a
// list of many running guests should cost the slowest answer, not the sum.
const listWorkers = 16

// ListAs returns node's guests (node == "" for all) converted by f, in ID
// order; never nil, so an empty list encodes as []. f runs concurrently.
func ListAs[T, R any, P interface {
	*R
	Record
}](r *Records[R, P], node string, f func(store.Object[R]) T) []T {
	objs := r.List(node)
	out := make([]T, len(objs))
	sem := make(chan struct{}, listWorkers)
	var wg sync.WaitGroup
	for i, o := range objs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			out[i] = f(o)
			<-sem
		}()
	}
	wg.Wait()
	return out
}

// GetAs loads one guest converted by f.
func GetAs[T, R any, P interface {
	*R
	Record
}](r *Records[R, P], vmid int, f func(store.Object[R]) T) (T, error) {
	o, err := r.Get(vmid)
	if err != nil {
		var zero T
		return zero, err
	}
	return f(o), nil
}

// Status is a guest's state: asked of the driver (state) on its own node,
// the last state its node indexed elsewhere.
func (r *Records[R, P]) Status(o store.Object[R], state func(vmid int) string) string {
	m := P(&o.Value).Meta()
	if m.Node == r.Node {
		return state(m.VMID)
	}
	return r.IndexedStatus(m.VMID)
}

// Want is what an operation needs of a guest before its task starts.
type Want struct {
	Stopped     bool // not running (nor paused or frozen)
	NotTemplate bool
	Unprotected bool
}

// Prepare is the preamble of every operation on a guest: it loads a guest
// this node may operate on now (see Local) and checks want, with state the
// driver's view of its runtime state.
func (r *Records[R, P]) Prepare(vmid int, want Want, state func(vmid int) string) (store.Object[R], error) {
	o, err := r.Local(vmid)
	if err != nil {
		return o, err
	}
	rec := P(&o.Value)
	switch {
	case want.Unprotected && rec.Protected():
		return o, errs.Conflict("%s %d is protected; clear protection first", r.Kind, vmid)
	case want.NotTemplate && rec.Meta().Template:
		return o, errs.Conflict("%s %d is a template", r.Kind, vmid)
	case want.Stopped && state(vmid) != "stopped":
		return o, errs.Conflict("%s %d is running; stop it first", r.Kind, vmid)
	}
	return o, nil
}

// Owner returns the node a guest belongs to.
func (r *Records[R, P]) Owner(vmid int) (string, error) {
	o, err := r.Get(vmid)
	if err != nil {
		return "", err
	}
	return P(&o.Value).Meta().Node, nil
}

// NotOwner refuses an operation this node can't carry out: a guest's
// actions run on its node.
func (r *Records[R, P]) NotOwner(vmid int, node string) error {
	return errs.Conflict("%s %d belongs to node %s; send the request there", r.Kind, vmid, node)
}

// CheckIdle refuses operations while a long operation holds the guest.
func (r *Records[R, P]) CheckIdle(o store.Object[R]) error {
	if l := P(&o.Value).LockName(); l != "" {
		return errs.Conflict("%s %d is locked (%s)", r.Kind, P(&o.Value).Meta().VMID, l)
	}
	return nil
}

// Local loads a guest this node may operate on now: it exists, belongs
// here and no long operation holds it.
func (r *Records[R, P]) Local(vmid int) (store.Object[R], error) {
	o, err := r.Get(vmid)
	if err != nil {
		return o, err
	}
	if n := P(&o.Value).Meta().Node; n != r.Node {
		return o, r.NotOwner(vmid, n)
	}
	return o, r.CheckIdle(o)
}

// TakeLock sets the record's lock by compare-and-swap; it fails with 409
// when another operation holds it, on this node or any other.
func (r *Records[R, P]) TakeLock(ctx context.Context, vmid int, lock string) error {
	_, err := r.Coll.Update(ctx, Key(vmid), "", func(v *R) error {
		if l := P(v).LockName(); l != "" {
			return errs.Conflict("%s %d is locked (%s)", r.Kind, vmid, l)
		}
		P(v).SetLockName(lock)
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return errs.NotFound("%s %d does not exist", r.Kind, vmid)
	}
	return err
}

// ReleaseLock clears the record's lock if it is still lock. It is called
// when the operation ends, whatever the caller's context did meanwhile.
func (r *Records[R, P]) ReleaseLock(vmid int, lock string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.Coll.Update(ctx, Key(vmid), "", func(v *R) error {
		if P(v).LockName() == lock {
			P(v).SetLockName("")
		}
		return nil
	}); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.Log.Error("releasing guest lock failed", "kind", r.Kind, "vmid", vmid, "lock", lock, "err", err)
	}
}

// LockedTask runs fn as a task under the named record lock (and the
// guest's queue). The lock is released when fn returns or the task can't
// start.
func (r *Records[R, P]) LockedTask(ctx context.Context, tasks *task.Manager, vmid int, lock, typ, user string, fn func(ctx context.Context, l *task.Log) error) (string, error) {
	if err := r.TakeLock(ctx, vmid, lock); err != nil {
		return "", err
	}
	id, err := tasks.Start(ctx, typ, strconv.Itoa(vmid), user, func(ctx context.Context, l *task.Log) error {
		defer r.ReleaseLock(vmid, lock)
		defer r.Queue(vmid)()
		return fn(ctx, l)
	})
	if err != nil {
		r.ReleaseLock(vmid, lock)
	}
	return id, err
}

// SetIndex keeps the guest index (resource list, nextid) in step with a
// guest's config; status "" keeps the indexed status.
func (r *Records[R, P]) SetIndex(ctx context.Context, m Meta, status string) {
	_, err := r.Index.Guests.Update(ctx, Key(m.VMID), "", func(g *Meta) error {
		g.Name, g.Node, g.Template, g.Tags = m.Name, m.Node, m.Template, m.Tags
		if status != "" {
			g.Status = status
		}
		return nil
	})
	if err != nil {
		r.Log.Warn("guest index update failed", "kind", r.Kind, "vmid", m.VMID, "err", err)
	}
}

// IndexedStatus is the status another node last reported for its guest.
func (r *Records[R, P]) IndexedStatus(vmid int) string {
	if g, err := r.Index.Guests.Get(Key(vmid)); err == nil {
		return g.Value.Status
	}
	return "unknown"
}

// Remove deletes a guest's record and index entry in one transaction.
func (r *Records[R, P]) Remove(vmid int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.St.Apply(ctx, store.Op{Key: r.Coll.Key(Key(vmid)), Delete: true, Rev: -1},
		store.Op{Key: r.Index.Guests.Key(Key(vmid)), Delete: true, Rev: -1})
	if err != nil {
		return fmt.Errorf("remove %s %d: %w", r.Kind, vmid, err)
	}
	return nil
}

// Recovery is what a daemon start does with a lock a crash left behind.
type Recovery int

const (
	Idle     Recovery = iota // no lock
	HalfMade                 // create or clone never finished: the guest never existed
	Cleared                  // any other lock: its task is marked interrupted, the guest is usable
)

// RecoverLock decides, for a lock found on a record at start, what the
// crash means. A half-made guest is removed (with only the volumes named
// for its own ID); for every other lock the operations are written so that
// the record names what is on disk at every step, so clearing is safe.
func RecoverLock(lock string) Recovery {
	switch lock {
	case "":
		return Idle
	case "create", "clone":
		return HalfMade
	}
	return Cleared
}

// ClearLock drops whatever lock a record holds (after a crash).
func (r *Records[R, P]) ClearLock(ctx context.Context, vmid int) error {
	_, err := r.Coll.Update(ctx, Key(vmid), "", func(v *R) error { P(v).SetLockName(""); return nil })
	return err
}
