// Package port creates guests' network ports on the host: a tap device per
// VM NIC (QEMU opens it by name; corral, not a QEMU script, owns it) and a
// veth pair per container NIC. Ports are attached to a bridge with the
// declared MTU, VLAN tag and rate limit, can be changed live, and carry an
// alias "corral:<guest>:<nic>" so a restarted daemon finds them again.
package port

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/network"
)

// Kinds of port.
const (
	Tap  = "tap"  // VM NIC: QEMU opens the tap by name (-netdev tap,ifname=...,script=no)
	Veth = "veth" // container NIC: the guest end is moved into the container
)

// Spec is what a guest NIC asks of its port.
type Spec struct {
	Kind   string  // Tap or Veth
	Bridge string  // bridge (or vnet bridge) to attach to
	MAC    string  // the guest's MAC: set on the veth's guest end; for a tap QEMU sets it
	MTU    int     // 0: the bridge's
	Tag    int     // VLAN tag, needs a VLAN-aware bridge
	Rate   float64 // MB/s (MiB), 0: unlimited; both directions
}

// Port is one port corral finds on the host.
type Port struct {
	Name    string
	Guest   int
	NIC     int
	Kind    string
	Bridge  string
	MTU     int
	RateBps uint64 // bytes/s of the HTB class, 0 when unlimited
}

// Ports plugs and unplugs guest ports in one namespace.
type Ports struct {
	ns   *network.NS
	caps api.NetCaps
	log  *slog.Logger
	mu   sync.Mutex
}

// New returns the port manager of ns.
func New(ns *network.NS, caps api.NetCaps, log *slog.Logger) *Ports {
	return &Ports{ns: ns, caps: caps, log: log}
}

// Name is the host-side name of a guest's port: tap<id>i<n> or veth<id>i<n>.
func Name(kind string, guest, nic int) string {
	return fmt.Sprintf("%s%di%d", kind, guest, nic)
}

// PeerName is the guest end of a container's veth until the container
// driver moves it in (lxc.net.N.type=phys, lxc.net.N.link=<PeerName>).
func PeerName(guest, nic int) string { return fmt.Sprintf("vg%di%d", guest, nic) }

var nameRe = regexp.MustCompile(`^(tap|veth)(\d+)i(\d+)$`)

const aliasPrefix = "corral:"

func alias(guest, nic int) string { return fmt.Sprintf("%s%d:%d", aliasPrefix, guest, nic) }

// validate checks a spec; ports of VMs and containers share it.
func (p *Ports) validate(guest, nic int, s Spec) error {
	if s.Kind != Tap && s.Kind != Veth {
		return errs.Invalid("kind", "a port is a tap or a veth, not %q", s.Kind)
	}
	if guest < 100 || guest > 999999999 || nic < 0 || nic > 31 {
		return errs.Invalid("net", "guest %d NIC %d is out of range", guest, nic)
	}
	if s.Bridge == "" {
		return errs.Invalid("bridge", "a NIC needs a bridge or vnet")
	}
	if s.MAC != "" {
		if m, err := net.ParseMAC(s.MAC); err != nil || len(m) != 6 || m[0]&1 == 1 {
			return errs.Invalid("mac", "%q is not a unicast Ethernet address", s.MAC)
		}
	}
	if s.MTU != 0 && (s.MTU < 576 || s.MTU > 65535) {
		return errs.Invalid("mtu", "must be 576-65535")
	}
	if s.Tag != 0 && !p.caps.VLANFilter {
		return errs.Invalid("tag", "VLAN tags need VLAN-aware bridges, which this node's kernel lacks (CONFIG_BRIDGE_VLAN_FILTERING)")
	}
	if s.Tag < 0 || s.Tag > 4094 {
		return errs.Invalid("tag", "must be 1-4094")
	}
	if s.Rate < 0 || s.Rate > 4000 {
		return errs.Invalid("rate", "must be 0-4000 MB/s")
	}
	b, err := p.ns.H.LinkByName(s.Bridge)
	if err != nil || b.Type() != "bridge" {
		return errs.Invalid("bridge", "bridge %s does not exist on this node", s.Bridge)
	}
	if s.Tag != 0 {
		if br, ok := b.(*netlink.Bridge); !ok || br.VlanFiltering == nil || !*br.VlanFiltering {
			return errs.Invalid("tag", "bridge %s is not VLAN-aware", s.Bridge)
		}
	}
	return nil
}

// Plug creates the port of a guest NIC, or, if it exists, brings it to
// spec (so plugging again after a daemon restart never duplicates, and a
// changed bridge, MTU or rate applies live). It returns the host-side name.
func (p *Ports) Plug(ctx context.Context, guest, nic int, s Spec) (string, error) {
	if err := p.validate(guest, nic, s); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	name := Name(s.Kind, guest, nic)
	other := Name(map[string]string{Tap: Veth, Veth: Tap}[s.Kind], guest, nic)
	if l, err := p.ns.H.LinkByName(other); err == nil {
		_ = p.ns.H.LinkDel(l) // the guest changed kind (never both)
	}
	l, err := p.ns.H.LinkByName(name)
	created := false
	if err != nil {
		if l, err = p.create(name, guest, nic, s); err != nil {
			return "", fmt.Errorf("port %s: %w", name, err)
		}
		created = true
	}
	if err := p.configure(l, guest, nic, s); err != nil {
		if created {
			_ = p.ns.H.LinkDel(l)
		}
		return "", fmt.Errorf("port %s: %w", name, err)
	}
	return name, nil
}

func (p *Ports) create(name string, guest, nic int, s Spec) (netlink.Link, error) {
	h := p.ns.H
	a := netlink.LinkAttrs{Name: name, MTU: s.MTU}
	switch s.Kind {
	case Tap:
		// Persistent, so QEMU attaches by name; created on a thread inside
		// the namespace because /dev/net/tun works on the caller's.
		t := &netlink.Tuntap{LinkAttrs: a, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR}
		if err := p.ns.Do(func() error { return netlink.LinkAdd(t) }); err != nil {
			return nil, fmt.Errorf("create tap: %w", err)
		}
	case Veth:
		v := &netlink.Veth{LinkAttrs: a, PeerName: PeerName(guest, nic)}
		if s.MAC != "" {
			v.PeerHardwareAddr, _ = net.ParseMAC(s.MAC)
		}
		if err := h.LinkAdd(v); err != nil {
			return nil, fmt.Errorf("create veth: %w", err)
		}
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, err
	}
	if err := h.LinkSetAlias(l, alias(guest, nic)); err != nil {
		_ = h.LinkDel(l)
		return nil, fmt.Errorf("alias: %w", err)
	}
	return l, nil
}

func (p *Ports) configure(l netlink.Link, guest, nic int, s Spec) error {
	h := p.ns.H
	br, err := h.LinkByName(s.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", s.Bridge, err)
	}
	mtu := s.MTU
	if mtu == 0 {
		mtu = br.Attrs().MTU
	}
	if l.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("mtu %d: %w", mtu, err)
		}
		if s.Kind == Veth { // the guest end too, if it is still here
			if pe, err := h.LinkByName(PeerName(guest, nic)); err == nil {
				_ = h.LinkSetMTU(pe, mtu)
			}
		}
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("attach to %s: %w", s.Bridge, err)
		}
	}
	if s.Tag != 0 {
		if err := h.BridgeVlanAdd(l, uint16(s.Tag), true, true, false, true); err != nil {
			return fmt.Errorf("vlan %d: %w", s.Tag, err)
		}
	}
	if err := setRate(h, l, s.Rate); err != nil {
		return err
	}
	return h.LinkSetUp(l)
}

// mib is what one "MB" of the rate means, as in Proxmox.
const mib = 1 << 20

// setRate limits both directions: an HTB class on the port's egress (into
// the guest) and a policer on its ingress (out of the guest). 0 removes both.
func setRate(h *netlink.Handle, l netlink.Link, rate float64) error {
	idx := l.Attrs().Index
	root := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT})
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
	if rate == 0 {
		_ = h.QdiscDel(root)
		_ = h.QdiscDel(ingress)
		return nil
	}
	bps := uint64(rate * mib)
	root.Defcls = 1
	if err := h.QdiscReplace(root); err != nil {
		return fmt.Errorf("htb qdisc: %w", err)
	}
	cls := netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: idx, Parent: netlink.MakeHandle(1, 0), Handle: netlink.MakeHandle(1, 1)},
		netlink.HtbClassAttrs{Rate: bps * 8, Ceil: bps * 8})
	if err := h.ClassReplace(cls); err != nil {
		return fmt.Errorf("htb class: %w", err)
	}
	if err := h.QdiscReplace(ingress); err != nil {
		return fmt.Errorf("ingress qdisc: %w", err)
	}
	police := netlink.NewPoliceAction()
	police.Rate = uint32(min(bps, 1<<32-1))
	police.Burst = uint32(max(bps/10, 64*1024))
	police.Mtu = 65535
	police.ExceedAction = netlink.TC_POLICE_SHOT
	f := &netlink.MatchAll{FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: netlink.MakeHandle(0xffff, 0), Priority: 1,
		Protocol: unix.ETH_P_ALL}, Actions: []netlink.Action{police}}
	if err := h.FilterReplace(f); err != nil {
		// Kernels without cls_matchall or act_police: the limit holds for
		// traffic into the guest only. Said once in the log, not an error.
		_ = h.QdiscDel(ingress)
		policeOnce.Do(func() {
			slog.Warn("this kernel has no tc police action or matchall classifier: guest rate limits apply to traffic into guests only", "err", err)
		})
	}
	return nil
}

var policeOnce sync.Once

// CanPolice says whether this kernel limits traffic out of guests too
// (tc matchall + police), probed in a throwaway namespace.
func CanPolice() bool {
	ns, err := network.Temp()
	if err != nil {
		return false
	}
	defer ns.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probea"}, PeerName: "probeb"}
	if ns.H.LinkAdd(v) != nil {
		return false
	}
	l, err := ns.H.LinkByName("probea")
	if err != nil {
		return false
	}
	idx := l.Attrs().Index
	if ns.H.QdiscReplace(&netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}) != nil {
		return false
	}
	police := netlink.NewPoliceAction()
	police.Rate, police.Burst, police.Mtu, police.ExceedAction = 1<<20, 1<<16, 65535, netlink.TC_POLICE_SHOT
	return ns.H.FilterReplace(&netlink.MatchAll{FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: netlink.MakeHandle(0xffff, 0),
		Priority: 1, Protocol: unix.ETH_P_ALL}, Actions: []netlink.Action{police}}) == nil
}

// Unplug removes a guest NIC's port (either kind); a missing port is fine.
func (p *Ports) Unplug(ctx context.Context, guest, nic int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range []string{Tap, Veth} {
		if err := p.del(Name(k, guest, nic)); err != nil {
			return err
		}
	}
	return nil
}

func (p *Ports) del(name string) error {
	l, err := p.ns.H.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	if err := p.ns.H.LinkDel(l); err != nil {
		return fmt.Errorf("delete port %s: %w", name, err)
	}
	return nil
}

// UnplugGuest removes every port of a guest (it stopped or crashed).
func (p *Ports) UnplugGuest(ctx context.Context, guest int) error {
	ports, err := p.List()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var errList []error
	for _, pt := range ports {
		if pt.Guest == guest {
			errList = append(errList, p.del(pt.Name))
		}
	}
	return errors.Join(errList...)
}

// List returns the ports corral made that exist now.
func (p *Ports) List() ([]Port, error) {
	links, err := p.ns.H.LinkList()
	if err != nil {
		return nil, fmt.Errorf("ports: list links: %w", err)
	}
	var out []Port
	for _, l := range links {
		a := l.Attrs()
		m := nameRe.FindStringSubmatch(a.Name)
		if m == nil || !strings.HasPrefix(a.Alias, aliasPrefix) {
			continue
		}
		g, _ := strconv.Atoi(m[2])
		n, _ := strconv.Atoi(m[3])
		pt := Port{Name: a.Name, Guest: g, NIC: n, Kind: m[1], MTU: a.MTU}
		if a.MasterIndex != 0 {
			if b, err := p.ns.H.LinkByIndex(a.MasterIndex); err == nil {
				pt.Bridge = b.Attrs().Name
			}
		}
		if cls, err := p.ns.H.ClassList(l, netlink.MakeHandle(1, 0)); err == nil {
			for _, c := range cls {
				if hc, ok := c.(*netlink.HtbClass); ok && hc.Handle == netlink.MakeHandle(1, 1) {
					pt.RateBps = hc.Rate
				}
			}
		}
		out = append(out, pt)
	}
	slices.SortFunc(out, func(a, b Port) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Key names a guest NIC.
type Key struct{ Guest, NIC int }

// Reconcile makes the host's ports exactly want: it plugs (or updates) each
// wanted port and removes corral's ports that nothing wants any more (guests
// that stopped or crashed while the daemon was away).
func (p *Ports) Reconcile(ctx context.Context, want map[Key]Spec) error {
	have, err := p.List()
	if err != nil {
		return err
	}
	var errList []error
	for _, pt := range have {
		s, ok := want[Key{pt.Guest, pt.NIC}]
		if !ok || s.Kind != pt.Kind {
			p.log.Info("removing stale guest port", "port", pt.Name)
			p.mu.Lock()
			errList = append(errList, p.del(pt.Name))
			p.mu.Unlock()
		}
	}
	for k, s := range want {
		if _, err := p.Plug(ctx, k.Guest, k.NIC, s); err != nil {
			errList = append(errList, err)
		}
	}
	return errors.Join(errList...)
}
