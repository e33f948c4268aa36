package api

import "time"

// Host interface types.
const (
	IfaceEth    = "eth"    // a physical NIC: never created or deleted, only configured
	IfaceBridge = "bridge" // Linux bridge
	IfaceVXLAN  = "vxlan"
	IfaceBond   = "bond"
	IfaceVLAN   = "vlan" // 802.1q sub-interface
	IfaceOther  = "other"
)

// NetIface is one declared (or, in the running view, observed) host interface.
// ACL path /nodes/{node}.
type NetIface struct {
	Iface     string   `json:"iface" minLength:"1" maxLength:"15" pattern:"^[A-Za-z][A-Za-z0-9_.-]*$"`
	Type      string   `json:"type" enum:"eth,bridge,vxlan,bond,vlan,other"`
	Addresses []string `json:"addresses,omitempty" maxItems:"32" doc:"CIDRs, e.g. 192.0.2.10/24"`
	Gateway   string   `json:"gateway,omitempty" maxLength:"45" doc:"default gateway reached through this interface"`
	MTU       int      `json:"mtu,omitempty" minimum:"0" maximum:"65535"`
	Comment   string   `json:"comment,omitempty" maxLength:"256"`
	// Bridge.
	Ports     []string `json:"bridge_ports,omitempty" maxItems:"64"`
	STP       bool     `json:"stp,omitempty"`
	VLANAware bool     `json:"vlan_aware,omitempty" doc:"bridge VLAN filtering"`
	// VXLAN.
	VNI     int      `json:"vni,omitempty" minimum:"0" maximum:"16777215"`
	Local   string   `json:"local,omitempty" maxLength:"45" doc:"source address of the tunnel"`
	Remotes []string `json:"remotes,omitempty" maxItems:"256" doc:"unicast peers (head-end replication)"`
	Port    int      `json:"dstport,omitempty" minimum:"0" maximum:"65535" doc:"UDP port, default 4789"`
	Dev     string   `json:"dev,omitempty" maxLength:"15" doc:"vxlan: underlay device"`
	// Bond.
	BondMode string   `json:"bond_mode,omitempty" enum:"balance-rr,active-backup,balance-xor,broadcast,802.3ad,balance-tlb,balance-alb,"`
	Slaves   []string `json:"slaves,omitempty" maxItems:"16"`
	// VLAN.
	VLANID  int    `json:"vlan_id,omitempty" minimum:"0" maximum:"4094"`
	VLANRaw string `json:"vlan_raw_device,omitempty" maxLength:"15"`
	// Observed only.
	Up     bool   `json:"up,omitempty" readOnly:"true"`
	MAC    string `json:"mac,omitempty" readOnly:"true"`
	Master string `json:"master,omitempty" readOnly:"true" doc:"bridge or bond this interface is a port of"`
}

// NetRoute is one route read from the host.
type NetRoute struct {
	Dst     string `json:"dst"`
	Gateway string `json:"gateway,omitempty"`
	Iface   string `json:"iface,omitempty"`
}

// NetCaps says which interface features this node's kernel has.
type NetCaps struct {
	Bridge     bool `json:"bridge"`
	VXLAN      bool `json:"vxlan"`
	Bond       bool `json:"bond"`
	VLAN       bool `json:"vlan" doc:"802.1q sub-interfaces"`
	VLANFilter bool `json:"vlan_filtering" doc:"VLAN-aware bridges and VLAN tags on guest ports"`
	Tap        bool `json:"tap"`
}

// NetChange is one line of the pending diff.
type NetChange struct {
	Iface  string `json:"iface"`
	Action string `json:"action" enum:"add,change,delete"`
	Detail string `json:"detail,omitempty"`
}

// NodeNetwork is GET /nodes/{node}/network.
type NodeNetwork struct {
	Node       string      `json:"node"`
	Running    []NetIface  `json:"running" doc:"what the host has now"`
	Configured []NetIface  `json:"configured" doc:"the last applied configuration"`
	Pending    []NetIface  `json:"pending,omitempty" doc:"the configuration that apply would make running; absent when nothing is pending"`
	Diff       []NetChange `json:"diff,omitempty"`
	Routes     []NetRoute  `json:"routes,omitempty"`
	Caps       NetCaps     `json:"caps"`
	Digest     string      `json:"digest,omitempty" readOnly:"true"`
}

// NetApply is the body of PUT /nodes/{node}/network.
type NetApply struct {
	Force bool `json:"force,omitempty" doc:"apply even if the management address would be removed"`
}

// FwRule is one firewall rule.
type FwRule struct {
	Direction string `json:"type" enum:"in,out" doc:"in: towards the guest or node; out: from it"`
	Action    string `json:"action" enum:"ACCEPT,DROP,REJECT" doc:"or the name of a security group to include (type group)"`
	Group     string `json:"group,omitempty" maxLength:"32" doc:"include this security group's rules instead of one rule"`
	Proto     string `json:"proto,omitempty" enum:"tcp,udp,icmp,icmpv6,sctp,"`
	DPort     string `json:"dport,omitempty" maxLength:"64" doc:"port, range a:b, or comma list"`
	SPort     string `json:"sport,omitempty" maxLength:"64"`
	Source    string `json:"source,omitempty" maxLength:"512" doc:"addresses/CIDRs (comma list), +ipset or alias name"`
	Dest      string `json:"dest,omitempty" maxLength:"512"`
	Iface     string `json:"iface,omitempty" maxLength:"15"`
	Comment   string `json:"comment,omitempty" maxLength:"256"`
	Enable    bool   `json:"enable"`
}

// FwOptions are the switches and default policies of one level.
type FwOptions struct {
	Enable    bool   `json:"enable"`
	PolicyIn  string `json:"policy_in,omitempty" enum:"ACCEPT,DROP,REJECT,"`
	PolicyOut string `json:"policy_out,omitempty" enum:"ACCEPT,DROP,REJECT,"`
	MACFilter *bool  `json:"macfilter,omitempty" doc:"guest: anti-spoofing on its ports (default on)"`
}

// FwRules is the firewall of one level (cluster, node or guest).
type FwRules struct {
	Options FwOptions `json:"options"`
	Rules   []FwRule  `json:"rules"`
	Digest  string    `json:"digest,omitempty" readOnly:"true"`
}

// FwGroup is a security group: rules reusable by guests.
type FwGroup struct {
	Group   string   `json:"group" minLength:"1" maxLength:"32" pattern:"^[A-Za-z][A-Za-z0-9_-]*$"`
	Comment string   `json:"comment,omitempty" maxLength:"256"`
	Rules   []FwRule `json:"rules"`
	Digest  string   `json:"digest,omitempty" readOnly:"true"`
}

// FwIPSet is a named set of addresses and CIDRs, referenced as +name.
type FwIPSet struct {
	Name    string   `json:"name" minLength:"1" maxLength:"32" pattern:"^[A-Za-z][A-Za-z0-9_-]*$"`
	CIDRs   []string `json:"cidrs"`
	Comment string   `json:"comment,omitempty" maxLength:"256"`
	Digest  string   `json:"digest,omitempty" readOnly:"true"`
}

// FwAlias names one address or CIDR.
type FwAlias struct {
	Name    string `json:"name" minLength:"1" maxLength:"32" pattern:"^[A-Za-z][A-Za-z0-9_-]*$"`
	CIDR    string `json:"cidr" maxLength:"49"`
	Comment string `json:"comment,omitempty" maxLength:"256"`
	Digest  string `json:"digest,omitempty" readOnly:"true"`
}

// Zone is an SDN zone: simple (a bridge per node) or vxlan (one L2 segment across nodes).
type Zone struct {
	Zone   string   `json:"zone" minLength:"1" maxLength:"8" pattern:"^[a-z][a-z0-9]*$"`
	Type   string   `json:"type" enum:"simple,vxlan"`
	Peers  []string `json:"peers,omitempty" maxItems:"256" doc:"vxlan: underlay addresses; default: the cluster's node addresses"`
	MTU    int      `json:"mtu,omitempty" minimum:"0" maximum:"65535" doc:"vxlan: default 1450"`
	Nodes  []string `json:"nodes,omitempty" maxItems:"64"`
	Digest string   `json:"digest,omitempty" readOnly:"true"`
}

// VNet is a virtual network in a zone; guests reference it like a bridge.
type VNet struct {
	VNet   string `json:"vnet" minLength:"1" maxLength:"8" pattern:"^[a-z][a-z0-9]*$"`
	Zone   string `json:"zone" minLength:"1" maxLength:"8"`
	Tag    int    `json:"tag,omitempty" minimum:"0" maximum:"16777215" doc:"vxlan: VNI"`
	Digest string `json:"digest,omitempty" readOnly:"true"`
}

// Subnet is an IP subnet of a vnet, with the gateway on the host and DHCP.
type Subnet struct {
	Subnet    string `json:"subnet" doc:"CIDR"`
	VNet      string `json:"vnet" minLength:"1" maxLength:"8"`
	Gateway   string `json:"gateway,omitempty" maxLength:"45"`
	SNAT      bool   `json:"snat,omitempty" doc:"masquerade onto the uplink"`
	DHCPStart string `json:"dhcp_start,omitempty" maxLength:"45"`
	DHCPEnd   string `json:"dhcp_end,omitempty" maxLength:"45"`
	Digest    string `json:"digest,omitempty" readOnly:"true"`
}

// IPAlloc is one IPAM allocation.
type IPAlloc struct {
	IP     string `json:"ip"`
	Subnet string `json:"subnet"`
	Owner  string `json:"owner" doc:"e.g. vm/100/net0"`
	MAC    string `json:"mac,omitempty"`
}

// FwLogEntry is one packet the firewall dropped.
type FwLogEntry struct {
	Time  time.Time `json:"time"`
	Rule  string    `json:"rule" doc:"level and chain, e.g. 'guest 101 in' or 'node in'"`
	In    string    `json:"in,omitempty"`
	Out   string    `json:"out,omitempty"`
	Src   string    `json:"src,omitempty"`
	Dst   string    `json:"dst,omitempty"`
	Proto string    `json:"proto,omitempty"`
	SPort int       `json:"sport,omitempty"`
	DPort int       `json:"dport,omitempty"`
}
