package zone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/network/host"
)

// Node realises the zones on one node: a bridge per vnet (with a VXLAN port
// in vxlan zones), the subnets' gateway addresses, a dnsmasq per vnet with
// DHCP, and SNAT rules.
type Node struct {
	Name   string
	Local  string          // this node's underlay address (VXLAN source; left out of the peers)
	Peers  func() []string // the cluster's node addresses, the default VXLAN peers
	defs   *Defs
	ns     *network.NS
	runDir string
	log    *slog.Logger

	mu   sync.Mutex
	prev []api.NetIface
	dns  map[string]*dnsmasq
}

// NewNode returns the zone applier of a node working in ns, keeping
// dnsmasq's files under runDir.
func NewNode(defs *Defs, name string, ns *network.NS, runDir string, log *slog.Logger) *Node {
	return &Node{Name: name, defs: defs, ns: ns, runDir: runDir, log: log, dns: map[string]*dnsmasq{}}
}

// VXLANName is the VXLAN port of a vnet's bridge.
func VXLANName(vnet string) string { return "vxlan_" + vnet }

// desired is the interface configuration the zones ask of this node.
func (n *Node) desired() ([]api.NetIface, error) {
	var out []api.NetIface
	for _, v := range n.defs.VNets() {
		z, err := n.defs.Zone(v.Zone)
		if err != nil {
			continue
		}
		if len(z.Nodes) > 0 && !slices.Contains(z.Nodes, n.Name) {
			continue
		}
		br := api.NetIface{Iface: v.VNet, Type: api.IfaceBridge, Comment: "zone " + z.Zone}
		for _, s := range n.defs.SubnetsOf(v.VNet) {
			if s.Gateway != "" {
				p := netip.MustParsePrefix(s.Subnet)
				br.Addresses = append(br.Addresses, netip.PrefixFrom(netip.MustParseAddr(s.Gateway), p.Bits()).String())
			}
		}
		if z.Type == "vxlan" {
			mtu := z.MTU
			if mtu == 0 {
				mtu = 1450 // 1500 less the VXLAN, UDP, IP and Ethernet headers
			}
			peers := z.Peers
			if len(peers) == 0 && n.Peers != nil {
				peers = n.Peers()
			}
			peers = slices.DeleteFunc(slices.Clone(peers), func(p string) bool { return p == n.Local || p == "" })
			slices.Sort(peers)
			vx := api.NetIface{Iface: VXLANName(v.VNet), Type: api.IfaceVXLAN, VNI: v.Tag, Local: n.Local, Remotes: peers, MTU: mtu}
			out = append(out, vx)
			br.Ports, br.MTU = []string{vx.Iface}, mtu
		}
		out = append(out, br)
	}
	return out, nil
}

// Apply brings the node to the current definitions. It is idempotent; the
// daemon calls it at start and whenever zones, vnets or subnets change.
func (n *Node) Apply(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	want, err := n.desired()
	if err != nil {
		return err
	}
	if err := host.Apply(n.ns, n.prev, want); err != nil {
		return fmt.Errorf("zones on %s: %w", n.Name, err)
	}
	n.prev = want
	var errList []error
	keep := map[string]bool{}
	for _, v := range n.defs.VNets() {
		if !slices.ContainsFunc(want, func(i api.NetIface) bool { return i.Iface == v.VNet }) {
			continue
		}
		for _, s := range n.defs.SubnetsOf(v.VNet) {
			if s.DHCPStart == "" {
				continue
			}
			keep[v.VNet] = true
			errList = append(errList, n.ensureDNS(v.VNet, s))
			break // one DHCP subnet per vnet
		}
	}
	for name, d := range n.dns {
		if !keep[name] {
			d.stop()
			delete(n.dns, name)
		}
	}
	errList = append(errList, n.applyNAT())
	return errors.Join(errList...)
}

// Close stops the dnsmasq processes (the bridges stay, like guests do).
func (n *Node) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, d := range n.dns {
		d.stop()
		delete(n.dns, name)
	}
}

// DNSPid is the pid of a vnet's dnsmasq, 0 if none runs (for tests and status).
func (n *Node) DNSPid(vnet string) int {
	n.mu.Lock()
	d := n.dns[vnet]
	n.mu.Unlock()
	if d == nil {
		return 0
	}
	return d.pid()
}

func (n *Node) ensureDNS(vnet string, s api.Subnet) error {
	dir := filepath.Join(n.runDir, "dnsmasq")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hosts := filepath.Join(dir, vnet+".hosts")
	var b strings.Builder
	for _, a := range n.defs.Allocations(SubnetID(s.Subnet)) {
		if a.MAC != "" {
			fmt.Fprintf(&b, "%s,%s\n", strings.ToLower(a.MAC), a.IP)
		}
	}
	if err := writeIfChanged(hosts, b.String()); err != nil {
		return err
	}
	p := netip.MustParsePrefix(s.Subnet)
	args := []string{"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--interface=" + vnet, "--except-interface=lo", "--listen-address=" + s.Gateway, "--dhcp-authoritative",
		"--dhcp-leasefile=" + filepath.Join(dir, vnet+".leases"), "--dhcp-hostsfile=" + hosts, "--pid-file=",
		"--user=root", "--domain=" + vnet + ".corral", "--local=/" + vnet + ".corral/",
		"--dhcp-range=" + s.DHCPStart + "," + s.DHCPEnd + "," + maskOf(p) + ",1h",
		"--dhcp-option=option:router," + s.Gateway, "--dhcp-option=option:dns-server," + s.Gateway,
	}
	if p.Addr().Is4() {
		// Addresses IPAM gave out (outside the pool) are served to their MACs.
		args = append(args, "--dhcp-range="+p.Addr().String()+",static,"+maskOf(p)+",1h")
	}
	if d := n.dns[vnet]; d != nil {
		if slices.Equal(d.args, args) {
			d.reload() // the hosts file may have changed
			return nil
		}
		d.stop()
	}
	d := startDNS(n.ns, vnet, args, n.log)
	n.dns[vnet] = d
	return nil
}

func maskOf(p netip.Prefix) string {
	if !p.Addr().Is4() {
		return fmt.Sprint(p.Bits())
	}
	m := uint32(0xffffffff) << (32 - p.Bits())
	return fmt.Sprintf("%d.%d.%d.%d", m>>24, m>>16&0xff, m>>8&0xff, m&0xff)
}

func writeIfChanged(path, content string) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// NATTable is the table holding the zones' SNAT rules.
const NATTable = "corral-nat"

// applyNAT replaces the SNAT table: masquerade what leaves a subnet with
// snat set through any interface but its own bridge.
func (n *Node) applyNAT() error {
	c, err := nftables.New(nftables.WithNetNSFd(n.ns.Fd()))
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(n.defs.Subnets(), func(s api.Subnet) bool { return s.SNAT }) &&
		!n.ns.TableExists(nftables.TableFamilyINet, NATTable) {
		return nil // nothing to masquerade, and no table of ours to clear
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: NATTable}
	c.AddTable(t)
	c.DelTable(t)
	t = c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: NATTable})
	pol := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &pol})
	for _, s := range n.defs.Subnets() {
		if !s.SNAT || !slices.ContainsFunc(n.prev, func(i api.NetIface) bool { return i.Iface == s.VNet }) {
			continue
		}
		p := netip.MustParsePrefix(s.Subnet)
		off, proto := uint32(12), byte(2) // NFPROTO_IPV4
		if !p.Addr().Is4() {
			off, proto = 8, 10
		}
		ln := uint32(p.Addr().BitLen() / 8)
		br := make([]byte, 16)
		copy(br, s.VNet)
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: ln},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: ln, Mask: maskBytes(p), Xor: make([]byte, ln)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: br},
			&expr.Masq{},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("zones: snat rules: %w", err)
	}
	return nil
}

func maskBytes(p netip.Prefix) []byte {
	b := make([]byte, p.Addr().BitLen()/8)
	for i := 0; i < p.Bits(); i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return b
}
