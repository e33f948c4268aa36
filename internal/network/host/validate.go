package host

import (
	"fmt"
	"net"
	"regexp"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
)

var ifaceRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,14}$`)

func bad(i api.NetIface, field, format string, args ...any) error {
	return errs.Invalid(field, "%s: %s", i.Iface, fmt.Sprintf(format, args...))
}

// Validate checks a whole configuration against itself, the kernel's
// capabilities and the interfaces the host has. It normalises addresses.
func Validate(cfg []api.NetIface, caps api.NetCaps, running []api.NetIface) error {
	byName := map[string]*api.NetIface{}
	for i := range cfg {
		c := &cfg[i]
		if !ifaceRe.MatchString(c.Iface) {
			return bad(*c, "iface", "interface names are 1-15 letters, digits, _ . -, starting with a letter")
		}
		if byName[c.Iface] != nil {
			return bad(*c, "iface", "declared twice")
		}
		byName[c.Iface] = c
	}
	exists := func(n string) *api.NetIface {
		for i := range running {
			if running[i].Iface == n {
				return &running[i]
			}
		}
		return nil
	}
	usable := func(c api.NetIface, field, n string) error {
		if n == c.Iface {
			return bad(c, field, "cannot refer to itself")
		}
		if byName[n] == nil && exists(n) == nil {
			return bad(c, field, "interface %s is neither declared nor present on this node", n)
		}
		return nil
	}
	gateways := map[bool]string{}
	vnis := map[[2]int]string{}
	portOf := map[string]string{}
	for _, c := range cfg {
		switch c.Type {
		case api.IfaceEth:
			r := exists(c.Iface)
			if r == nil || (r.Type != api.IfaceEth && r.Type != api.IfaceOther) {
				return bad(c, "type", "no such physical interface on this node")
			}
		case api.IfaceBridge, api.IfaceVXLAN, api.IfaceBond, api.IfaceVLAN:
			if msg := unsupported(caps, c); msg != "" {
				return bad(c, "type", "%s", msg)
			}
			if r := exists(c.Iface); r != nil && r.Type != c.Type {
				return bad(c, "iface", "an interface of type %s with this name already exists", r.Type)
			}
		default:
			return bad(c, "type", "unknown type %q", c.Type)
		}
		if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
			return bad(c, "mtu", "must be 68-65535")
		}
		for _, a := range c.Addresses {
			if _, err := netlink.ParseAddr(a); err != nil {
				return bad(c, "addresses", "%q is not an address with prefix length (CIDR)", a)
			}
		}
		if c.Gateway != "" {
			gw := net.ParseIP(c.Gateway)
			if gw == nil {
				return bad(c, "gateway", "%q is not an IP address", c.Gateway)
			}
			v4 := gw.To4() != nil
			if other, dup := gateways[v4]; dup {
				return bad(c, "gateway", "%s already has the default gateway of this address family", other)
			}
			gateways[v4] = c.Iface
			if !onLink(c.Addresses, gw) {
				return bad(c, "gateway", "%s is not in a subnet of this interface's addresses", c.Gateway)
			}
		}
		if c.Type != api.IfaceBridge && (len(c.Ports) > 0 || c.STP || c.VLANAware) {
			return bad(c, "bridge_ports", "only bridges have ports, stp and vlan_aware")
		}
		for _, p := range c.Ports {
			if err := usable(c, "bridge_ports", p); err != nil {
				return err
			}
			if d := byName[p]; d != nil && d.Type == api.IfaceBridge {
				return bad(c, "bridge_ports", "a bridge cannot be a port of another bridge")
			}
			if o, ok := portOf[p]; ok {
				return bad(c, "bridge_ports", "%s is already a port or slave of %s", p, o)
			}
			portOf[p] = c.Iface
		}
		switch c.Type {
		case api.IfaceVXLAN:
			if c.VNI < 1 {
				return bad(c, "vni", "a VXLAN needs a VNI of 1-16777215")
			}
			port := c.Port
			if port == 0 {
				port = 4789
			}
			if o, ok := vnis[[2]int{c.VNI, port}]; ok {
				return bad(c, "vni", "VNI %d on port %d is already used by %s", c.VNI, port, o)
			}
			vnis[[2]int{c.VNI, port}] = c.Iface
			for _, r := range append([]string{c.Local}, c.Remotes...) {
				if r != "" && net.ParseIP(r) == nil {
					return bad(c, "remotes", "%q is not an IP address", r)
				}
			}
			if c.Dev != "" {
				if err := usable(c, "dev", c.Dev); err != nil {
					return err
				}
			}
		case api.IfaceBond:
			if _, ok := bondModes[c.BondMode]; !ok && c.BondMode != "" {
				return bad(c, "bond_mode", "unknown mode %q", c.BondMode)
			}
			if len(c.Slaves) == 0 {
				return bad(c, "slaves", "a bond needs at least one slave")
			}
			for _, s := range c.Slaves {
				if err := usable(c, "slaves", s); err != nil {
					return err
				}
				if o, ok := portOf[s]; ok {
					return bad(c, "slaves", "%s is already a port or slave of %s", s, o)
				}
				portOf[s] = c.Iface
			}
		case api.IfaceVLAN:
			if c.VLANID < 1 || c.VLANID > 4094 {
				return bad(c, "vlan_id", "a VLAN needs an ID of 1-4094")
			}
			if c.VLANRaw == "" {
				return bad(c, "vlan_raw_device", "a VLAN needs its raw device")
			}
			if err := usable(c, "vlan_raw_device", c.VLANRaw); err != nil {
				return err
			}
		}
		if c.Type != api.IfaceVXLAN && (c.VNI != 0 || len(c.Remotes) > 0 || c.Local != "" || c.Port != 0 || c.Dev != "") {
			return bad(c, "vni", "vni, local, remotes, dstport and dev are VXLAN settings")
		}
	}
	return nil
}

var bondModes = map[string]netlink.BondMode{"balance-rr": netlink.BOND_MODE_BALANCE_RR, "active-backup": netlink.BOND_MODE_ACTIVE_BACKUP,
	"balance-xor": netlink.BOND_MODE_BALANCE_XOR, "broadcast": netlink.BOND_MODE_BROADCAST, "802.3ad": netlink.BOND_MODE_802_3AD,
	"balance-tlb": netlink.BOND_MODE_BALANCE_TLB, "balance-alb": netlink.BOND_MODE_BALANCE_ALB}

func onLink(addrs []string, ip net.IP) bool {
	return slices.ContainsFunc(addrs, func(a string) bool {
		_, n, err := net.ParseCIDR(a)
		return err == nil && n.Contains(ip)
	})
}
