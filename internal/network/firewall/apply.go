package firewall

import (
	"errors"
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/internal/network"
)

// Apply replaces corral's tables in ns with rs in one nftables transaction:
// the kernel applies all of it or, on any error, none of it.
func Apply(ns *network.NS, rs *Ruleset) error {
	if rs.BridgeNF {
		if err := bridgeNF(ns); err != nil {
			return err
		}
	}
	// The whole ruleset goes to the kernel as one batch in one sendmsg:
	// size the socket's buffers for it (SO_*BUFFORCE: root may exceed
	// the sysctl limits), so 10,000 rules aren't refused as too long.
	buf := max(4<<20, 2048*len(rs.rules))
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()), nftables.WithSockOptions(func(nc *netlink.Conn) error {
		raw, err := nc.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, buf),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, buf))
		}); err != nil {
			return err
		}
		return serr
	}))
	if err != nil {
		return fmt.Errorf("firewall: nftables: %w", err)
	}
	tables := map[nftables.TableFamily]*nftables.Table{}
	for _, fam := range []nftables.TableFamily{inet, bridge} {
		t := &nftables.Table{Family: fam, Name: Table}
		// Add-then-delete removes the old table whether or not it existed;
		// the new one is built in the same batch.
		c.AddTable(t)
		c.DelTable(t)
		tables[fam] = c.AddTable(&nftables.Table{Family: fam, Name: Table})
	}
	chains := map[string]*nftables.Chain{}
	for _, cd := range rs.chains {
		ch := &nftables.Chain{Name: cd.name, Table: tables[cd.fam]}
		if cd.hook != nil {
			ch.Type, ch.Hooknum, ch.Priority, ch.Policy = nftables.ChainTypeFilter, cd.hook, cd.prio, cd.policy
		}
		chains[key(cd.fam, cd.name)] = c.AddChain(ch)
	}
	sets := map[string]*nftables.Set{}
	for _, sd := range rs.sets {
		s := &nftables.Set{Table: tables[sd.fam], Name: sd.name, KeyType: nftables.TypeIPAddr, Interval: true}
		switch {
		case sd.vmap:
			s = &nftables.Set{Table: tables[sd.fam], Name: sd.name, IsMap: true, KeyType: nftables.TypeMark, DataType: nftables.TypeVerdict}
		case sd.v6:
			s.KeyType = nftables.TypeIP6Addr
		}
		if err := c.AddSet(s, sd.elems); err != nil {
			return fmt.Errorf("firewall: set %s: %w", sd.name, err)
		}
		sets[sd.name] = s
	}
	for _, r := range rs.rules {
		ch := chains[key(r.fam, r.chain)]
		if ch == nil {
			return fmt.Errorf("firewall: internal: rule for unknown chain %s", r.chain)
		}
		for _, e := range r.exprs {
			if l, ok := e.(*expr.Lookup); ok {
				s := sets[l.SetName]
				if s == nil {
					return fmt.Errorf("firewall: internal: unknown set %s", l.SetName)
				}
				l.SetID = s.ID
			}
		}
		c.AddRule(&nftables.Rule{Table: tables[r.fam], Chain: ch, Exprs: r.exprs})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: apply %d rules: %w", len(rs.rules), err)
	}
	return nil
}

func key(f nftables.TableFamily, name string) string { return fmt.Sprintf("%d/%s", f, name) }

// Remove deletes corral's tables from ns.
func Remove(ns *network.NS) error {
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		return err
	}
	for _, fam := range []nftables.TableFamily{inet, bridge} {
		t := &nftables.Table{Family: fam, Name: Table}
		c.AddTable(t)
		c.DelTable(t)
	}
	return c.Flush()
}

// bridgeNF makes bridged IPv4/IPv6 traffic pass the inet hooks (br_netfilter),
// which is how guest rules get conntrack. The setting is per namespace.
func bridgeNF(ns *network.NS) error {
	return ns.Do(func() error {
		for _, f := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"} {
			p := "/proc/sys/net/bridge/" + f
			if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("firewall: guest firewalls need br_netfilter, which this kernel has not loaded (%s missing)", p)
				}
				return fmt.Errorf("firewall: %s: %w", p, err)
			}
		}
		return nil
	})
}
