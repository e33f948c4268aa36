package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/store"
)

// record is a node's network configuration in the store
// (network/nodes/<node>).
type record struct {
	Configured []api.NetIface `json:"configured"`
	Pending    []api.NetIface `json:"pending,omitempty"`
	HasPending bool           `json:"has_pending,omitempty"`
}

// Service manages this node's declared interfaces: edits go to the pending
// configuration, Apply makes it running.
type Service struct {
	node string
	st   *store.Store
	coll *store.Collection[record]
	ns   *network.NS
	caps api.NetCaps
	mgmt net.IP // the node's management address, guarded by Apply
	log  *slog.Logger
	mu   sync.Mutex // one apply at a time on this node
}

// NewService works on ns (the daemon's namespace, or a test's). mgmt may be
// nil when the node has no fixed management address.
func NewService(st *store.Store, node string, ns *network.NS, caps api.NetCaps, mgmt net.IP, log *slog.Logger) *Service {
	return &Service{node: node, st: st, coll: store.NewCollection[record](st, "network/nodes"), ns: ns, caps: caps, mgmt: mgmt, log: log}
}

// Caps is what this node's kernel supports.
func (s *Service) Caps() api.NetCaps { return s.caps }

// load returns the node's record, seeding it from the host the first time so
// a new node shows its real network.
func (s *Service) load(ctx context.Context) (store.Object[record], error) {
	if o, err := s.coll.Get(s.node); err == nil {
		return o, nil
	}
	running, _, err := Read(s.ns)
	if err != nil {
		return store.Object[record]{}, err
	}
	if _, err := s.coll.Create(ctx, s.node, record{Configured: Seed(running)}); err != nil && !errors.Is(err, store.ErrExists) {
		return store.Object[record]{}, fmt.Errorf("network: seed %s: %w", s.node, err)
	}
	return s.coll.Get(s.node)
}

// Get returns the running, configured and pending state and the diff.
func (s *Service) Get(ctx context.Context) (api.NodeNetwork, error) {
	o, err := s.load(ctx)
	if err != nil {
		return api.NodeNetwork{}, err
	}
	running, routes, err := Read(s.ns)
	if err != nil {
		return api.NodeNetwork{}, err
	}
	out := api.NodeNetwork{Node: s.node, Running: running, Routes: routes, Configured: o.Value.Configured, Caps: s.caps, Digest: o.Digest}
	if o.Value.HasPending {
		out.Pending = o.Value.Pending
		if out.Pending == nil {
			out.Pending = []api.NetIface{}
		}
		out.Diff = Diff(o.Value.Configured, o.Value.Pending)
	}
	return out, nil
}

// Iface returns one interface: pending if it has a pending version, else
// configured, else as the host has it.
func (s *Service) Iface(ctx context.Context, name string) (api.NetIface, error) {
	n, err := s.Get(ctx)
	if err != nil {
		return api.NetIface{}, err
	}
	decl := n.Configured
	if n.Pending != nil {
		decl = n.Pending
	}
	if i := find(decl, name); i != nil {
		return *i, nil
	}
	if i := find(n.Running, name); i != nil && find(n.Configured, name) == nil {
		return *i, nil // present on the host, never declared
	}
	return api.NetIface{}, errs.NotFound("interface %s does not exist on node %s", name, s.node)
}

// edit changes the pending configuration (a copy of the configured one at
// the first edit) and validates the result before writing it.
func (s *Service) edit(ctx context.Context, ifMatch string, fn func(cfg []api.NetIface) ([]api.NetIface, error)) error {
	if _, err := s.load(ctx); err != nil {
		return err
	}
	running, _, err := Read(s.ns)
	if err != nil {
		return err
	}
	_, err = s.coll.Update(ctx, s.node, ifMatch, func(r *record) error {
		cfg := slices.Clone(r.Pending)
		if !r.HasPending {
			cfg = slices.Clone(r.Configured)
		}
		cfg, err := fn(cfg)
		if err != nil {
			return err
		}
		if err := Validate(cfg, s.caps, running); err != nil {
			return err
		}
		r.Pending, r.HasPending = cfg, true
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		return &errs.Error{Kind: errs.KindPrecondition, Msg: "the network configuration was changed by someone else; reload and retry"}
	}
	return err
}

// normalise keeps observed-only fields out of declarations.
func normalise(i api.NetIface) api.NetIface {
	i.Up, i.MAC, i.Master = false, "", ""
	return i
}

// Create declares a new interface (pending).
func (s *Service) Create(ctx context.Context, ifc api.NetIface) error {
	return s.edit(ctx, "", func(cfg []api.NetIface) ([]api.NetIface, error) {
		if find(cfg, ifc.Iface) != nil {
			return nil, errs.Conflict("interface %s is already declared", ifc.Iface)
		}
		return append(cfg, normalise(ifc)), nil
	})
}

// Update replaces an interface's declaration (pending). Declaring an
// existing NIC that isn't declared yet is allowed.
func (s *Service) Update(ctx context.Context, name, ifMatch string, ifc api.NetIface) error {
	ifc.Iface = name
	return s.edit(ctx, ifMatch, func(cfg []api.NetIface) ([]api.NetIface, error) {
		if p := find(cfg, name); p != nil {
			*p = normalise(ifc)
			return cfg, nil
		}
		return append(cfg, normalise(ifc)), nil
	})
}

// Delete removes an interface's declaration (pending): on apply, a virtual
// interface is deleted and a NIC loses its declared addresses.
func (s *Service) Delete(ctx context.Context, name, ifMatch string) error {
	return s.edit(ctx, ifMatch, func(cfg []api.NetIface) ([]api.NetIface, error) {
		if find(cfg, name) == nil {
			return nil, errs.NotFound("interface %s is not declared", name)
		}
		return slices.DeleteFunc(cfg, func(i api.NetIface) bool { return i.Iface == name }), nil
	})
}

// Revert drops the pending configuration.
func (s *Service) Revert(ctx context.Context) error {
	if _, err := s.load(ctx); err != nil {
		return err
	}
	_, err := s.coll.Update(ctx, s.node, "", func(r *record) error {
		r.Pending, r.HasPending = nil, false
		return nil
	})
	return err
}

// Apply makes the pending configuration running. It refuses (unless force)
// a configuration that would take the management address off the node, and
// rolls the host back if the kernel refuses any step.
func (s *Service) Apply(ctx context.Context, force bool) (api.NodeNetwork, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.load(ctx)
	if err != nil {
		return api.NodeNetwork{}, err
	}
	if !o.Value.HasPending {
		return api.NodeNetwork{}, errs.Conflict("nothing is pending on node %s", s.node)
	}
	running, _, err := Read(s.ns)
	if err != nil {
		return api.NodeNetwork{}, err
	}
	want := o.Value.Pending
	if err := Validate(want, s.caps, running); err != nil {
		return api.NodeNetwork{}, err
	}
	if !force {
		if msg := cutsManagement(s.mgmt, running, o.Value.Configured, want); msg != "" {
			return api.NodeNetwork{}, errs.Conflict("%s; apply with force to do it anyway", msg)
		}
	}
	if err := Apply(s.ns, o.Value.Configured, want); err != nil {
		return api.NodeNetwork{}, errs.Backend(fmt.Errorf("network apply on %s: %w", s.node, err))
	}
	// Written with the revision read above: an edit made meanwhile makes
	// this fail, and the edit stays pending over what is now running.
	op, err := s.coll.PutOp(s.node, record{Configured: want}, o.Rev)
	if err != nil {
		return api.NodeNetwork{}, err
	}
	if _, err := s.st.Apply(ctx, op); err != nil {
		if errors.Is(err, store.ErrConflict) {
			_, err = s.coll.Update(ctx, s.node, "", func(r *record) error { r.Configured = want; return nil })
		}
		if err != nil {
			return api.NodeNetwork{}, fmt.Errorf("network: record applied configuration: %w", err)
		}
	}
	s.log.Info("network configuration applied", "node", s.node, "interfaces", len(want))
	return s.Get(ctx)
}

// cutsManagement says why want would cut the management address off, or "".
func cutsManagement(mgmt net.IP, running, prev, want []api.NetIface) string {
	if mgmt == nil || mgmt.IsLoopback() {
		return ""
	}
	holder := ""
	for _, r := range running {
		if hasIP(r.Addresses, mgmt) {
			holder = r.Iface
		}
	}
	if holder == "" || (find(prev, holder) == nil && find(want, holder) == nil) {
		return "" // not on an interface corral manages
	}
	for _, w := range want {
		if !hasIP(w.Addresses, mgmt) {
			continue
		}
		for _, b := range want {
			if slices.Contains(b.Ports, w.Iface) || slices.Contains(b.Slaves, w.Iface) {
				return fmt.Sprintf("the management address %s would be on %s, which becomes a port of %s", mgmt, w.Iface, b.Iface)
			}
		}
		return ""
	}
	return fmt.Sprintf("the management address %s (now on %s) would be removed from the node", mgmt, holder)
}

func hasIP(addrs []string, ip net.IP) bool {
	return slices.ContainsFunc(addrs, func(a string) bool {
		x, _, err := net.ParseCIDR(a)
		return err == nil && x.Equal(ip)
	})
}
