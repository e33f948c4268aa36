package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/network/firewall"
	"github.com/corral-project/corral/internal/network/host"
	"github.com/corral-project/corral/internal/network/port"
)

// netResult is the network phase: guest-to-guest throughput on one bridge
// with and without the firewall, and the time to apply a large ruleset.
type netResult struct {
	seconds    int
	runs       int
	plain      []float64 // bytes/s, no firewall
	brnf       []float64 // br_netfilter on, guest firewall enabled with no rules but the iperf port
	rules      []float64 // firewall with ruleCount rules in the receiving guest's chain
	ruleCount  int
	applyRules int             // rules in the big ruleset
	compile    []time.Duration // Compile of the big ruleset
	apply      []time.Duration // Apply (one nftables transaction)
	nftRules   int             // nftables rules the big ruleset compiles to
}

const (
	targetFwLoss    = 0.10
	targetApplyTime = time.Second
)

// netLab is a host namespace with a bridge and two container-like guests.
type netLab struct {
	names      []string
	h, g1, g2  *network.NS
	ports      *port.Ports
	ip1, ip2   string
	mac1, mac2 string
}

func netnsAdd(ctx context.Context, name string) (*network.NS, error) {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	return network.Named(name)
}

func (l *netLab) close() {
	for _, ns := range []*network.NS{l.g1, l.g2, l.h} {
		if ns != nil {
			ns.Close()
		}
	}
	for _, n := range l.names {
		_ = exec.Command("ip", "netns", "del", n).Run()
	}
}

func newNetLab(ctx context.Context) (*netLab, error) {
	l := &netLab{ip1: "10.61.0.1", ip2: "10.61.0.2", mac1: "bc:24:11:61:00:01", mac2: "bc:24:11:61:00:02"}
	mk := func(role string) (*network.NS, error) {
		name := fmt.Sprintf("cb%s%d", role, os.Getpid())
		ns, err := netnsAdd(ctx, name)
		if err == nil {
			l.names = append(l.names, name)
			if lo, err := ns.H.LinkByName("lo"); err == nil {
				_ = ns.H.LinkSetUp(lo)
			}
		}
		return ns, err
	}
	var err error
	if l.h, err = mk("h"); err != nil {
		return l, err
	}
	if err := l.h.H.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
		return l, err
	}
	br, _ := l.h.H.LinkByName("br0")
	_ = l.h.H.LinkSetUp(br)
	l.ports = port.New(l.h, host.DetectCaps(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	guest := func(id int, role, ip, mac string) (*network.NS, error) {
		g, err := mk(role)
		if err != nil {
			return nil, err
		}
		if _, err := l.ports.Plug(ctx, id, 0, port.Spec{Kind: port.Veth, Bridge: "br0", MAC: mac}); err != nil {
			return g, err
		}
		peer, err := l.h.H.LinkByName(port.PeerName(id, 0))
		if err != nil {
			return g, err
		}
		if err := l.h.H.LinkSetNsFd(peer, g.Fd()); err != nil {
			return g, err
		}
		peer, _ = g.H.LinkByName(port.PeerName(id, 0))
		a, _ := netlink.ParseAddr(ip + "/24")
		if err := g.H.AddrAdd(peer, a); err != nil {
			return g, err
		}
		return g, g.H.LinkSetUp(peer)
	}
	if l.g1, err = guest(100, "a", l.ip1, l.mac1); err != nil {
		return l, err
	}
	if l.g2, err = guest(101, "b", l.ip2, l.mac2); err != nil {
		return l, err
	}
	return l, nil
}

// iperf sends from g1 to g2 for secs seconds and returns bytes/s received.
func (l *netLab) iperf(ctx context.Context, secs int) (float64, error) {
	sctx, cancel := context.WithTimeout(ctx, time.Duration(secs+20)*time.Second)
	defer cancel()
	srv := exec.CommandContext(sctx, "ip", "netns", "exec", l.g2.Name, "iperf3", "-s", "-1", "-B", l.ip2)
	if err := srv.Start(); err != nil {
		return 0, err
	}
	defer srv.Wait()
	var r iperfResult
	var last string
	for range 50 {
		// iperf3 -J exits 0 even when it could not connect (the server may
		// not listen yet): the JSON's error field says so.
		out, err := exec.CommandContext(sctx, "ip", "netns", "exec", l.g1.Name, "iperf3", "-c", l.ip2, "-t", fmt.Sprint(secs), "-J").Output()
		r = iperfResult{}
		if json.Unmarshal(out, &r) == nil && err == nil && r.Error == "" && r.End.SumReceived.BitsPerSecond > 0 {
			return r.End.SumReceived.BitsPerSecond / 8, nil
		}
		last = fmt.Sprintf("%v %s", err, r.Error)
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("iperf3: %s", last)
}

// iperfResult is the part of iperf3's JSON report the bench reads.
type iperfResult struct {
	Error string `json:"error"`
	End   struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// guestRules is a guest firewall of n rules that don't match iperf's
// traffic, then the ACCEPT for its port; default in DROP.
func guestRules(n int) api.FwRules {
	r := api.FwRules{Options: api.FwOptions{Enable: true}}
	for i := range n {
		r.Rules = append(r.Rules, api.FwRule{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: fmt.Sprint(10000 + i), Enable: true})
	}
	r.Rules = append(r.Rules, api.FwRule{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "5201", Enable: true})
	return r
}

func (l *netLab) firewall(rules api.FwRules) (*firewall.Ruleset, error) {
	cfg := firewall.Config{Cluster: api.FwRules{Options: api.FwOptions{Enable: true}}, Guests: []firewall.Guest{
		{ID: 100, Rules: api.FwRules{Options: api.FwOptions{Enable: true, PolicyIn: "ACCEPT"}},
			Ports: []firewall.Port{{Ifname: "veth100i0", NIC: "net0", MAC: l.mac1, IPs: []string{l.ip1}, Firewall: true}}},
		{ID: 101, Rules: rules, Ports: []firewall.Port{{Ifname: "veth101i0", NIC: "net0", MAC: l.mac2, IPs: []string{l.ip2}, Firewall: true}}},
	}}
	rs, err := firewall.Compile(cfg)
	if err != nil {
		return nil, err
	}
	return rs, firewall.Apply(l.h, rs)
}

func (l *lab) netPhase(ctx context.Context) (netResult, error) {
	r := netResult{seconds: l.cfg.netSeconds, runs: l.cfg.netRuns, ruleCount: 1000, applyRules: 10000}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return r, fmt.Errorf("needs iperf3 (make bench installs it)")
	}
	nl, err := newNetLab(ctx)
	defer nl.close()
	if err != nil {
		return r, err
	}
	// Alternate the three setups so drift hits each alike.
	for i := range r.runs {
		logf("network throughput run %d/%d", i+1, r.runs)
		if err := firewall.Remove(nl.h); err != nil {
			return r, err
		}
		bps, err := nl.iperf(ctx, r.seconds)
		if err != nil {
			return r, err
		}
		r.plain = append(r.plain, bps)
		if _, err := nl.firewall(guestRules(0)); err != nil {
			return r, err
		}
		if bps, err = nl.iperf(ctx, r.seconds); err != nil {
			return r, err
		}
		r.brnf = append(r.brnf, bps)
		if _, err := nl.firewall(guestRules(r.ruleCount)); err != nil {
			return r, err
		}
		if bps, err = nl.iperf(ctx, r.seconds); err != nil {
			return r, err
		}
		r.rules = append(r.rules, bps)
	}
	logf("applying a %d-rule ruleset", r.applyRules)
	big := firewall.Config{Cluster: api.FwRules{Options: api.FwOptions{Enable: true}}, Guests: []firewall.Guest{
		{ID: 101, Rules: guestRules(r.applyRules - 1), Ports: []firewall.Port{{Ifname: "veth101i0", NIC: "net0", MAC: nl.mac2, Firewall: true}}}}}
	for range 5 {
		t0 := time.Now()
		rs, err := firewall.Compile(big)
		if err != nil {
			return r, err
		}
		t1 := time.Now()
		if err := firewall.Apply(nl.h, rs); err != nil {
			return r, err
		}
		r.compile, r.apply, r.nftRules = append(r.compile, t1.Sub(t0)), append(r.apply, time.Since(t1)), rs.Rules()
	}
	return r, nil
}

// loss is the firewall's throughput loss against the plain bridge.
func (r netResult) loss(with []float64) float64 {
	p := median(r.plain)
	if p <= 0 {
		return 0
	}
	return 1 - median(with)/p
}
