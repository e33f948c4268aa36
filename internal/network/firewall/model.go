// Package firewall compiles corral's firewall (cluster, node and guest
// levels, security groups, IP sets, aliases, per-port anti-spoofing) into
// one nftables ruleset and applies it atomically with google/nftables.
//
// Layout: table "bridge corral" marks packets entering from and leaving to a
// guest port (the port's id in the low/high 16 bits of the packet mark) and
// drops spoofed MAC/IP sources; with br_netfilter on, bridged IP traffic then
// passes the "inet corral" forward chain, where conntrack works and each
// guest's in/out chain is entered by mark. The bridge family has no
// conntrack on kernels without nf_conntrack_bridge, which is why the rules
// live in inet. Node and cluster rules are the inet input/output chains.
package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
)

// Config is everything the ruleset is compiled from.
type Config struct {
	Cluster api.FwRules
	Node    api.FwRules
	Groups  map[string]api.FwGroup
	IPSets  map[string]api.FwIPSet
	Aliases map[string]api.FwAlias
	Guests  []Guest
	// MgmtPorts are TCP ports the node always accepts while its firewall
	// is on (the API, the store's peer port, ssh), so no rule or policy
	// locks the administrators out of the node.
	MgmtPorts []uint16
}

// Guest is one guest's firewall and its ports on this node.
type Guest struct {
	ID    int
	Rules api.FwRules
	Ports []Port
}

// Port is one guest NIC's port.
type Port struct {
	Ifname   string   // host-side device (tap100i0, veth100i0)
	NIC      string   // net0, matched by a rule's iface
	MAC      string   // the only source MAC allowed out of the guest
	IPs      []string // the only source addresses allowed out; empty: any
	Firewall bool     // the NIC's firewall switch
}

// Defaults of the levels' policies.
const (
	GuestPolicyIn  = "DROP"
	GuestPolicyOut = "ACCEPT"
	NodePolicyIn   = "ACCEPT" // a node's default never locks out its own management
	NodePolicyOut  = "ACCEPT"
)

// match is a compiled rule: protocol, ports and address prefixes.
type match struct {
	proto        uint8
	dports       [][2]uint16
	sports       [][2]uint16
	src, dst     []netip.Prefix
	srcSet, dstS string // named set (ipset) instead of prefixes
	iface        string
	verdict      string
}

var protos = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}

// CheckRule validates one rule against the definitions it may refer to.
// The field names are the rule's JSON names.
func CheckRule(r api.FwRule, cfg *Config, inGroup bool) error {
	_, err := compileRule(r, cfg, inGroup)
	return err
}

func compileRule(r api.FwRule, cfg *Config, inGroup bool) (match, error) {
	var m match
	if r.Direction != "in" && r.Direction != "out" {
		return m, errs.Invalid("type", "must be in or out")
	}
	if r.Group != "" {
		if inGroup {
			return m, errs.Invalid("group", "security groups cannot include other groups")
		}
		if _, ok := cfg.Groups[r.Group]; !ok {
			return m, errs.Invalid("group", "security group %q does not exist", r.Group)
		}
		return m, nil
	}
	switch r.Action {
	case "ACCEPT", "DROP", "REJECT":
		m.verdict = r.Action
	default:
		return m, errs.Invalid("action", "must be ACCEPT, DROP or REJECT")
	}
	if r.Proto != "" {
		p, ok := protos[r.Proto]
		if !ok {
			return m, errs.Invalid("proto", "unknown protocol %q", r.Proto)
		}
		m.proto = p
	}
	var err error
	if m.dports, err = ports(r.DPort); err != nil {
		return m, errs.Invalid("dport", "%v", err)
	}
	if m.sports, err = ports(r.SPort); err != nil {
		return m, errs.Invalid("sport", "%v", err)
	}
	if (len(m.dports) > 0 || len(m.sports) > 0) && m.proto != 6 && m.proto != 17 && m.proto != 132 {
		return m, errs.Invalid("dport", "ports need proto tcp, udp or sctp")
	}
	if m.src, m.srcSet, err = addrs(r.Source, cfg); err != nil {
		return m, errs.Invalid("source", "%v", err)
	}
	if m.dst, m.dstS, err = addrs(r.Dest, cfg); err != nil {
		return m, errs.Invalid("dest", "%v", err)
	}
	if r.Iface != "" && !ifRe(r.Iface) {
		return m, errs.Invalid("iface", "%q is not an interface name", r.Iface)
	}
	m.iface = r.Iface
	if n := max(1, len(m.dports)) * max(1, len(m.sports)) * max(1, len(m.src)) * max(1, len(m.dst)); n > 256 {
		return m, errs.Invalid("dport", "the rule expands to %d nftables rules (at most 256); use an IP set", n)
	}
	return m, nil
}

func ifRe(s string) bool {
	if len(s) > 15 || s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ports parses "22", "80,443", "1000:2000".
func ports(s string) ([][2]uint16, error) {
	if s == "" {
		return nil, nil
	}
	var out [][2]uint16
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), ":")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil || a == 0 {
			return nil, fmt.Errorf("%q is not a port (1-65535)", part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a port range a:b with a <= b", part)
			}
		}
		out = append(out, [2]uint16{uint16(a), uint16(b)})
	}
	return out, nil
}

// addrs parses a comma list of addresses, CIDRs and alias names, or one
// +ipset reference.
func addrs(s string, cfg *Config) ([]netip.Prefix, string, error) {
	if s == "" {
		return nil, "", nil
	}
	if name, ok := strings.CutPrefix(s, "+"); ok {
		if _, ok := cfg.IPSets[name]; !ok {
			return nil, "", fmt.Errorf("IP set %q does not exist", name)
		}
		return nil, name, nil
	}
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if a, ok := cfg.Aliases[part]; ok {
			part = a.CIDR
		}
		p, err := ParsePrefix(part)
		if err != nil {
			return nil, "", fmt.Errorf("%q is neither an address, a CIDR nor an alias", part)
		}
		out = append(out, p)
	}
	return out, "", nil
}

// ParsePrefix accepts an address or a CIDR and returns the masked prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked(), nil
}

// CheckPort validates a port's anti-spoofing data.
func CheckPort(p Port) error {
	if m, err := net.ParseMAC(p.MAC); p.MAC != "" && (err != nil || len(m) != 6) {
		return errs.Invalid("mac", "%q is not an Ethernet address", p.MAC)
	}
	for _, ip := range p.IPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return errs.Invalid("ip", "%q is not an IP address", ip)
		}
	}
	return nil
}

func policy(p, def string) string {
	if p == "" {
		return def
	}
	return p
}
