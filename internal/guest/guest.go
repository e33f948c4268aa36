// Package guest holds what VMs and containers share: the cluster-wide guest
// ID space, the index record every guest has, and race-free ID allocation.
package guest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/store"
)

// Guest IDs are 100..999999999, like Proxmox, so IDs below 100 stay free
// for the administrator's own conventions.
const (
	MinID = 100
	MaxID = 999999999
)

// reserveTTL is how long a nextid answer stays reserved for its caller.
const reserveTTL = 300 * time.Second

// Meta is the index record of one guest; the drivers keep their full
// configs elsewhere and keep this in step.
type Meta struct {
	VMID     int    `json:"vmid"`
	Type     string `json:"type"` // api.GuestVM or api.GuestContainer
	Node     string `json:"node"`
	Name     string `json:"name,omitempty"`
	Status   string `json:"status,omitempty"`
	Template bool   `json:"template,omitempty"`
	Tags     string `json:"tags,omitempty"`
	Pool     string `json:"pool,omitempty"`
}

type reservation struct {
	By string `json:"by"`
}

// Registry is the guest index.
type Registry struct {
	st       *store.Store
	Guests   *store.Collection[Meta]
	reserved *store.Collection[reservation]
	macs     macs
}

// NewRegistry returns the guest index over st.
func NewRegistry(st *store.Store) *Registry {
	return &Registry{st: st, Guests: store.NewCollection[Meta](st, "guests"), reserved: store.NewCollection[reservation](st, "guest-reservations")}
}

// Key turns a guest ID into its store ID (zero-padded so keys sort numerically).
func Key(vmid int) string { return fmt.Sprintf("%09d", vmid) }

// List returns every guest, ordered by ID.
func (r *Registry) List() []Meta {
	objs := r.Guests.List()
	out := make([]Meta, len(objs))
	for i, o := range objs {
		out[i] = o.Value
	}
	return out
}

// NextID reserves and returns the lowest free guest ID. The reservation is
// an etcd key bound to a lease, so two callers never get the same ID and
// an unused reservation expires by itself.
func (r *Registry) NextID(ctx context.Context, by string) (api.NextID, error) {
	used := map[int]bool{}
	for _, kv := range r.st.List(r.Guests.Prefix()) {
		if n, err := strconv.Atoi(kv.Key[len(r.Guests.Prefix()):]); err == nil {
			used[n] = true
		}
	}
	for _, kv := range r.st.List(r.reserved.Prefix()) {
		if n, err := strconv.Atoi(kv.Key[len(r.reserved.Prefix()):]); err == nil {
			used[n] = true
		}
	}
	cli := r.st.Client()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lease, err := cli.Grant(lctx, int64(reserveTTL/time.Second))
	if err != nil {
		return api.NextID{}, fmt.Errorf("reserve guest id: %w", err)
	}
	for id := MinID; id <= MaxID; id++ {
		if used[id] {
			continue
		}
		op, err := r.reserved.PutOp(Key(id), reservation{By: by}, 0)
		if err != nil {
			return api.NextID{}, err
		}
		op.Lease = lease.ID
		guard := store.Op{Key: r.Guests.Key(Key(id)), Rev: 0, Delete: true}
		_, err = r.st.Apply(lctx, op, guard)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
			continue // taken since we looked: try the next one
		}
		if err != nil {
			return api.NextID{}, fmt.Errorf("reserve guest id: %w", err)
		}
		return api.NextID{VMID: id, Expires: time.Now().Add(reserveTTL).UTC()}, nil
	}
	return api.NextID{}, errs.Conflict("no free guest ID")
}

// Power names a guest kind's power actions and states for CheckPower.
type Power struct {
	Kind    string   // "VM" or "container", for messages
	Running []string // actions that need it running (not stopped)
	Paused  string   // the state resume needs: "paused" (QEMU) or "frozen" (LXC)
}

// CheckPower says whether action may start on a guest in state: the
// preconditions both drivers share, so a VM and a container refuse the
// same way.
func (p Power) CheckPower(vmid int, action, state string, template bool) error {
	switch {
	case action == "start":
		if state != "stopped" {
			return errs.Conflict("%s %d is already %s", p.Kind, vmid, state)
		}
		if template {
			return errs.Conflict("%s %d is a template; clone it instead", p.Kind, vmid)
		}
	case action == "resume":
		if state != p.Paused {
			return errs.Conflict("%s %d is not suspended (%s)", p.Kind, vmid, state)
		}
	case slices.Contains(p.Running, action):
		if state == "stopped" {
			return errs.Conflict("%s %d is not running", p.Kind, vmid)
		}
	default:
		return errs.Invalid("action", "unknown action %q", action)
	}
	return nil
}
