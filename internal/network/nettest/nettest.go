// Package nettest creates the network namespaces corral's network tests use
// as hosts and guests. Every name carries the test PID and a counter so tests
// of several engineers can run on one machine; everything is deleted in
// t.Cleanup. Nothing is routed out of the namespaces.
package nettest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/store"
	"github.com/corral-project/corral/internal/store/storetest"
)

var seq atomic.Int64

// Root skips the test unless it runs as root with netns support.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (ip) to create named network namespaces")
	}
}

// Unique returns a short name unique to this process: prefix + pid + counter,
// at most 15 characters (an interface name).
func Unique(prefix string) string {
	n := fmt.Sprintf("%s%x%x", prefix, os.Getpid()%0xfffff, seq.Add(1))
	if len(n) > 15 {
		n = n[len(n)-15:]
	}
	return n
}

// NS creates a named namespace with lo up and returns a handle on it.
func NS(t testing.TB, prefix string) *network.NS {
	t.Helper()
	name := Unique("c" + prefix)
	Run(t, "", "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ns, err := network.Named(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	lo, err := ns.H.LinkByName("lo")
	if err == nil {
		_ = ns.H.LinkSetUp(lo)
	}
	return ns
}

// Run runs a command (in netns ns if not empty) and returns its output;
// failure fails the test.
func Run(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := Try(ns, 30*time.Second, args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs a command (in netns ns if not empty) with a timeout.
func Try(ns string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// Veth connects a and b with a veth pair named an (in a) and bn (in b).
func Veth(t testing.TB, a *network.NS, an string, b *network.NS, bn string) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: an}, PeerName: bn, PeerNamespace: netlink.NsFd(b.Fd())}
	if err := a.H.LinkAdd(v); err != nil {
		t.Fatalf("veth %s-%s: %v", an, bn, err)
	}
	Up(t, a, an)
	Up(t, b, bn)
}

// Up sets a link up.
func Up(t testing.TB, ns *network.NS, name string) {
	t.Helper()
	l, err := ns.H.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	if err := ns.H.LinkSetUp(l); err != nil {
		t.Fatalf("up %s: %v", name, err)
	}
}

// Addr adds a CIDR to a link.
func Addr(t testing.TB, ns *network.NS, name, cidr string) {
	t.Helper()
	l, err := ns.H.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.H.AddrAdd(l, a); err != nil {
		t.Fatalf("addr %s on %s: %v", cidr, name, err)
	}
}

// Ping reports whether ns reaches ip (two tries of one echo).
func Ping(ns *network.NS, ip string) bool {
	_, err := Try(ns.Name, 10*time.Second, "ping", "-c", "2", "-i", "0.2", "-W", "1", ip)
	return err == nil // ping exits 0 when any reply came back
}

// MAC parses a MAC or fails.
func MAC(t testing.TB, s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Store opens a real single-member etcd store in a temp dir.
func Store(t testing.TB) *store.Store { return storetest.Open(t) }

// MoveIn moves link name from ns into guest, renames it, gives it cidr (if
// not empty) and sets it up: what a container driver does with a veth end.
func MoveIn(t testing.TB, ns *network.NS, name string, guest *network.NS, newName, cidr string) {
	t.Helper()
	l, err := ns.H.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	if err := ns.H.LinkSetNsFd(l, guest.Fd()); err != nil {
		t.Fatalf("move %s: %v", name, err)
	}
	l, err = guest.H.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := guest.H.LinkSetName(l, newName); err != nil {
		t.Fatal(err)
	}
	if cidr != "" {
		Addr(t, guest, newName, cidr)
	}
	Up(t, guest, newName)
}

// Bridge creates a bridge in ns and sets it up.
func Bridge(t testing.TB, ns *network.NS, name string) {
	t.Helper()
	if err := ns.H.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		t.Fatalf("bridge %s: %v", name, err)
	}
	Up(t, ns, name)
}
