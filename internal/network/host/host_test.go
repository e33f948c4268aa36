package host

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/network/nettest"
)

var caps = func() api.NetCaps { return DetectCaps() }

func TestDetectCaps(t *testing.T) {
	nettest.Root(t)
	c := caps()
	t.Logf("kernel network features: %+v", c)
	if !c.Bridge || !c.Tap {
		t.Fatalf("bridges and taps are expected on any Linux host: %+v", c)
	}
}

func get(t *testing.T, ns *network.NS, name string) api.NetIface {
	t.Helper()
	r, _, err := Read(ns)
	if err != nil {
		t.Fatal(err)
	}
	i := find(r, name)
	if i == nil {
		t.Fatalf("%s not on the host: %+v", name, r)
	}
	return *i
}

func absent(t *testing.T, ns *network.NS, name string) {
	t.Helper()
	if _, err := ns.H.LinkByName(name); err == nil {
		t.Fatalf("%s still exists", name)
	}
}

// TestApplyAndRollback applies a bridge with a port, an address and a
// gateway, and a VXLAN with unicast peers, inside a namespace "host"; then a
// change the kernel refuses midway, which must leave the host as it was.
func TestApplyAndRollback(t *testing.T) {
	nettest.Root(t)
	c := caps()
	if !c.VXLAN {
		t.Skip("kernel lacks VXLAN")
	}
	h := nettest.NS(t, "h")
	peer := nettest.NS(t, "p")
	nettest.Veth(t, h, "eth0", peer, "eth0")
	nettest.Veth(t, h, "eth1", peer, "eth1")
	running, _, _ := Read(h)
	prev := []api.NetIface{}
	want := []api.NetIface{
		{Iface: "eth1", Type: api.IfaceEth, Addresses: []string{"10.9.0.1/24"}},
		{Iface: "vmbr0", Type: api.IfaceBridge, Ports: []string{"eth0"}, STP: true, MTU: 1400,
			Addresses: []string{"10.8.0.1/24", "fd00:8::1/64"}, Gateway: "10.8.0.254"},
		{Iface: "vx0", Type: api.IfaceVXLAN, VNI: 100, Local: "10.9.0.1", Remotes: []string{"10.9.0.2", "10.9.0.3"}, MTU: 1450},
	}
	if err := Validate(want, c, running); err != nil {
		t.Fatal(err)
	}
	if err := Apply(h, prev, want); err != nil {
		t.Fatal(err)
	}
	br := get(t, h, "vmbr0")
	if br.Type != api.IfaceBridge || br.MTU != 1400 || !br.Up || !slices.Equal(br.Ports, []string{"eth0"}) ||
		!slices.Contains(br.Addresses, "10.8.0.1/24") || !slices.Contains(br.Addresses, "fd00:8::1/64") || br.Gateway != "10.8.0.254" {
		t.Fatalf("bridge: %+v", br)
	}
	vx := get(t, h, "vx0")
	if vx.VNI != 100 || vx.Local != "10.9.0.1" || !slices.Equal(vx.Remotes, []string{"10.9.0.2", "10.9.0.3"}) || vx.MTU != 1450 {
		t.Fatalf("vxlan: %+v", vx)
	}
	// Applying the same again changes nothing and fails nothing, and an
	// interface whose declaration didn't change keeps what others gave it
	// (here an address, as DHCP would).
	nettest.Addr(t, h, "eth1", "10.9.7.7/24")
	if err := Apply(h, want, want); err != nil {
		t.Fatalf("idempotent apply: %v", err)
	}
	if e := get(t, h, "eth1"); !slices.Contains(e.Addresses, "10.9.7.7/24") {
		t.Fatalf("an unchanged NIC was reconfigured: %+v", e.Addresses)
	}
	nl, _ := h.H.LinkByName("eth1")
	a, _ := netlink.ParseAddr("10.9.7.7/24")
	_ = h.H.AddrDel(nl, a)

	// Something outside corral already uses VNI 200: the kernel refuses the
	// new VXLAN after the bridge and eth1 were already changed.
	if err := h.H.LinkAdd(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "other"}, VxlanId: 200, Port: 4789}); err != nil {
		t.Fatal(err)
	}
	bad := []api.NetIface{
		{Iface: "eth1", Type: api.IfaceEth, Addresses: []string{"10.9.9.1/24"}},
		{Iface: "vmbr1", Type: api.IfaceBridge, Addresses: []string{"10.7.0.1/24"}},
		{Iface: "vx0", Type: api.IfaceVXLAN, VNI: 100, Remotes: []string{"10.9.0.2"}, Local: "10.9.0.1", MTU: 1450},
		{Iface: "vx1", Type: api.IfaceVXLAN, VNI: 200},
	}
	err := Apply(h, want, bad)
	if err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("want a rolled-back failure, got %v", err)
	}
	t.Logf("refused as expected: %v", err)
	absent(t, h, "vmbr1")
	absent(t, h, "vx1")
	if e := get(t, h, "eth1"); !slices.Equal(e.Addresses, []string{"10.9.0.1/24"}) {
		t.Fatalf("eth1 not rolled back: %+v", e.Addresses)
	}
	if br := get(t, h, "vmbr0"); br.Gateway != "10.8.0.254" || !slices.Equal(br.Ports, []string{"eth0"}) {
		t.Fatalf("vmbr0 not rolled back: %+v", br)
	}
	if vx := get(t, h, "vx0"); !slices.Equal(vx.Remotes, []string{"10.9.0.2", "10.9.0.3"}) {
		t.Fatalf("vx0 peers not rolled back: %+v", vx.Remotes)
	}

	// Removing declarations deletes virtual interfaces and releases ports.
	if err := Apply(h, want, want[:1]); err != nil {
		t.Fatal(err)
	}
	absent(t, h, "vmbr0")
	absent(t, h, "vx0")
	if e := get(t, h, "eth0"); e.Master != "" {
		t.Fatalf("eth0 still enslaved: %+v", e)
	}
}

// TestBondAndVLAN applies bonds, VLAN interfaces and VLAN-aware bridges
// where the kernel has them; elsewhere it checks they are refused clearly.
func TestBondAndVLAN(t *testing.T) {
	nettest.Root(t)
	c := caps()
	h := nettest.NS(t, "h")
	peer := nettest.NS(t, "p")
	nettest.Veth(t, h, "eth0", peer, "eth0")
	nettest.Veth(t, h, "eth1", peer, "eth1")
	running, _, _ := Read(h)
	cases := []struct {
		name string
		has  bool
		cfg  []api.NetIface
	}{
		{"bond", c.Bond, []api.NetIface{{Iface: "bond0", Type: api.IfaceBond, BondMode: "active-backup", Slaves: []string{"eth0", "eth1"}}}},
		{"vlan", c.VLAN, []api.NetIface{{Iface: "eth0.10", Type: api.IfaceVLAN, VLANID: 10, VLANRaw: "eth0", Addresses: []string{"10.10.0.1/24"}}}},
		{"vlan-aware bridge", c.VLANFilter, []api.NetIface{{Iface: "vbr0", Type: api.IfaceBridge, VLANAware: true, Ports: []string{"eth1"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.cfg, c, running)
			if !tc.has {
				if errs.KindOf(err) != errs.KindInvalid || !strings.Contains(err.Error(), "this kernel has no") {
					t.Fatalf("want a clear refusal, got %v", err)
				}
				t.Skipf("SKIPPED for the kernel: %s is refused as it should be (%v)", tc.name, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := Apply(h, nil, tc.cfg); err != nil {
				t.Fatal(err)
			}
			got := get(t, h, tc.cfg[0].Iface)
			if got.Type != tc.cfg[0].Type || !got.Up {
				t.Fatalf("%+v", got)
			}
			if err := Apply(h, tc.cfg, nil); err != nil {
				t.Fatal(err)
			}
			absent(t, h, tc.cfg[0].Iface)
		})
	}
}

func TestValidate(t *testing.T) {
	all := api.NetCaps{Bridge: true, VXLAN: true, Bond: true, VLAN: true, VLANFilter: true, Tap: true}
	running := []api.NetIface{{Iface: "eth0", Type: api.IfaceEth}, {Iface: "eth1", Type: api.IfaceEth}, {Iface: "lo", Type: api.IfaceOther}}
	cases := []struct {
		name, field string
		caps        api.NetCaps
		cfg         []api.NetIface
	}{
		{"ok", "", all, []api.NetIface{{Iface: "vmbr0", Type: "bridge", Ports: []string{"eth0"}, Addresses: []string{"192.0.2.1/24"}, Gateway: "192.0.2.254"}}},
		{"bad name", "iface", all, []api.NetIface{{Iface: "0x", Type: "bridge"}}},
		{"twice", "iface", all, []api.NetIface{{Iface: "b", Type: "bridge"}, {Iface: "b", Type: "bridge"}}},
		{"missing nic", "type", all, []api.NetIface{{Iface: "eth9", Type: "eth"}}},
		{"bad cidr", "addresses", all, []api.NetIface{{Iface: "b", Type: "bridge", Addresses: []string{"192.0.2.1"}}}},
		{"gateway off link", "gateway", all, []api.NetIface{{Iface: "b", Type: "bridge", Addresses: []string{"192.0.2.1/24"}, Gateway: "198.51.100.1"}}},
		{"unknown port", "bridge_ports", all, []api.NetIface{{Iface: "b", Type: "bridge", Ports: []string{"nope"}}}},
		{"port twice", "bridge_ports", all, []api.NetIface{{Iface: "b", Type: "bridge", Ports: []string{"eth0"}}, {Iface: "c", Type: "bridge", Ports: []string{"eth0"}}}},
		{"vxlan without vni", "vni", all, []api.NetIface{{Iface: "vx", Type: "vxlan"}}},
		{"vni twice", "vni", all, []api.NetIface{{Iface: "vx", Type: "vxlan", VNI: 5}, {Iface: "vy", Type: "vxlan", VNI: 5}}},
		{"bad remote", "remotes", all, []api.NetIface{{Iface: "vx", Type: "vxlan", VNI: 5, Remotes: []string{"x"}}}},
		{"bond without slaves", "slaves", all, []api.NetIface{{Iface: "bond0", Type: "bond"}}},
		{"vlan without id", "vlan_id", all, []api.NetIface{{Iface: "v", Type: "vlan", VLANRaw: "eth0"}}},
		{"no bonding", "type", api.NetCaps{Bridge: true}, []api.NetIface{{Iface: "bond0", Type: "bond", Slaves: []string{"eth0"}}}},
		{"no 802.1q", "type", api.NetCaps{Bridge: true}, []api.NetIface{{Iface: "v", Type: "vlan", VLANID: 3, VLANRaw: "eth0"}}},
		{"no vlan filtering", "type", api.NetCaps{Bridge: true}, []api.NetIface{{Iface: "b", Type: "bridge", VLANAware: true}}},
		{"bad mtu", "mtu", all, []api.NetIface{{Iface: "b", Type: "bridge", MTU: 10}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.cfg, tc.caps, running)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *errs.Error
			if err == nil || !errorsAs(err, &e) || e.Kind != errs.KindInvalid || e.Fields[0].Field != tc.field {
				t.Fatalf("want invalid %s, got %v", tc.field, err)
			}
		})
	}
}

func errorsAs(err error, e **errs.Error) bool {
	x, ok := err.(*errs.Error)
	*e = x
	return ok
}

// TestServicePendingApply drives the stored workflow: seed from the host,
// pending edits with a diff, revert, apply, and the management guard.
func TestServicePendingApply(t *testing.T) {
	nettest.Root(t)
	ctx := context.Background()
	h := nettest.NS(t, "h")
	peer := nettest.NS(t, "p")
	nettest.Veth(t, h, "eth0", peer, "eth0")
	nettest.Addr(t, h, "eth0", "10.20.0.5/24")
	st := nettest.Store(t)
	s := NewService(st, "n1", h, caps(), net.ParseIP("10.20.0.5"), slog.Default())

	n, err := s.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e := find(n.Running, "eth0"); e == nil || !slices.Equal(e.Addresses, []string{"10.20.0.5/24"}) {
		t.Fatalf("running should show the host's interface and address: %+v", n.Running)
	}
	// A veth is not seeded as a NIC (guest ports are veths too): declare it.
	if err := s.Update(ctx, "eth0", "", api.NetIface{Type: "eth", Addresses: []string{"10.20.0.5/24"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, false); err != nil {
		t.Fatal(err)
	}
	n, _ = s.Get(ctx)
	if n.Pending != nil {
		t.Fatal("nothing should be pending on a new node")
	}
	if err := s.Create(ctx, api.NetIface{Iface: "vmbr0", Type: "bridge", Addresses: []string{"10.30.0.1/24"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, api.NetIface{Iface: "vmbr0", Type: "bridge"}); errs.KindOf(err) != errs.KindConflict {
		t.Fatalf("duplicate: %v", err)
	}
	if err := s.Create(ctx, api.NetIface{Iface: "vmbr1", Type: "bridge", Ports: []string{"nope"}}); errs.KindOf(err) != errs.KindInvalid {
		t.Fatalf("bad port: %v", err)
	}
	n, _ = s.Get(ctx)
	if len(n.Diff) != 1 || n.Diff[0].Action != "add" || n.Diff[0].Iface != "vmbr0" {
		t.Fatalf("diff: %+v", n.Diff)
	}
	if _, err := h.H.LinkByName("vmbr0"); err == nil {
		t.Fatal("a pending change must not touch the host")
	}
	if err := s.Revert(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ = s.Get(ctx); n.Pending != nil {
		t.Fatal("revert left pending changes")
	}
	// Moving the management address into a bridge that takes eth0 as port is fine.
	if err := s.Update(ctx, "eth0", "", api.NetIface{Type: "eth"}); err != nil {
		t.Fatal(err)
	}
	// Dropping it is refused unless forced.
	if _, err := s.Apply(ctx, false); errs.KindOf(err) != errs.KindConflict || !strings.Contains(err.Error(), "management address") {
		t.Fatalf("want the management guard, got %v", err)
	}
	if err := s.Create(ctx, api.NetIface{Iface: "vmbr0", Type: "bridge", Ports: []string{"eth0"}, Addresses: []string{"10.20.0.5/24"}}); err != nil {
		t.Fatal(err)
	}
	n, err = s.Apply(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if n.Pending != nil || find(n.Running, "vmbr0") == nil || find(n.Configured, "vmbr0") == nil {
		t.Fatalf("after apply: %+v", n)
	}
	if br := find(n.Running, "vmbr0"); !slices.Contains(br.Addresses, "10.20.0.5/24") || !slices.Equal(br.Ports, []string{"eth0"}) {
		t.Fatalf("bridge: %+v", br)
	}
	if _, err := s.Apply(ctx, false); errs.KindOf(err) != errs.KindConflict {
		t.Fatalf("apply with nothing pending: %v", err)
	}
}
