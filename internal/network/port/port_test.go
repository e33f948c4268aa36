package port

import (
	"context"
	"encoding/json"
	"log/slog"
	"os/exec"
	"testing"
	"time"

	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/network/host"
	"github.com/corral-project/corral/internal/network/nettest"
)

func setup(t *testing.T) (*network.NS, *Ports) {
	nettest.Root(t)
	h := nettest.NS(t, "h")
	nettest.Bridge(t, h, "br0")
	nettest.Bridge(t, h, "br1")
	return h, New(h, host.DetectCaps(), slog.Default())
}

// guest plugs a container NIC and moves its guest end into a new namespace.
func guest(t *testing.T, h *network.NS, p *Ports, id int, cidr string, s Spec) *network.NS {
	t.Helper()
	s.Kind = Veth
	if _, err := p.Plug(context.Background(), id, 0, s); err != nil {
		t.Fatal(err)
	}
	g := nettest.NS(t, "g")
	nettest.MoveIn(t, h, PeerName(id, 0), g, "eth0", cidr)
	return g
}

func TestTwoGuestsOnOneBridgePing(t *testing.T) {
	h, p := setup(t)
	g1 := guest(t, h, p, 100, "10.50.0.1/24", Spec{Bridge: "br0", MAC: "bc:24:11:00:00:01"})
	_ = guest(t, h, p, 101, "10.50.0.2/24", Spec{Bridge: "br0", MAC: "bc:24:11:00:00:02"})
	if !nettest.Ping(g1, "10.50.0.2") {
		t.Fatal("guests on one bridge can't reach each other")
	}
	// Moving guest 101's port to another bridge applies live: they are apart.
	if _, err := p.Plug(context.Background(), 101, 0, Spec{Kind: Veth, Bridge: "br1"}); err != nil {
		t.Fatal(err)
	}
	if nettest.Ping(g1, "10.50.0.2") {
		t.Fatal("guests on different bridges still reach each other")
	}
	if err := p.Unplug(context.Background(), 101, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := h.H.LinkByName("veth101i0"); err == nil {
		t.Fatal("unplug left the port")
	}
}

func TestTapPlugUpdateReconcile(t *testing.T) {
	h, p := setup(t)
	ctx := context.Background()
	name, err := p.Plug(ctx, 200, 0, Spec{Kind: Tap, Bridge: "br0", MTU: 1400, Rate: 5})
	if err != nil {
		t.Fatal(err)
	}
	if name != "tap200i0" {
		t.Fatalf("name %s", name)
	}
	if _, err := p.Plug(ctx, 201, 1, Spec{Kind: Tap, Bridge: "br0"}); err != nil {
		t.Fatal(err)
	}
	l, _ := h.H.LinkByName(name)
	idx := l.Attrs().Index
	ports, _ := p.List()
	if len(ports) != 2 || ports[0].Bridge != "br0" || ports[0].MTU != 1400 || ports[0].RateBps != 5*mib || ports[0].Kind != Tap {
		t.Fatalf("ports: %+v", ports)
	}
	// Live change: other bridge, no limit.
	if _, err := p.Plug(ctx, 200, 0, Spec{Kind: Tap, Bridge: "br1", MTU: 1400}); err != nil {
		t.Fatal(err)
	}
	ports, _ = p.List()
	if ports[0].Bridge != "br1" || ports[0].RateBps != 0 {
		t.Fatalf("after update: %+v", ports[0])
	}
	// A restarted daemon reconciles: the wanted port is kept (same device),
	// the one of a guest that stopped meanwhile is removed.
	p2 := New(h, p.caps, slog.Default())
	if err := p2.Reconcile(ctx, map[Key]Spec{{200, 0}: {Kind: Tap, Bridge: "br1", MTU: 1400}}); err != nil {
		t.Fatal(err)
	}
	ports, _ = p2.List()
	if len(ports) != 1 || ports[0].Name != "tap200i0" {
		t.Fatalf("after reconcile: %+v", ports)
	}
	if l, _ := h.H.LinkByName(name); l.Attrs().Index != idx {
		t.Fatal("reconcile re-created an existing port")
	}
	if err := p2.UnplugGuest(ctx, 200); err != nil {
		t.Fatal(err)
	}
	if ports, _ = p2.List(); len(ports) != 0 {
		t.Fatalf("left: %+v", ports)
	}
}

func TestPlugRefusesBadSpecs(t *testing.T) {
	_, p := setup(t)
	cases := []struct {
		field string
		s     Spec
	}{
		{"bridge", Spec{Kind: Tap, Bridge: "nope"}},
		{"kind", Spec{Kind: "macvtap", Bridge: "br0"}},
		{"mac", Spec{Kind: Tap, Bridge: "br0", MAC: "01:00:00:00:00:01"}},
		{"mtu", Spec{Kind: Tap, Bridge: "br0", MTU: 100}},
		{"rate", Spec{Kind: Tap, Bridge: "br0", Rate: -1}},
		{"tag", Spec{Kind: Tap, Bridge: "br0", Tag: 5}},
	}
	for _, c := range cases {
		_, err := p.Plug(context.Background(), 300, 0, c.s)
		var e *errs.Error
		if err == nil {
			t.Fatalf("%s: accepted", c.field)
		}
		if e, _ = err.(*errs.Error); e == nil || e.Fields[0].Field != c.field {
			t.Fatalf("%s: got %v", c.field, err)
		}
		if c.field == "tag" && !p.caps.VLANFilter {
			t.Logf("VLAN tags refused for the kernel: %v", err)
		}
	}
}

// rateLab makes two guests on one bridge, guest 111's port limited to 2 MB/s.
func rateLab(t *testing.T) (g1, g2 *network.NS) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("needs iperf3")
	}
	h, p := setup(t)
	g1 = guest(t, h, p, 110, "10.51.0.1/24", Spec{Bridge: "br0"})
	g2 = guest(t, h, p, 111, "10.51.0.2/24", Spec{Bridge: "br0", Rate: 2})
	return g1, g2
}

// TestRateLimitIntoGuest measures real throughput into a limited port
// (HTB on the port) with iperf3.
func TestRateLimitIntoGuest(t *testing.T) {
	g1, g2 := rateLab(t)
	got, limit := iperf(t, g1, g2, "10.51.0.2"), 2.0*mib
	t.Logf("throughput into a 2 MB/s port: %.2f MB/s", got/mib)
	if got > limit*1.25 || got < limit*0.3 {
		t.Fatalf("throughput %.0f B/s, want about %.0f", got, limit)
	}
}

// TestRateLimitOutOfGuest measures throughput out of a limited port (tc
// policer on the port's ingress), where the kernel has the policer.
func TestRateLimitOutOfGuest(t *testing.T) {
	if !CanPolice() {
		t.Skip("SKIPPED for the kernel: no tc matchall classifier / police action, so rate limits apply to traffic into guests only")
	}
	g1, g2 := rateLab(t)
	got, limit := iperf(t, g2, g1, "10.51.0.1"), 2.0*mib
	t.Logf("throughput out of a 2 MB/s port: %.2f MB/s", got/mib)
	if got > limit*1.25 {
		t.Fatalf("throughput %.0f B/s out of the guest, want at most about %.0f", got, limit)
	}
}

// iperf sends from client to server for 2 s and returns bytes/s received.
func iperf(t *testing.T, client, server *network.NS, ip string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", server.Name, "iperf3", "-s", "-1", "-B", ip)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Wait()
	var r struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	for range 50 {
		// iperf3 -J exits 0 even when it could not connect yet.
		out, err := nettest.Try(client.Name, 15*time.Second, "iperf3", "-c", ip, "-t", "2", "-J")
		r.Error, r.End.SumReceived.BitsPerSecond = "", 0
		if err == nil && json.Unmarshal([]byte(out), &r) == nil && r.Error == "" && r.End.SumReceived.BitsPerSecond > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.End.SumReceived.BitsPerSecond == 0 {
		t.Fatalf("iperf3 never measured: %s", r.Error)
	}
	return r.End.SumReceived.BitsPerSecond / 8
}
