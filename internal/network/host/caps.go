// Package host reads and configures a node's network interfaces (bridges,
// VXLAN, bonds, VLANs, addresses, the default route) with netlink. A node's
// declared configuration lives in the cluster store; changes are pending
// until applied, and a failed apply rolls back to the previous configuration.
package host

import (
	"github.com/vishvananda/netlink"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/network"
)

// DetectCaps probes the kernel by creating each kind of interface in a
// throwaway namespace, so nothing on the host is touched.
func DetectCaps() api.NetCaps {
	var c api.NetCaps
	ns, err := network.Temp()
	if err != nil {
		return c
	}
	defer ns.Close()
	try := func(l netlink.Link) bool {
		if err := ns.H.LinkAdd(l); err != nil {
			return false
		}
		_ = ns.H.LinkDel(l)
		return true
	}
	attrs := func(n string) netlink.LinkAttrs { return netlink.LinkAttrs{Name: n} }
	c.Bridge = try(&netlink.Bridge{LinkAttrs: attrs("probebr")})
	on := true
	c.VLANFilter = try(&netlink.Bridge{LinkAttrs: attrs("probebrv"), VlanFiltering: &on})
	c.VXLAN = try(&netlink.Vxlan{LinkAttrs: attrs("probevx"), VxlanId: 42, Port: 4789})
	c.Bond = try(netlink.NewLinkBond(attrs("probebond")))
	if lo, err := ns.H.LinkByName("lo"); err == nil {
		c.VLAN = try(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "probevl", ParentIndex: lo.Attrs().Index}, VlanId: 5})
		if !c.VLAN {
			// lo refuses VLANs even where 802.1q exists: retry on a bridge.
			br := &netlink.Bridge{LinkAttrs: attrs("probebr2")}
			if ns.H.LinkAdd(br) == nil {
				c.VLAN = try(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "probevl", ParentIndex: br.Attrs().Index}, VlanId: 5})
			}
		}
	}
	c.Tap = ns.Do(func() error {
		t := &netlink.Tuntap{LinkAttrs: attrs("probetap"), Mode: netlink.TUNTAP_MODE_TAP}
		if err := netlink.LinkAdd(t); err != nil {
			return err
		}
		return netlink.LinkDel(t)
	}) == nil
	return c
}

// unsupported names the first declared feature the kernel lacks.
func unsupported(c api.NetCaps, ifc api.NetIface) string {
	switch {
	case ifc.Type == api.IfaceBridge && !c.Bridge:
		return "this kernel has no bridge support"
	case ifc.Type == api.IfaceBridge && ifc.VLANAware && !c.VLANFilter:
		return "this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING), so VLAN-aware bridges are unavailable"
	case ifc.Type == api.IfaceVXLAN && !c.VXLAN:
		return "this kernel has no VXLAN support"
	case ifc.Type == api.IfaceBond && !c.Bond:
		return "this kernel has no bonding driver (CONFIG_BONDING)"
	case ifc.Type == api.IfaceVLAN && !c.VLAN:
		return "this kernel has no 802.1q VLAN support (CONFIG_VLAN_8021Q)"
	}
	return ""
}
