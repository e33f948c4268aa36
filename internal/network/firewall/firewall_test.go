package firewall

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/network/host"
	"github.com/corral-project/corral/internal/network/nettest"
	"github.com/corral-project/corral/internal/network/port"
)

type lab struct {
	h, g1, g2 *network.NS
	ports     *port.Ports
}

const (
	mac1, mac2 = "bc:24:11:00:00:11", "bc:24:11:00:00:12"
	ip1, ip2   = "10.60.0.1", "10.60.0.2"
	ip61, ip62 = "fd00:60::1", "fd00:60::2"
)

// newLab makes a "host" namespace with a bridge and two container-like
// guests (100 and 101) plugged into it by the port package.
func newLab(t testing.TB) *lab {
	nettest.Root(t)
	l := &lab{h: nettest.NS(t, "h")}
	nettest.Bridge(t, l.h, "br0")
	l.ports = port.New(l.h, host.DetectCaps(), slog.Default())
	mk := func(id int, mac, ip string) *network.NS {
		if _, err := l.ports.Plug(context.Background(), id, 0, port.Spec{Kind: port.Veth, Bridge: "br0", MAC: mac}); err != nil {
			t.Fatal(err)
		}
		g := nettest.NS(t, "g")
		nettest.MoveIn(t, l.h, port.PeerName(id, 0), g, "eth0", ip+"/24")
		return g
	}
	l.g1, l.g2 = mk(100, mac1, ip1), mk(101, mac2, ip2)
	addr6(t, l.g1, ip61+"/64")
	addr6(t, l.g2, ip62+"/64")
	if !nettest.Ping(l.g1, ip2) { // also settles links and ARP
		t.Fatal("the guests can't reach each other")
	}
	return l
}

func (l *lab) config(g2 api.FwRules) Config {
	return Config{
		Cluster: api.FwRules{Options: api.FwOptions{Enable: true}},
		Guests: []Guest{
			{ID: 100, Rules: api.FwRules{Options: api.FwOptions{Enable: true},
				Rules: []api.FwRule{{Direction: "in", Action: "ACCEPT", Proto: "icmp", Enable: true},
					{Direction: "in", Action: "ACCEPT", Proto: "icmpv6", Enable: true}}},
				Ports: []Port{{Ifname: "veth100i0", NIC: "net0", MAC: mac1, IPs: []string{ip1, ip61}, Firewall: true}}},
			{ID: 101, Rules: g2, Ports: []Port{{Ifname: "veth101i0", NIC: "net0", MAC: mac2, IPs: []string{ip2, ip62}, Firewall: true}}},
		},
	}
}

// listen serves a greeting on ip:port inside ns.
func listen(t testing.TB, ns *network.NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
}

// dial reports whether a TCP connection from ns to addr gets the greeting.
func dial(ns *network.NS, addr string) bool {
	ok := false
	_ = ns.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		b, _ := io.ReadAll(c)
		ok = string(b) == "hello\n"
		return nil
	})
	return ok
}

func TestGuestFirewall(t *testing.T) {
	l := newLab(t)
	listen(t, l.g2, ip2+":8080")
	listen(t, l.g2, ip2+":8081")
	if !dial(l.g1, ip2+":8081") {
		t.Fatal("without a firewall the port should answer")
	}
	cfg := l.config(api.FwRules{Options: api.FwOptions{Enable: true}, // default: in DROP, out ACCEPT
		Rules: []api.FwRule{{Direction: "in", Group: "web", Enable: true}}})
	cfg.Groups = map[string]api.FwGroup{"web": {Group: "web", Rules: []api.FwRule{
		{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "8080", Enable: true, Comment: "web"}}}}
	rs, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(l.h, rs); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nftables rules", rs.Rules())
	dl, err := OpenDropLog(l.h)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	// Guest 100 drops everything inbound but ICMP: the reply of its
	// connection passes by conntrack.
	if !dial(l.g1, ip2+":8080") {
		t.Fatal("the accepted port is unreachable")
	}
	if dial(l.g1, ip2+":8081") {
		t.Fatal("a port without an ACCEPT rule is reachable")
	}
	// The drop is in the log, with the guest's chain, ports and addresses.
	var seen []api.FwLogEntry
	logged := func(e api.FwLogEntry) bool {
		return e.Rule == "guest 101 in" && e.DPort == 8081 && e.Src == ip1 && e.Dst == ip2 && e.Proto == "tcp" && e.Out == "veth101i0"
	}
	for range 20 {
		if seen = dl.Entries(0); slices.ContainsFunc(seen, logged) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.ContainsFunc(seen, logged) {
		t.Fatalf("the dropped connection is not in the log: %+v", seen)
	}
	t.Logf("drop log: %+v", seen[0])
	if !nettest.Ping(l.g2, ip1) {
		t.Fatal("guest 101 can't ping guest 100, whose firewall accepts ICMP")
	}

	t.Run("spoofed source IP", func(t *testing.T) {
		nettest.Addr(t, l.g2, "eth0", "10.60.0.99/32")
		if _, err := nettest.Try(l.g2.Name, 10*time.Second, "ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", "10.60.0.99", ip1); err == nil {
			t.Fatal("a packet with a spoofed source address left the guest")
		}
		if !nettest.Ping(l.g2, ip1) {
			t.Fatal("the real address stopped working")
		}
	})
	t.Run("IPv6 and a spoofed IPv6 source", func(t *testing.T) {
		if !nettest.Ping(l.g2, ip61) {
			t.Fatal("IPv6 between firewalled guests fails (neighbour discovery blocked?)")
		}
		addr6(t, l.g2, "fd00:60::99/128")
		if _, err := nettest.Try(l.g2.Name, 10*time.Second, "ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", "fd00:60::99", ip61); err == nil {
			t.Fatal("a packet with a spoofed IPv6 source left the guest")
		}
	})
	t.Run("spoofed source MAC", func(t *testing.T) {
		eth, _ := l.g2.H.LinkByName("eth0")
		if err := l.g2.H.LinkSetHardwareAddr(eth, nettest.MAC(t, "bc:24:11:00:00:99")); err != nil {
			t.Fatal(err)
		}
		defer l.g2.H.LinkSetHardwareAddr(eth, nettest.MAC(t, mac2))
		if nettest.Ping(l.g2, ip1) {
			t.Fatal("frames with a spoofed MAC left the guest")
		}
	})

	// Turning the guest's firewall off opens the port again.
	cfg.Guests[1].Rules.Options.Enable = false
	rs, _ = Compile(cfg)
	if err := Apply(l.h, rs); err != nil {
		t.Fatal(err)
	}
	if !dial(l.g1, ip2+":8081") {
		t.Fatal("firewall off, but the port is still blocked")
	}
	if err := Remove(l.h); err != nil {
		t.Fatal(err)
	}
}

// TestApplyIsAtomic: a ruleset the kernel refuses leaves the previous one
// in place, complete.
func TestApplyIsAtomic(t *testing.T) {
	nettest.Root(t)
	h := nettest.NS(t, "h")
	cfg := Config{Cluster: api.FwRules{Options: api.FwOptions{Enable: true}},
		Node: api.FwRules{Options: api.FwOptions{Enable: true}, Rules: []api.FwRule{
			{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "22", Enable: true},
			{Direction: "in", Action: "DROP", Source: "192.0.2.0/24,2001:db8::/32", Enable: true}}}}
	rs, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(h, rs); err != nil {
		t.Fatal(err)
	}
	before := count(t, h)
	bad, _ := Compile(cfg)
	bad.add(inet, "input", &expr.Verdict{Kind: expr.VerdictJump, Chain: "no-such-chain"})
	if err := Apply(h, bad); err == nil {
		t.Fatal("the kernel accepted a jump to a missing chain")
	}
	if after := count(t, h); after != before {
		t.Fatalf("a refused apply changed the ruleset: %d rules before, %d after", before, after)
	}
}

func count(t *testing.T, ns *network.NS) int {
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range []string{"input", "output", "forward"} {
		rules, err := c.GetRules(&nftables.Table{Family: inet, Name: Table}, &nftables.Chain{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		n += len(rules)
	}
	if n == 0 {
		t.Fatal("no rules")
	}
	return n
}

func TestCheckRule(t *testing.T) {
	cfg := &Config{Groups: map[string]api.FwGroup{"web": {Group: "web"}}, IPSets: map[string]api.FwIPSet{"mgmt": {Name: "mgmt"}},
		Aliases: map[string]api.FwAlias{"gw": {Name: "gw", CIDR: "192.0.2.1"}}}
	cases := []struct {
		field string
		r     api.FwRule
	}{
		{"", api.FwRule{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "22,80,1000:2000", Source: "gw,10.0.0.0/8"}},
		{"", api.FwRule{Direction: "in", Action: "DROP", Source: "+mgmt"}},
		{"", api.FwRule{Direction: "out", Group: "web"}},
		{"type", api.FwRule{Direction: "sideways", Action: "DROP"}},
		{"action", api.FwRule{Direction: "in", Action: "MAYBE"}},
		{"proto", api.FwRule{Direction: "in", Action: "DROP", Proto: "gre"}},
		{"dport", api.FwRule{Direction: "in", Action: "DROP", Proto: "tcp", DPort: "70000"}},
		{"dport", api.FwRule{Direction: "in", Action: "DROP", Proto: "tcp", DPort: "90:80"}},
		{"dport", api.FwRule{Direction: "in", Action: "DROP", DPort: "80"}},
		{"source", api.FwRule{Direction: "in", Action: "DROP", Source: "nosuchalias"}},
		{"source", api.FwRule{Direction: "in", Action: "DROP", Source: "+nosuchset"}},
		{"dest", api.FwRule{Direction: "in", Action: "DROP", Dest: "300.1.1.1"}},
		{"group", api.FwRule{Direction: "in", Group: "nope"}},
		{"iface", api.FwRule{Direction: "in", Action: "DROP", Iface: "bad name!"}},
	}
	for _, c := range cases {
		err := CheckRule(c.r, cfg, false)
		if c.field == "" {
			if err != nil {
				t.Fatalf("%+v: %v", c.r, err)
			}
			continue
		}
		e, ok := err.(*errs.Error)
		if !ok || e.Fields[0].Field != c.field {
			t.Fatalf("%+v: want invalid %s, got %v", c.r, c.field, err)
		}
		if !strings.Contains(err.Error(), c.field) {
			t.Fatalf("message should name the field: %v", err)
		}
	}
}

// TestNodeFirewall: node rules filter what reaches the host itself; the
// cluster switch turns them off.
func TestNodeFirewall(t *testing.T) {
	nettest.Root(t)
	h, peer := nettest.NS(t, "h"), nettest.NS(t, "p")
	nettest.Veth(t, h, "eth0", peer, "eth0")
	nettest.Addr(t, h, "eth0", "10.63.0.1/24")
	nettest.Addr(t, peer, "eth0", "10.63.0.2/24")
	listen(t, h, "10.63.0.1:22")
	listen(t, h, "10.63.0.1:2222")
	listen(t, h, "10.63.0.1:8006")
	listen(t, h, "10.63.0.1:2223")
	listen(t, h, "10.63.0.1:2224")
	if !nettest.Ping(peer, "10.63.0.1") {
		t.Fatal("no link")
	}
	cfg := Config{Cluster: api.FwRules{Options: api.FwOptions{Enable: true}},
		Aliases:   map[string]api.FwAlias{"peer": {Name: "peer", CIDR: "10.63.0.2"}},
		MgmtPorts: []uint16{8006},
		IPSets: map[string]api.FwIPSet{
			"trusted": {Name: "trusted", CIDRs: []string{"192.0.2.0/24", "10.63.0.0/30", "10.63.0.3", "fd00::/8"}},
			"others":  {Name: "others", CIDRs: []string{"10.63.0.128/25", "198.51.100.7"}}},
		Node: api.FwRules{Options: api.FwOptions{Enable: true, PolicyIn: "DROP"}, Rules: []api.FwRule{
			{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "22", Source: "peer", Enable: true},
			{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "2222", Enable: false},
			{Direction: "in", Action: "ACCEPT", Proto: "icmp", Enable: true},
			{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "2223", Source: "+trusted", Enable: true},
			{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "2224", Source: "+others", Enable: true}}}}
	apply := func() {
		t.Helper()
		rs, err := Compile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := Apply(h, rs); err != nil {
			t.Fatal(err)
		}
	}
	apply()
	if !dial(peer, "10.63.0.1:22") {
		t.Fatal("the accepted port is blocked")
	}
	if dial(peer, "10.63.0.1:2222") {
		t.Fatal("a disabled rule let traffic in")
	}
	if !nettest.Ping(peer, "10.63.0.1") {
		t.Fatal("ICMP is accepted but ping fails")
	}
	if !dial(peer, "10.63.0.1:2223") {
		t.Fatal("a source in the IP set was refused")
	}
	if dial(peer, "10.63.0.1:2224") {
		t.Fatal("a source outside the IP set was accepted")
	}
	if !dial(peer, "10.63.0.1:8006") {
		t.Fatal("the management port is blocked by the node's DROP policy")
	}
	cfg.Cluster.Options.Enable = false
	apply()
	if !dial(peer, "10.63.0.1:2222") {
		t.Fatal("the cluster switch is off, but the node still filters")
	}
}

// TestGuestReject: REJECT answers at once (ICMP admin-prohibited) instead of
// letting the client time out. The answer is sent by the host's IP stack,
// so it needs a host address in the guest's subnet, as a zone's gateway is
// (the bridge family's reject, which needs none, is missing on kernels
// without nft_reject_bridge, this one included).
func TestGuestReject(t *testing.T) {
	l := newLab(t)
	nettest.Addr(t, l.h, "br0", "10.60.0.254/24")
	listen(t, l.g2, ip2+":8081")
	rs, err := Compile(l.config(api.FwRules{Options: api.FwOptions{Enable: true, PolicyIn: "REJECT"}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(l.h, rs); err != nil {
		t.Fatal(err)
	}
	var derr error
	t0 := time.Now()
	_ = l.g1.Do(func() error {
		_, derr = net.DialTimeout("tcp", ip2+":8081", 3*time.Second)
		return nil
	})
	if derr == nil || time.Since(t0) > time.Second || !strings.Contains(derr.Error(), "no route to host") {
		t.Fatalf("want an immediate ICMP rejection, got %v after %v", derr, time.Since(t0))
	}
}

// addr6 adds an IPv6 address without duplicate address detection.
func addr6(t testing.TB, ns *network.NS, cidr string) {
	t.Helper()
	l, err := ns.H.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	a.Flags = unix.IFA_F_NODAD
	if err := ns.H.AddrAdd(l, a); err != nil {
		t.Fatal(err)
	}
}
