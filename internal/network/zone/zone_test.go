package zone

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/network/host"
	"github.com/corral-project/corral/internal/network/nettest"
	"github.com/corral-project/corral/internal/network/port"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestIPAM(t *testing.T) {
	ctx := context.Background()
	d := NewDefs(nettest.Store(t))
	must(t, d.CreateZone(ctx, api.Zone{Zone: "z1", Type: "simple"}))
	must(t, d.CreateVNet(ctx, api.VNet{VNet: "v1", Zone: "z1"}))
	must(t, d.CreateSubnet(ctx, api.Subnet{Subnet: "10.90.0.0/27", VNet: "v1", Gateway: "10.90.0.1", DHCPStart: "10.90.0.20", DHCPEnd: "10.90.0.30"}))
	id := SubnetID("10.90.0.0/27")
	// 32 addresses - network, broadcast, gateway, 11 in the DHCP pool = 18 free.
	var mu sync.Mutex
	got := map[string]string{}
	var wg sync.WaitGroup
	for i := range 18 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip, err := d.Alloc(ctx, id, fmt.Sprintf("vm/%d/net0", 100+i), "")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if o, dup := got[ip]; dup {
				t.Errorf("%s given twice (%s)", ip, o)
			}
			got[ip] = fmt.Sprint(i)
		}()
	}
	wg.Wait()
	if _, err := d.Alloc(ctx, id, "vm/999/net0", ""); errs.KindOf(err) != errs.KindNoSpace {
		t.Fatalf("full subnet: %v", err)
	}
	ip1, _ := d.Alloc(ctx, id, "vm/100/net0", "bc:24:11:00:00:01")
	ip2, _ := d.Alloc(ctx, id, "vm/100/net0", "")
	if ip1 != ip2 || got[ip1] == "" {
		t.Fatalf("an owner's address must be stable: %s, %s", ip1, ip2)
	}
	must(t, d.Release(ctx, "vm/100/net0"))
	if ip, err := d.Alloc(ctx, id, "vm/999/net0", ""); err != nil || ip != ip1 {
		t.Fatalf("a released address is reused: %s %v", ip, err)
	}
	if err := d.DeleteSubnet(ctx, id, ""); errs.KindOf(err) != errs.KindConflict {
		t.Fatalf("delete with allocations: %v", err)
	}
}

func TestDefsValidation(t *testing.T) {
	ctx := context.Background()
	d := NewDefs(nettest.Store(t))
	must(t, d.CreateZone(ctx, api.Zone{Zone: "vx", Type: "vxlan"}))
	must(t, d.CreateVNet(ctx, api.VNet{VNet: "a", Zone: "vx", Tag: 10}))
	must(t, d.CreateSubnet(ctx, api.Subnet{Subnet: "10.91.0.0/24", VNet: "a"}))
	cases := []struct {
		field string
		err   error
	}{
		{"zone", d.CreateZone(ctx, api.Zone{Zone: "Bad", Type: "simple"})},
		{"type", d.CreateZone(ctx, api.Zone{Zone: "z", Type: "evpn"})},
		{"peers[0]", d.CreateZone(ctx, api.Zone{Zone: "z", Type: "vxlan", Peers: []string{"x"}})},
		{"zone", d.CreateVNet(ctx, api.VNet{VNet: "b", Zone: "nope"})},
		{"tag", d.CreateVNet(ctx, api.VNet{VNet: "b", Zone: "vx"})},
		{"tag", d.CreateVNet(ctx, api.VNet{VNet: "b", Zone: "vx", Tag: 10})},
		{"subnet", d.CreateSubnet(ctx, api.Subnet{Subnet: "10.91.0.1/24", VNet: "a"})},
		{"subnet", d.CreateSubnet(ctx, api.Subnet{Subnet: "10.91.0.0/16", VNet: "a"})},
		{"gateway", d.CreateSubnet(ctx, api.Subnet{Subnet: "10.92.0.0/24", VNet: "a", Gateway: "10.93.0.1"})},
		{"dhcp_end", d.CreateSubnet(ctx, api.Subnet{Subnet: "10.92.0.0/24", VNet: "a", Gateway: "10.92.0.1", DHCPStart: "10.92.0.9"})},
		{"vnet", d.CreateSubnet(ctx, api.Subnet{Subnet: "10.92.0.0/24", VNet: "zz"})},
	}
	for _, c := range cases {
		e, ok := c.err.(*errs.Error)
		if !ok || e.Kind != errs.KindInvalid || e.Fields[0].Field != c.field {
			t.Fatalf("want invalid %s, got %v", c.field, c.err)
		}
	}
	if err := d.DeleteZone(ctx, "vx", ""); errs.KindOf(err) != errs.KindConflict {
		t.Fatalf("zone with vnets: %v", err)
	}
}

// guestOn plugs a container NIC into bridge on h and moves it into a new
// guest namespace (cidr "" leaves it unaddressed).
func guestOn(t *testing.T, h *network.NS, p *port.Ports, id int, bridge, mac, cidr string) *network.NS {
	t.Helper()
	if _, err := p.Plug(context.Background(), id, 0, port.Spec{Kind: port.Veth, Bridge: bridge, MAC: mac}); err != nil {
		t.Fatal(err)
	}
	g := nettest.NS(t, "g")
	nettest.MoveIn(t, h, port.PeerName(id, 0), g, "eth0", cidr)
	return g
}

var leaseRe = regexp.MustCompile(`lease of ([0-9.]+) obtained`)

// dhcp runs busybox's udhcpc once in g and returns the leased address.
func dhcp(t *testing.T, g *network.NS, extra ...string) string {
	t.Helper()
	args := append([]string{"busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", "/bin/true"}, extra...)
	out, err := nettest.Try(g.Name, 30*time.Second, args...)
	m := leaseRe.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("no DHCP lease: %v\n%s", err, out)
	}
	return m[1]
}

func TestSimpleZoneDHCP(t *testing.T) {
	nettest.Root(t)
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		t.Skip("needs dnsmasq (dnsmasq-base)")
	}
	if out, err := exec.Command("busybox", "udhcpc", "--help").CombinedOutput(); err != nil && len(out) == 0 {
		t.Skip("needs busybox udhcpc as the guests' DHCP client")
	}
	ctx := context.Background()
	h := nettest.NS(t, "h")
	d := NewDefs(nettest.Store(t))
	must(t, d.CreateZone(ctx, api.Zone{Zone: "lab", Type: "simple"}))
	must(t, d.CreateVNet(ctx, api.VNet{VNet: "lan", Zone: "lab"}))
	must(t, d.CreateSubnet(ctx, api.Subnet{Subnet: "10.70.0.0/24", VNet: "lan", Gateway: "10.70.0.1", SNAT: true,
		DHCPStart: "10.70.0.100", DHCPEnd: "10.70.0.150"}))
	fixed, err := d.Alloc(ctx, SubnetID("10.70.0.0/24"), "vm/201/net0", "bc:24:11:70:00:02")
	must(t, err)
	n := NewNode(d, "n1", h, t.TempDir(), slog.Default())
	t.Cleanup(n.Close)
	must(t, n.Apply(ctx))
	ports := port.New(h, host.DetectCaps(), slog.Default())
	g1 := guestOn(t, h, ports, 200, "lan", "bc:24:11:70:00:01", "")
	g2 := guestOn(t, h, ports, 201, "lan", "bc:24:11:70:00:02", "")

	ip := dhcp(t, g1)
	t.Logf("guest 200 got %s from the pool", ip)
	if a := netipMust(ip); a.Compare(netipMust("10.70.0.100")) < 0 || a.Compare(netipMust("10.70.0.150")) > 0 {
		t.Fatalf("%s is outside the DHCP range", ip)
	}
	if got := dhcp(t, g2, "-x", "hostname:web"); got != fixed {
		t.Fatalf("guest 201 got %s, IPAM gave it %s", got, fixed)
	}
	// dnsmasq is the guests' DNS: the name guest 201 gave is resolvable.
	nettest.Addr(t, g1, "eth0", ip+"/24")
	out, err := nettest.Try(g1.Name, 10*time.Second, "busybox", "nslookup", "web.lan.corral", "10.70.0.1")
	if err != nil || !strings.Contains(out, fixed) {
		t.Fatalf("DNS for guests: %v\n%s", err, out)
	}
	// SNAT is configured (never exercised: nothing leaves the namespaces).
	if !h.TableExists(nftables.TableFamilyINet, NATTable) {
		t.Fatal("no SNAT table for a subnet with snat")
	}
	// The supervisor restarts a dnsmasq that dies.
	pid := n.DNSPid("lan")
	if pid == 0 {
		t.Fatal("no dnsmasq")
	}
	must(t, syscall.Kill(pid, syscall.SIGKILL))
	deadline := time.Now().Add(10 * time.Second)
	for n.DNSPid("lan") == 0 || n.DNSPid("lan") == pid {
		if time.Now().After(deadline) {
			t.Fatal("dnsmasq was not restarted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Applying again is a no-op; removing the subnet stops dnsmasq.
	must(t, n.Apply(ctx))
	must(t, d.Release(ctx, "vm/201/net0"))
	must(t, d.DeleteSubnet(ctx, SubnetID("10.70.0.0/24"), ""))
	must(t, n.Apply(ctx))
	if n.DNSPid("lan") != 0 {
		t.Fatal("dnsmasq still runs for a vnet without DHCP")
	}
}

// TestVXLANZone: two namespace "hosts" joined by a veth underlay; guests of
// the same vnet on both reach each other over VXLAN, a guest of another VNI
// with an address in the same subnet can't.
func TestVXLANZone(t *testing.T) {
	nettest.Root(t)
	caps := host.DetectCaps()
	if !caps.VXLAN {
		t.Skip("SKIPPED for the kernel: no VXLAN")
	}
	ctx := context.Background()
	h1, h2 := nettest.NS(t, "h"), nettest.NS(t, "h")
	nettest.Veth(t, h1, "under", h2, "under")
	nettest.Addr(t, h1, "under", "10.80.0.1/24")
	nettest.Addr(t, h2, "under", "10.80.0.2/24")
	d := NewDefs(nettest.Store(t)) // one cluster store shared by both nodes
	must(t, d.CreateZone(ctx, api.Zone{Zone: "ovl", Type: "vxlan"}))
	must(t, d.CreateVNet(ctx, api.VNet{VNet: "blue", Zone: "ovl", Tag: 1000}))
	must(t, d.CreateVNet(ctx, api.VNet{VNet: "red", Zone: "ovl", Tag: 2000}))
	peers := func() []string { return []string{"10.80.0.1", "10.80.0.2"} }
	for i, h := range []*network.NS{h1, h2} {
		n := NewNode(d, fmt.Sprintf("n%d", i+1), h, t.TempDir(), slog.Default())
		n.Local, n.Peers = fmt.Sprintf("10.80.0.%d", i+1), peers
		must(t, n.Apply(ctx))
	}
	running, _, _ := host.Read(h1)
	for _, r := range running {
		if r.Iface == "vxlan_blue" && (r.VNI != 1000 || r.MTU != 1450 || len(r.Remotes) != 1 || r.Remotes[0] != "10.80.0.2") {
			t.Fatalf("vxlan: %+v", r)
		}
	}
	p1, p2 := port.New(h1, caps, slog.Default()), port.New(h2, caps, slog.Default())
	a := guestOn(t, h1, p1, 300, "blue", "bc:24:11:80:00:01", "10.81.0.1/24")
	_ = guestOn(t, h2, p2, 301, "blue", "bc:24:11:80:00:02", "10.81.0.2/24")
	_ = guestOn(t, h2, p2, 302, "red", "bc:24:11:80:00:03", "10.81.0.3/24")
	if !nettest.Ping(a, "10.81.0.2") {
		t.Fatal("guests of one vnet on two hosts can't reach each other over VXLAN")
	}
	if nettest.Ping(a, "10.81.0.3") {
		t.Fatal("a guest of another VNI is reachable")
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }
