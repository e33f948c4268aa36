// Package stack wires a node's network pieces together for the daemon, the
// API and the guest drivers: host interfaces, guest ports, zones and the
// firewall, re-applied when their definitions change in the store.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/guest"
	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/network/firewall"
	"github.com/corral-project/corral/internal/network/host"
	"github.com/corral-project/corral/internal/network/port"
	"github.com/corral-project/corral/internal/network/zone"
	"github.com/corral-project/corral/internal/store"
)

// Config is what the daemon knows about the node.
type Config struct {
	Node    string
	NetNS   string // network namespace to manage; "" is the daemon's own (tests use their own)
	Address string // the node's management/underlay address
	RunDir  string
	Store   *store.Store
	Peers   func() []string // cluster node addresses
	Log     *slog.Logger
	// MgmtPorts stay open while the node's firewall is on (API, store peer, ssh).
	MgmtPorts []uint16
}

// NIC is what a guest driver asks for one guest NIC.
type NIC struct {
	port.Spec
	Name     string   // net0, net1, ...: what firewall rules' iface names
	IPs      []string // addresses the guest may send from (anti-spoofing); empty: any
	Firewall bool
}

// Stack is one node's network layer.
type Stack struct {
	Node     string
	NS       *network.NS
	Caps     api.NetCaps
	Host     *host.Service
	Ports    *port.Ports
	Defs     *zone.Defs
	Zones    *zone.Node
	Firewall *firewall.Service
	log      *slog.Logger
	st       *store.Store
	mgmt     []uint16

	mu   sync.Mutex
	nics map[port.Key]NIC
	fwMu sync.Mutex
	drop *firewall.DropLog // nil when NFLOG is unavailable
	// started: until Start, firewall applies wait, so the drivers can
	// register every running guest's NICs first and the first ruleset
	// after a restart already covers them all (no window without them).
	started bool
}

// New opens the namespace and builds the services; nothing on the host
// changes until Start.
func New(c Config) (*Stack, error) {
	var ns *network.NS
	var err error
	if c.NetNS == "" {
		ns, err = network.Current()
	} else {
		ns, err = network.Named(c.NetNS)
	}
	if err != nil {
		return nil, err
	}
	caps := host.DetectCaps()
	s := &Stack{Node: c.Node, NS: ns, Caps: caps, log: c.Log, st: c.Store, nics: map[port.Key]NIC{}, mgmt: c.MgmtPorts}
	s.Host = host.NewService(c.Store, c.Node, ns, caps, net.ParseIP(c.Address), c.Log)
	s.Ports = port.New(ns, caps, c.Log)
	s.Defs = zone.NewDefs(c.Store)
	s.Zones = zone.NewNode(s.Defs, c.Node, ns, c.RunDir, c.Log)
	s.Zones.Local, s.Zones.Peers = c.Address, c.Peers
	s.Firewall = firewall.NewService(c.Store)
	c.Log.Info("network layer", "netns", c.NetNS, "caps", fmt.Sprintf("%+v", caps))
	return s, nil
}

// Start applies zones and the firewall and keeps them current: every
// change under their store prefixes re-applies (coalesced over 200 ms).
// The daemon calls it after the guest drivers' Reconcile.
func (s *Stack) Start(ctx context.Context) {
	s.fwMu.Lock()
	s.started = true
	s.fwMu.Unlock()
	ch, cancel := s.st.Subscribe(256)
	if d, err := firewall.OpenDropLog(s.NS); err != nil {
		s.log.Warn("firewall drop log unavailable", "err", err)
	} else {
		s.drop = d
	}
	s.reapply(ctx, true, true)
	go func() {
		defer cancel()
		zonePrefix, fwPrefix := store.Prefix+"network/", s.Firewall.Prefix()
		for {
			var z, f bool
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-ch:
				if !ok {
					return
				}
				z, f = strings.HasPrefix(ev.Key, zonePrefix) && !strings.HasPrefix(ev.Key, store.Prefix+"network/nodes/"), strings.HasPrefix(ev.Key, fwPrefix)
			}
			if !z && !f {
				continue
			}
			timer := time.After(200 * time.Millisecond)
		drain:
			for {
				select {
				case <-ctx.Done():
					return
				case ev := <-ch:
					z = z || strings.HasPrefix(ev.Key, zonePrefix) && !strings.HasPrefix(ev.Key, store.Prefix+"network/nodes/")
					f = f || strings.HasPrefix(ev.Key, fwPrefix)
				case <-timer:
					break drain
				}
			}
			s.reapply(ctx, z, f)
		}
	}()
}

func (s *Stack) reapply(ctx context.Context, zones, fw bool) {
	if zones {
		if err := s.Zones.Apply(ctx); err != nil {
			s.log.Error("applying zones failed", "err", err)
		}
	}
	if fw {
		if err := s.ApplyFirewall(); err != nil {
			s.log.Error("applying the firewall failed", "err", err)
		}
	}
}

// Close stops what the stack supervises (dnsmasq); ports, bridges and
// rules stay, as guests outlive the daemon.
func (s *Stack) Close() {
	if s.drop != nil {
		s.drop.Close()
	}
	s.Zones.Close()
	s.NS.Close()
}

// Owner is the IPAM owner of a guest NIC.
func Owner(guest, nic int) string { return fmt.Sprintf("guest/%d/net%d", guest, nic) }

// Plug creates or updates a guest NIC's port and refreshes the firewall. A
// NIC on a vnet with subnets gets an address in each from IPAM (the same
// one every time), which dnsmasq hands out to its MAC and anti-spoofing
// allows.
func (s *Stack) Plug(ctx context.Context, guest, nic int, n NIC) (string, error) {
	name, err := s.plugPort(ctx, guest, nic, n)
	if err != nil {
		return "", err
	}
	if err := s.ApplyFirewall(); err != nil {
		_ = s.Unplug(ctx, guest, nic)
		return "", fmt.Errorf("firewall for %s: %w", name, err)
	}
	return name, nil
}

// PlugAll plugs every NIC of a guest that is about to start and applies
// the firewall once for all of them (one ruleset transaction per start,
// not one per NIC). On failure none of the guest's ports is left.
func (s *Stack) PlugAll(ctx context.Context, guest int, nics []NIC) ([]string, error) {
	names := make([]string, 0, len(nics))
	for i, n := range nics {
		name, err := s.plugPort(ctx, guest, i, n)
		if err != nil {
			_ = s.UnplugGuest(ctx, guest)
			return nil, fmt.Errorf("net%d: %w", i, err)
		}
		names = append(names, name)
	}
	if err := s.ApplyFirewall(); err != nil {
		_ = s.UnplugGuest(ctx, guest)
		return nil, fmt.Errorf("firewall for guest %d: %w", guest, err)
	}
	return names, nil
}

// plugPort makes or updates one port and records its NIC for the
// firewall, without applying the firewall.
func (s *Stack) plugPort(ctx context.Context, guest, nic int, n NIC) (string, error) {
	if len(n.IPs) == 0 && n.MAC != "" {
		if _, err := s.Defs.VNet(n.Bridge); err == nil {
			for _, sub := range s.Defs.SubnetsOf(n.Bridge) {
				ip, err := s.Defs.Alloc(ctx, zone.SubnetID(sub.Subnet), Owner(guest, nic), n.MAC)
				if err != nil {
					return "", fmt.Errorf("address for net%d in %s: %w", nic, sub.Subnet, err)
				}
				n.IPs = append(n.IPs, ip)
			}
		}
	}
	name, err := s.Ports.Plug(ctx, guest, nic, n.Spec)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.nics[port.Key{Guest: guest, NIC: nic}] = n
	s.mu.Unlock()
	return name, nil
}

// Unplug removes a guest NIC's port.
func (s *Stack) Unplug(ctx context.Context, guest, nic int) error {
	s.mu.Lock()
	delete(s.nics, port.Key{Guest: guest, NIC: nic})
	s.mu.Unlock()
	err := s.Ports.Unplug(ctx, guest, nic)
	return errors.Join(err, s.ApplyFirewall())
}

// UnplugGuest removes all of a guest's ports (it stopped or crashed).
func (s *Stack) UnplugGuest(ctx context.Context, guest int) error {
	s.mu.Lock()
	for k := range s.nics {
		if k.Guest == guest {
			delete(s.nics, k)
		}
	}
	s.mu.Unlock()
	err := s.Ports.UnplugGuest(ctx, guest)
	return errors.Join(err, s.ApplyFirewall())
}

// ReleaseGuest frees a removed guest's IPAM addresses.
func (s *Stack) ReleaseGuest(ctx context.Context, guest int) error {
	return s.Defs.ReleasePrefix(ctx, fmt.Sprintf("guest/%d/", guest))
}

// Reconcile is called by the drivers at daemon start with every NIC of the
// guests running on this node: existing ports are kept, missing ones made,
// stale ones removed.
func (s *Stack) Reconcile(ctx context.Context, want map[port.Key]NIC) error {
	specs := map[port.Key]port.Spec{}
	for k, n := range want {
		specs[k] = n.Spec
	}
	s.mu.Lock()
	s.nics = want
	s.mu.Unlock()
	return errors.Join(s.Ports.Reconcile(ctx, specs), s.ApplyFirewall())
}

// Guests is the firewall's view of this node's guest ports.
func (s *Stack) Guests() []firewall.Guest {
	s.mu.Lock()
	defer s.mu.Unlock()
	by := map[int]*firewall.Guest{}
	var ids []int
	for k, n := range s.nics {
		g := by[k.Guest]
		if g == nil {
			g = &firewall.Guest{ID: k.Guest}
			by[k.Guest] = g
			ids = append(ids, k.Guest)
		}
		g.Ports = append(g.Ports, firewall.Port{Ifname: port.Name(n.Kind, k.Guest, k.NIC), NIC: n.Name, MAC: n.MAC, IPs: n.IPs, Firewall: n.Firewall})
	}
	slices.Sort(ids)
	var out []firewall.Guest
	for _, id := range ids {
		out = append(out, *by[id])
	}
	return out
}

// ApplyFirewall compiles and applies this node's ruleset. A node that never
// enabled the firewall gets no tables at all.
func (s *Stack) ApplyFirewall() error {
	s.fwMu.Lock()
	defer s.fwMu.Unlock()
	if !s.started {
		return nil
	}
	rs, err := s.Compile()
	if err != nil {
		return err
	}
	if rs.Rules() == 0 && !s.NS.TableExists(nftables.TableFamilyINet, firewall.Table) {
		return nil
	}
	return firewall.Apply(s.NS, rs)
}

// Compile compiles this node's ruleset without applying it (for the API's
// check of a change before it is stored, and for status).
func (s *Stack) Compile() (*firewall.Ruleset, error) {
	cfg := s.Firewall.Config(s.Node, s.Guests())
	cfg.MgmtPorts = s.mgmt
	return firewall.Compile(cfg)
}

// PlugVM makes the tap of a VM NIC (the VM driver's side of NetPorts).
func (s *Stack) PlugVM(ctx context.Context, vmid, nic int, n api.VMNet) (string, error) {
	return s.Plug(ctx, vmid, nic, vmNIC(nic, n))
}

// PlugVMAll makes the taps of all of a VM's NICs before it starts.
func (s *Stack) PlugVMAll(ctx context.Context, vmid int, nets []api.VMNet) ([]string, error) {
	nics := make([]NIC, len(nets))
	for i, n := range nets {
		nics[i] = vmNIC(i, n)
	}
	return s.PlugAll(ctx, vmid, nics)
}

func vmNIC(nic int, n api.VMNet) NIC {
	return NIC{Spec: port.Spec{Kind: port.Tap, Bridge: n.Bridge, MAC: n.MAC, Tag: n.Tag, Rate: n.Rate},
		Name: fmt.Sprintf("net%d", nic), Firewall: n.Firewall}
}

// CheckNIC tells at config time what plugging the NIC at start would
// refuse: a bridge that is neither a bridge on this node nor a vnet, or a
// VLAN tag the kernel can't carry. It returns the field and the problem,
// or "" when the NIC is fine.
func (s *Stack) CheckNIC(bridge string, tag int) (field, problem string) {
	if bridge == "" {
		return "bridge", "a NIC needs a bridge or vnet"
	}
	if _, err := s.Defs.VNet(bridge); err != nil {
		l, err := s.NS.H.LinkByName(bridge)
		if err != nil || l.Type() != "bridge" {
			return "bridge", fmt.Sprintf("%s is neither a bridge on node %s nor a vnet", bridge, s.Node)
		}
	}
	if tag != 0 && !s.Caps.VLANFilter {
		return "tag", "VLAN tags need VLAN-aware bridges, which this node's kernel lacks (CONFIG_BRIDGE_VLAN_FILTERING)"
	}
	return "", ""
}

// SDNPath is the ACL path guarding a NIC's bridge or vnet (both drivers'
// NetPorts): a vnet's /sdn/zones/<zone>/<vnet>, a host bridge's
// /sdn/zones/localnetwork/<bridge>.
func (s *Stack) SDNPath(bridge string) string {
	if v, err := s.Defs.VNet(bridge); err == nil {
		return guest.SDNPath(v.Zone, v.VNet)
	}
	return guest.SDNPath("", bridge)
}

// PlugCT makes the veth pair of a container NIC (the container driver's
// side of lxc.NetPorts) and returns the guest end, which LXC moves in. A
// static address is what anti-spoofing lets the container send from.
func (s *Stack) PlugCT(ctx context.Context, vmid, nic int, n api.CTNet) (string, error) {
	if _, err := s.Plug(ctx, vmid, nic, ctNIC(nic, n)); err != nil {
		return "", err
	}
	return port.PeerName(vmid, nic), nil
}

// PlugCTAll makes the veth pairs of all of a container's NICs before it
// starts and returns their guest ends.
func (s *Stack) PlugCTAll(ctx context.Context, vmid int, nets []api.CTNet) ([]string, error) {
	nics := make([]NIC, len(nets))
	ends := make([]string, len(nets))
	for i, n := range nets {
		nics[i], ends[i] = ctNIC(i, n), port.PeerName(vmid, i)
	}
	if _, err := s.PlugAll(ctx, vmid, nics); err != nil {
		return nil, err
	}
	return ends, nil
}

// ctNIC is a container NIC as a port; a static address is what
// anti-spoofing lets the container send from.
func ctNIC(nic int, n api.CTNet) NIC {
	var ips []string
	for _, cidr := range []string{n.IP, n.IP6} {
		if ip, _, err := net.ParseCIDR(cidr); err == nil {
			ips = append(ips, ip.String())
		}
	}
	return NIC{Spec: port.Spec{Kind: port.Veth, Bridge: n.Bridge, MAC: n.HWAddr, MTU: n.MTU, Tag: n.Tag, Rate: n.Rate},
		Name: fmt.Sprintf("net%d", nic), IPs: ips, Firewall: n.Firewall}
}

// ExecPrefix runs a guest process inside the managed namespace when it is
// not the daemon's own (tests), so QEMU finds its taps by name.
func (s *Stack) ExecPrefix() []string {
	if s.NS.Name == "" {
		return nil
	}
	return []string{"ip", "netns", "exec", s.NS.Name}
}

// DropLog returns the newest dropped packets (at most limit), or an error
// when this node can't log them.
func (s *Stack) DropLog(limit int) ([]api.FwLogEntry, error) {
	if s.drop == nil {
		return nil, errors.New("the drop log is unavailable on this node (no nfnetlink_log, or another process holds NFLOG group 64)")
	}
	return s.drop.Entries(limit), nil
}
