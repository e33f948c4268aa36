package host

import (
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/network"
)

// Read returns every interface of the namespace as corral sees it, sorted by
// name, plus its routes.
func Read(ns *network.NS) ([]api.NetIface, []api.NetRoute, error) {
	links, err := ns.H.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("host: list links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	routes, err := ns.H.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("host: list routes: %w", err)
	}
	gw := map[int]string{}
	var rs []api.NetRoute
	for _, r := range routes {
		dst := "default"
		if r.Dst != nil {
			dst = r.Dst.String()
		}
		rt := api.NetRoute{Dst: dst, Iface: names[r.LinkIndex]}
		if r.Gw != nil {
			rt.Gateway = r.Gw.String()
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				if _, ok := gw[r.LinkIndex]; !ok {
					gw[r.LinkIndex] = r.Gw.String()
				}
			}
		}
		rs = append(rs, rt)
	}
	var out []api.NetIface
	for _, l := range links {
		a := l.Attrs()
		ifc := api.NetIface{Iface: a.Name, Type: kindOf(l), MTU: a.MTU, Up: a.Flags&net.FlagUp != 0,
			Master: names[a.MasterIndex], Gateway: gw[a.Index]}
		if a.HardwareAddr != nil {
			ifc.MAC = a.HardwareAddr.String()
		}
		addrs, err := ns.H.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, nil, fmt.Errorf("host: addresses of %s: %w", a.Name, err)
		}
		for _, ad := range addrs {
			if ad.IP.IsLinkLocalUnicast() {
				continue // kernel-made, never declared
			}
			ifc.Addresses = append(ifc.Addresses, ad.IPNet.String())
		}
		switch v := l.(type) {
		case *netlink.Bridge:
			ifc.VLANAware = v.VlanFiltering != nil && *v.VlanFiltering
		case *netlink.Vxlan:
			ifc.VNI, ifc.Port, ifc.Dev = v.VxlanId, v.Port, names[v.VtepDevIndex]
			if v.SrcAddr != nil {
				ifc.Local = v.SrcAddr.String()
			}
			ifc.Remotes = fdbRemotes(ns, l)
		case *netlink.Bond:
			ifc.BondMode = v.Mode.String()
		case *netlink.Vlan:
			ifc.VLANID, ifc.VLANRaw = v.VlanId, names[a.ParentIndex]
		}
		out = append(out, ifc)
	}
	for i := range out { // ports and slaves, from the other side
		for _, o := range out {
			if o.Master != out[i].Iface {
				continue
			}
			switch out[i].Type {
			case api.IfaceBridge:
				out[i].Ports = append(out[i].Ports, o.Iface)
			case api.IfaceBond:
				out[i].Slaves = append(out[i].Slaves, o.Iface)
			}
		}
	}
	slices.SortFunc(out, func(a, b api.NetIface) int { return cmpStr(a.Iface, b.Iface) })
	return out, rs, nil
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// kindOf maps a netlink link type to corral's interface type.
func kindOf(l netlink.Link) string {
	switch l.Type() {
	case "bridge":
		return api.IfaceBridge
	case "vxlan":
		return api.IfaceVXLAN
	case "bond":
		return api.IfaceBond
	case "vlan":
		return api.IfaceVLAN
	case "device":
		if l.Attrs().Flags&net.FlagLoopback == 0 && l.Attrs().EncapType == "ether" {
			return api.IfaceEth
		}
	}
	return api.IfaceOther
}

// fdbRemotes lists the unicast VXLAN peers (all-zero FDB entries).
func fdbRemotes(ns *network.NS, l netlink.Link) []string {
	ns2, err := ns.H.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range ns2 {
		if n.IP != nil && n.HardwareAddr.String() == "00:00:00:00:00:00" {
			out = append(out, n.IP.String())
		}
	}
	slices.Sort(out)
	return out
}

// Seed is the configuration a new node starts from: its physical NICs and
// the bridges, bonds, VLANs and VXLANs it already has, with their addresses.
// Veths, taps and other interfaces corral doesn't manage are left out.
func Seed(running []api.NetIface) []api.NetIface {
	var out []api.NetIface
	for _, r := range running {
		if r.Type == api.IfaceOther {
			continue
		}
		c := r
		c.Up, c.MAC, c.Master = false, "", ""
		if c.Type == api.IfaceBridge {
			c.Ports = slices.DeleteFunc(slices.Clone(c.Ports), func(p string) bool { return !declarable(running, p) })
		}
		out = append(out, c)
	}
	return out
}

func declarable(running []api.NetIface, name string) bool {
	for _, r := range running {
		if r.Iface == name {
			return r.Type != api.IfaceOther
		}
	}
	return false
}
