// Package network holds what corral's network pieces share: a handle on the
// network namespace they work in. The daemon works in its own namespace;
// tests hand every piece a namespace they created, so the same code that
// configures a real host is what the tests exercise.
package network

import (
	"fmt"
	"runtime"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NS is a network namespace with a netlink handle opened inside it.
type NS struct {
	Name string // "" for the daemon's own namespace
	H    *netlink.Handle
	ns   netns.NsHandle
}

// Current returns the namespace the process runs in.
func Current() (*NS, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("network: current netns: %w", err)
	}
	return open("", ns)
}

// Named opens a namespace created with `ip netns add` (/run/netns/<name>).
func Named(name string) (*NS, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("network: netns %s: %w", name, err)
	}
	return open(name, ns)
}

func open(name string, ns netns.NsHandle) (*NS, error) {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("network: netlink handle in netns %q: %w", name, err)
	}
	return &NS{Name: name, H: h, ns: ns}, nil
}

// Fd is the namespace's file descriptor (for nftables.WithNetNSFd and for
// moving links into it).
func (n *NS) Fd() int { return int(n.ns) }

// Close releases the handle and the namespace reference.
func (n *NS) Close() {
	n.H.Close()
	n.ns.Close()
}

// Do runs fn on an OS thread switched into the namespace, for the few calls
// that work on the calling thread's namespace (tun/tap creation, raw
// netlink requests).
func (n *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("network: current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(n.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("network: enter netns %q: %w", n.Name, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the wrong namespace: leave it locked so
		// the runtime ends it with this goroutine instead of reusing it.
		return fmt.Errorf("network: leave netns %q: %w", n.Name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// Temp creates an anonymous namespace that disappears when closed (used to
// probe kernel features without touching the host).
func Temp() (*NS, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		return nil, fmt.Errorf("network: new netns: %w", err)
	}
	if err := netns.Set(orig); err != nil {
		runtime.LockOSThread() // keep the tainted thread away from the scheduler
		ns.Close()
		return nil, fmt.Errorf("network: leave new netns: %w", err)
	}
	return open("", ns)
}

// TableExists says whether the namespace has the nftables table; corral
// writes its tables only when it has rules for them or they exist already,
// so a node that uses no firewall and no NAT never gets nftables state.
func (n *NS) TableExists(fam nftables.TableFamily, name string) bool {
	c, err := nftables.New(nftables.WithNetNSFd(n.Fd()))
	if err != nil {
		return false
	}
	ts, err := c.ListTablesOfFamily(fam)
	if err != nil {
		return false
	}
	for _, t := range ts {
		if t.Name == name {
			return true
		}
	}
	return false
}
