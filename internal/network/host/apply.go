package host

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/network"
)

// Apply makes the namespace match want, where prev is the configuration it
// had. Interfaces declared in neither are never touched. On failure the
// previous configuration is applied again, so a failed apply leaves the host
// as it was; the error says whether the rollback worked.
func Apply(ns *network.NS, prev, want []api.NetIface) error {
	if err := apply(ns, prev, want); err != nil {
		if rerr := apply(ns, want, prev); rerr != nil {
			return fmt.Errorf("%w; rolling back also failed: %v", err, rerr)
		}
		return fmt.Errorf("%w (rolled back to the previous configuration)", err)
	}
	return nil
}

func isVirtual(t string) bool {
	return t == api.IfaceBridge || t == api.IfaceVXLAN || t == api.IfaceBond || t == api.IfaceVLAN
}

// recreate says whether going from p to w needs a new link: these settings
// are fixed when the kernel creates it.
func recreate(p, w api.NetIface) bool {
	return p.Type != w.Type || p.VNI != w.VNI || p.Port != w.Port || p.Local != w.Local || p.Dev != w.Dev ||
		p.VLANID != w.VLANID || p.VLANRaw != w.VLANRaw || p.BondMode != w.BondMode || p.VLANAware != w.VLANAware
}

func find(cfg []api.NetIface, name string) *api.NetIface {
	for i := range cfg {
		if cfg[i].Iface == name {
			return &cfg[i]
		}
	}
	return nil
}

// order is the order interfaces are created in: what others build on first.
var order = []string{api.IfaceEth, api.IfaceBond, api.IfaceVLAN, api.IfaceBridge, api.IfaceVXLAN}

func apply(ns *network.NS, prev, want []api.NetIface) error {
	h := ns.H
	// 1. Delete what goes away or must be made anew; bridges first so their
	// ports are released, and addresses declared on NICs that leave.
	for _, t := range slices.Backward(order) {
		for _, p := range prev {
			w := find(want, p.Iface)
			if p.Type != t || (w != nil && !recreate(p, *w)) {
				continue
			}
			l, err := h.LinkByName(p.Iface)
			if err != nil {
				continue
			}
			if !isVirtual(p.Type) {
				if err := syncAddrs(ns, l, nil); err != nil {
					return err
				}
				continue
			}
			if err := h.LinkDel(l); err != nil {
				return fmt.Errorf("delete %s: %w", p.Iface, err)
			}
		}
	}
	// 2. Create and configure in dependency order. An interface whose
	// declaration didn't change is left alone (a NIC whose address DHCP
	// renewed since it was declared keeps it) unless it is missing.
	for _, t := range order {
		for _, w := range want {
			if w.Type != t {
				continue
			}
			if p := find(prev, w.Iface); p != nil && reflect.DeepEqual(*p, w) {
				if _, err := h.LinkByName(w.Iface); err == nil {
					continue
				}
			}
			if err := ensure(ns, w, find(prev, w.Iface)); err != nil {
				return fmt.Errorf("%s: %w", w.Iface, err)
			}
		}
	}
	// 3. Bridge ports: attach the declared ones, release those no longer declared.
	for _, p := range prev {
		for _, port := range p.Ports {
			w := find(want, p.Iface)
			if w != nil && slices.Contains(w.Ports, port) {
				continue
			}
			if l, err := h.LinkByName(port); err == nil && masterName(ns, l) == p.Iface {
				if err := h.LinkSetNoMaster(l); err != nil {
					return fmt.Errorf("release %s from %s: %w", port, p.Iface, err)
				}
			}
		}
	}
	for _, w := range want {
		for _, port := range w.Ports {
			if err := enslave(ns, w.Iface, port, false); err != nil {
				return err
			}
		}
		// A new port resets the bridge's MTU to the smallest port's: set it
		// again so the declared one holds.
		if l, err := h.LinkByName(w.Iface); err == nil && w.MTU != 0 && l.Attrs().MTU != w.MTU {
			if err := h.LinkSetMTU(l, w.MTU); err != nil {
				return fmt.Errorf("%s: mtu %d: %w", w.Iface, w.MTU, err)
			}
		}
	}
	// 4. Default routes.
	for _, p := range prev {
		if w := find(want, p.Iface); p.Gateway != "" && (w == nil || w.Gateway != p.Gateway) {
			if r := defaultRoute(ns, p.Iface, p.Gateway); r != nil {
				_ = h.RouteDel(r)
			}
		}
	}
	for _, w := range want {
		if w.Gateway == "" {
			continue
		}
		r := defaultRoute(ns, w.Iface, w.Gateway)
		if r == nil {
			return fmt.Errorf("%s: interface vanished before its gateway was set", w.Iface)
		}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("%s: default route via %s: %w", w.Iface, w.Gateway, err)
		}
	}
	return nil
}

func defaultRoute(ns *network.NS, iface, gw string) *netlink.Route {
	l, err := ns.H.LinkByName(iface)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(gw)
	dst := &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
	if ip.To4() == nil {
		dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &netlink.Route{LinkIndex: l.Attrs().Index, Gw: ip, Dst: dst}
}

func masterName(ns *network.NS, l netlink.Link) string {
	if l.Attrs().MasterIndex == 0 {
		return ""
	}
	m, err := ns.H.LinkByIndex(l.Attrs().MasterIndex)
	if err != nil {
		return ""
	}
	return m.Attrs().Name
}

// enslave makes port a port of master (bridge) or a slave (bond).
func enslave(ns *network.NS, master, port string, bond bool) error {
	h := ns.H
	m, err := h.LinkByName(master)
	if err != nil {
		return fmt.Errorf("%s: %w", master, err)
	}
	l, err := h.LinkByName(port)
	if err != nil {
		return fmt.Errorf("%s: port %s: %w", master, port, err)
	}
	if l.Attrs().MasterIndex != m.Attrs().Index {
		if bond {
			_ = h.LinkSetDown(l) // the kernel enslaves only links that are down
		}
		if err := h.LinkSetMaster(l, m); err != nil {
			return fmt.Errorf("%s: add port %s: %w", master, port, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s: up port %s: %w", master, port, err)
	}
	return nil
}

func newLink(ns *network.NS, w api.NetIface) (netlink.Link, error) {
	a := netlink.LinkAttrs{Name: w.Iface, MTU: w.MTU}
	switch w.Type {
	case api.IfaceBridge:
		b := &netlink.Bridge{LinkAttrs: a}
		if w.VLANAware { // kernels without VLAN filtering refuse even "off"
			b.VlanFiltering = &w.VLANAware
		}
		return b, nil
	case api.IfaceVXLAN:
		port := w.Port
		if port == 0 {
			port = 4789
		}
		v := &netlink.Vxlan{LinkAttrs: a, VxlanId: w.VNI, Port: port, Learning: true}
		if w.Local != "" {
			v.SrcAddr = net.ParseIP(w.Local)
		}
		if w.Dev != "" {
			d, err := ns.H.LinkByName(w.Dev)
			if err != nil {
				return nil, fmt.Errorf("underlay %s: %w", w.Dev, err)
			}
			v.VtepDevIndex = d.Attrs().Index
		}
		return v, nil
	case api.IfaceBond:
		b := netlink.NewLinkBond(a)
		b.Mode = netlink.BOND_MODE_BALANCE_RR
		if m, ok := bondModes[w.BondMode]; ok {
			b.Mode = m
		}
		return b, nil
	case api.IfaceVLAN:
		raw, err := ns.H.LinkByName(w.VLANRaw)
		if err != nil {
			return nil, fmt.Errorf("raw device %s: %w", w.VLANRaw, err)
		}
		a.ParentIndex = raw.Attrs().Index
		return &netlink.Vlan{LinkAttrs: a, VlanId: w.VLANID}, nil
	}
	return nil, fmt.Errorf("no physical interface %s on this node", w.Iface)
}

// ensure creates w if missing and brings its settings, members, addresses
// and state to what is declared.
func ensure(ns *network.NS, w api.NetIface, prev *api.NetIface) error {
	h := ns.H
	l, err := h.LinkByName(w.Iface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return err
		}
		nl, err := newLink(ns, w)
		if err != nil {
			return err
		}
		if err := h.LinkAdd(nl); err != nil {
			return fmt.Errorf("create %s: %w", w.Type, err)
		}
		if l, err = h.LinkByName(w.Iface); err != nil {
			return err
		}
	} else if isVirtual(w.Type) && kindOf(l) != w.Type {
		return fmt.Errorf("exists as %s, not %s", l.Type(), w.Type)
	}
	if w.MTU != 0 && l.Attrs().MTU != w.MTU {
		if err := h.LinkSetMTU(l, w.MTU); err != nil {
			return fmt.Errorf("mtu %d: %w", w.MTU, err)
		}
	}
	if w.Type == api.IfaceBridge {
		if err := setSTP(ns, l.Attrs().Index, w.STP); err != nil {
			return fmt.Errorf("stp: %w", err)
		}
	}
	if w.Type == api.IfaceBond {
		if prev != nil {
			for _, s := range prev.Slaves {
				if sl, err := h.LinkByName(s); err == nil && !slices.Contains(w.Slaves, s) && sl.Attrs().MasterIndex == l.Attrs().Index {
					_ = h.LinkSetNoMaster(sl)
				}
			}
		}
		for _, s := range w.Slaves {
			if err := enslave(ns, w.Iface, s, true); err != nil {
				return err
			}
		}
	}
	if w.Type == api.IfaceVXLAN {
		if err := syncRemotes(ns, l, w.Remotes); err != nil {
			return err
		}
	}
	if err := syncAddrs(ns, l, w.Addresses); err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	return nil
}

// syncAddrs makes the link's addresses (except IPv6 link-local ones) exactly want.
func syncAddrs(ns *network.NS, l netlink.Link, want []string) error {
	have, err := ns.H.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("addresses: %w", err)
	}
	for _, a := range have {
		if a.IP.IsLinkLocalUnicast() || slices.Contains(want, a.IPNet.String()) {
			continue
		}
		if err := ns.H.AddrDel(l, &a); err != nil {
			return fmt.Errorf("remove address %s: %w", a.IPNet, err)
		}
	}
	for _, s := range want {
		if slices.ContainsFunc(have, func(a netlink.Addr) bool { return a.IPNet.String() == s }) {
			continue
		}
		a, err := netlink.ParseAddr(s)
		if err != nil {
			return err
		}
		if err := ns.H.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add address %s: %w", s, err)
		}
	}
	return nil
}

// syncRemotes keeps one all-zero FDB entry per unicast VXLAN peer, so
// broadcast and unknown traffic is replicated to each (no multicast needed).
func syncRemotes(ns *network.NS, l netlink.Link, want []string) error {
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	have, err := ns.H.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("fdb: %w", err)
	}
	for _, n := range have {
		if n.IP != nil && n.HardwareAddr.String() == zero.String() && !slices.Contains(want, n.IP.String()) {
			if err := ns.H.NeighDel(&n); err != nil {
				return fmt.Errorf("remove peer %s: %w", n.IP, err)
			}
		}
	}
	for _, r := range want {
		if slices.ContainsFunc(have, func(n netlink.Neigh) bool { return n.IP.Equal(net.ParseIP(r)) }) {
			continue
		}
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_NOARP | netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, IP: net.ParseIP(r), HardwareAddr: zero}
		if err := ns.H.NeighAppend(n); err != nil {
			return fmt.Errorf("add peer %s: %w", r, err)
		}
	}
	return nil
}

// setSTP sets IFLA_BR_STP_STATE, which vishvananda/netlink doesn't expose.
func setSTP(ns *network.NS, index int, on bool) error {
	return ns.Do(func() error {
		req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(index)
		req.AddData(msg)
		info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
		info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
		data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
		v := uint32(0)
		if on {
			v = 1
		}
		data.AddRtAttr(nl.IFLA_BR_STP_STATE, nl.Uint32Attr(v))
		req.AddData(info)
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
}
