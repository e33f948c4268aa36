package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/network"
)

// Table is the name of corral's tables (one in the inet and one in the
// bridge family). Nothing else in the ruleset is touched.
const Table = "corral"

type chainDef struct {
	fam    nftables.TableFamily
	name   string
	hook   *nftables.ChainHook
	prio   *nftables.ChainPriority
	policy *nftables.ChainPolicy
}

type setDef struct {
	fam   nftables.TableFamily
	name  string
	v6    bool
	vmap  bool // mark -> verdict map
	elems []nftables.SetElement
}

type ruleDef struct {
	fam   nftables.TableFamily
	chain string
	exprs []expr.Any
}

// Ruleset is a compiled firewall, ready to be applied in one transaction.
type Ruleset struct {
	chains   []chainDef
	sets     []setDef
	rules    []ruleDef
	BridgeNF bool // guest rules need bridged IP traffic to pass the inet hooks

	outMap, inMap []nftables.SetElement // port id (in the mark) -> the guest's chains
}

// Rules is the number of nftables rules.
func (rs *Ruleset) Rules() int { return len(rs.rules) }

const (
	inet   = nftables.TableFamilyINet
	bridge = nftables.TableFamilyBridge
)

func (rs *Ruleset) chain(fam nftables.TableFamily, name string, hook *nftables.ChainHook, prio int32, policy nftables.ChainPolicy) {
	c := chainDef{fam: fam, name: name}
	if hook != nil {
		c.hook, c.prio, c.policy = hook, nftables.ChainPriorityRef(nftables.ChainPriority(prio)), &policy
	}
	rs.chains = append(rs.chains, c)
}

func (rs *Ruleset) add(fam nftables.TableFamily, chain string, e ...expr.Any) {
	rs.rules = append(rs.rules, ruleDef{fam: fam, chain: chain, exprs: e})
}

// Compile builds the ruleset. It fails, naming the level and rule, on a
// rule that doesn't compile; nothing is applied then.
func Compile(cfg Config) (*Ruleset, error) {
	rs := &Ruleset{}
	rs.chain(inet, "input", nftables.ChainHookInput, 0, nftables.ChainPolicyAccept)
	rs.chain(inet, "output", nftables.ChainHookOutput, 0, nftables.ChainPolicyAccept)
	rs.chain(inet, "forward", nftables.ChainHookForward, 0, nftables.ChainPolicyAccept)
	rs.chain(bridge, "prerouting", nftables.ChainHookPrerouting, -200, nftables.ChainPolicyAccept)
	rs.chain(bridge, "forward", nftables.ChainHookForward, -200, nftables.ChainPolicyAccept)
	for _, name := range sortedKeys(cfg.IPSets) {
		var v4, v6 []netip.Prefix
		for i, c := range cfg.IPSets[name].CIDRs {
			p, err := ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("ipset %s: cidrs[%d]: %q is not an address or CIDR", name, i, c)
			}
			if p.Addr().Is4() {
				v4 = append(v4, p)
			} else {
				v6 = append(v6, p)
			}
		}
		rs.sets = append(rs.sets, setDef{fam: inet, name: "ipset-" + name + "-4", elems: interval(v4)},
			setDef{fam: inet, name: "ipset-" + name + "-6", v6: true, elems: interval(v6)})
	}
	if !cfg.Cluster.Options.Enable {
		return rs, nil // the cluster switch turns every level off
	}
	if cfg.Node.Options.Enable {
		for _, dir := range []string{"in", "out"} {
			chain, ifKey, pol := "input", expr.MetaKeyIIFNAME, policy(cfg.Node.Options.PolicyIn, NodePolicyIn)
			if dir == "out" {
				chain, ifKey, pol = "output", expr.MetaKeyOIFNAME, policy(cfg.Node.Options.PolicyOut, NodePolicyOut)
			}
			rs.add(inet, chain, ctEstablished(expr.VerdictAccept)...)
			rs.add(inet, chain, append(ifname(ifKey, "lo"), verdict("ACCEPT"))...)
			if dir == "in" {
				for _, p := range cfg.MgmtPorts {
					rs.add(inet, chain, slices.Concat(l4(6), portIs(expr.PayloadBaseTransportHeader, 2, [2]uint16{p, p}), []expr.Any{verdict("ACCEPT")})...)
				}
			}
			for _, lvl := range []struct {
				name  string
				rules []api.FwRule
			}{{"cluster", cfg.Cluster.Rules}, {"node", cfg.Node.Rules}} {
				if err := rs.rulesInto(cfg, lvl.name, lvl.rules, dir, chain, func(m match) ([]expr.Any, bool) {
					if m.iface == "" {
						return nil, true
					}
					return ifname(ifKey, m.iface), true
				}, false); err != nil {
					return nil, err
				}
			}
			if pol != "ACCEPT" {
				rs.add(inet, chain, logged("node "+dir)...)
				rs.add(inet, chain, verdict(pol))
			}
		}
	}
	id := uint32(0)
	for _, g := range cfg.Guests {
		if !g.Rules.Options.Enable {
			continue
		}
		for _, p := range g.Ports {
			if !p.Firewall {
				continue
			}
			if err := CheckPort(p); err != nil {
				return nil, fmt.Errorf("guest %d %s: %w", g.ID, p.NIC, err)
			}
			id++
			if id > 0xffff {
				return nil, fmt.Errorf("more than 65535 firewalled guest ports on one node")
			}
			rs.BridgeNF = true
			if err := rs.guestPort(cfg, g, p, id); err != nil {
				return nil, err
			}
		}
	}
	if rs.BridgeNF {
		// One lookup per packet and direction, however many guests: the
		// mark's port id selects the guest chain in a verdict map.
		rs.sets = append(rs.sets, setDef{fam: inet, name: "guest-out", vmap: true, elems: rs.outMap},
			setDef{fam: inet, name: "guest-in", vmap: true, elems: rs.inMap})
		rs.add(inet, "forward", append(maskMark(0x0000ffff), &expr.Lookup{SourceRegister: 1, SetName: "guest-out", IsDestRegSet: true})...)
		rs.add(inet, "forward", append(maskMark(0xffff0000), &expr.Lookup{SourceRegister: 1, SetName: "guest-in", IsDestRegSet: true})...)
	}
	return rs, nil
}

func sortedKeys[V any](m map[string]V) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

func (rs *Ruleset) guestPort(cfg Config, g Guest, p Port, id uint32) error {
	out, in := "out-"+p.Ifname, "in-"+p.Ifname
	// Bridge family: mark the port on the way in and out, then anti-spoofing.
	rs.add(bridge, "prerouting", append(ifname(expr.MetaKeyIIFNAME, p.Ifname), setMark(0xffff0000, id)...)...)
	rs.add(bridge, "forward", append(ifname(expr.MetaKeyOIFNAME, p.Ifname), setMark(0x0000ffff, id<<16)...)...)
	if g.Rules.Options.MACFilter == nil || *g.Rules.Options.MACFilter {
		spoof := "spoof-" + p.Ifname
		rs.chain(bridge, spoof, nil, 0, 0)
		rs.add(bridge, "prerouting", append(ifname(expr.MetaKeyIIFNAME, p.Ifname), jump(spoof))...)
		rs.antiSpoof(spoof, p)
	}
	// Inet family: the guest's chains, entered by mark.
	rs.chain(inet, out, nil, 0, 0)
	rs.chain(inet, in, nil, 0, 0)
	rs.outMap = append(rs.outMap, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(id),
		VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: out}})
	rs.inMap = append(rs.inMap, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(id << 16),
		VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: in}})
	// Accepting in the out chain returns, so the receiving guest's in
	// chain is still evaluated; only the in chain's accept is final.
	rs.add(inet, out, ctEstablished(expr.VerdictReturn)...)
	rs.add(inet, in, ctEstablished(expr.VerdictAccept)...)
	// IPv6 neighbour discovery and router solicitation/advertisement
	// (ICMPv6 133-136) always pass, as ARP does: without them no IPv6
	// works, and conntrack may call them invalid.
	nd := slices.Concat(l4(58), []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{133}, ToData: []byte{136}}})
	rs.add(inet, out, append(slices.Clone(nd), verdict("RETURN"))...)
	rs.add(inet, in, append(slices.Clone(nd), verdict("ACCEPT"))...)
	rs.add(inet, out, ctInvalidDrop()...)
	rs.add(inet, in, ctInvalidDrop()...)
	level := fmt.Sprintf("guest %d", g.ID)
	nicOnly := func(m match) ([]expr.Any, bool) { return nil, m.iface == "" || m.iface == p.NIC }
	if err := rs.rulesInto(cfg, level, g.Rules.Rules, "out", out, nicOnly, true); err != nil {
		return err
	}
	if err := rs.rulesInto(cfg, level, g.Rules.Rules, "in", in, nicOnly, false); err != nil {
		return err
	}
	if pol := policy(g.Rules.Options.PolicyOut, GuestPolicyOut); pol != "ACCEPT" {
		rs.add(inet, out, logged(level+" out")...)
		rs.add(inet, out, verdict(pol))
	}
	if pol := policy(g.Rules.Options.PolicyIn, GuestPolicyIn); pol != "ACCEPT" {
		rs.add(inet, in, logged(level+" in")...)
		rs.add(inet, in, verdict(pol))
	} else {
		rs.add(inet, in, verdict("ACCEPT"))
	}
	return nil
}

// antiSpoof lets out of a guest port only its MAC and, if it has any
// configured, its IPs (plus what address configuration needs: DHCP
// discovery from 0.0.0.0, ARP probes, IPv6 link-local and DAD).
func (rs *Ruleset) antiSpoof(chain string, p Port) {
	mac, _ := net.ParseMAC(p.MAC)
	ethType := func(t uint16) []expr.Any {
		return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(t)}}
	}
	if mac != nil {
		rs.add(bridge, chain, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: mac}, verdict("DROP"))
		rs.add(bridge, chain, append(ethType(unix.ETH_P_ARP), &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 6},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: mac}, verdict("DROP"))...)
	}
	var v4, v6 []netip.Addr
	for _, s := range p.IPs {
		a, _ := netip.ParseAddr(s)
		if a.Unmap().Is4() {
			v4 = append(v4, a.Unmap())
		} else {
			v6 = append(v6, a)
		}
	}
	addrIs := func(off uint32, a netip.Addr) []expr.Any {
		return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(a.BitLen() / 8)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()}}
	}
	if len(v4) > 0 {
		for _, a := range append(v4, netip.IPv4Unspecified()) {
			rs.add(bridge, chain, slices.Concat(ethType(unix.ETH_P_ARP), addrIs(14, a), []expr.Any{verdict("RETURN")})...)
			if a.IsUnspecified() {
				rs.add(bridge, chain, slices.Concat(ethType(unix.ETH_P_IP), addrIs(12, a),
					l4(17), portIs(expr.PayloadBaseTransportHeader, 2, [2]uint16{67, 67}), []expr.Any{verdict("RETURN")})...)
				continue
			}
			rs.add(bridge, chain, slices.Concat(ethType(unix.ETH_P_IP), addrIs(12, a), []expr.Any{verdict("RETURN")})...)
		}
		rs.add(bridge, chain, append(ethType(unix.ETH_P_ARP), verdict("DROP"))...)
		rs.add(bridge, chain, append(ethType(unix.ETH_P_IP), verdict("DROP"))...)
	}
	if len(v6) > 0 {
		ll := netip.MustParsePrefix("fe80::/10")
		rs.add(bridge, chain, slices.Concat(ethType(unix.ETH_P_IPV6), prefixIs(8, ll), []expr.Any{verdict("RETURN")})...)
		for _, a := range append(v6, netip.IPv6Unspecified()) {
			rs.add(bridge, chain, slices.Concat(ethType(unix.ETH_P_IPV6), addrIs(8, a), []expr.Any{verdict("RETURN")})...)
		}
		rs.add(bridge, chain, append(ethType(unix.ETH_P_IPV6), verdict("DROP"))...)
	}
}

// rulesInto compiles a level's rules of one direction into chain. extra
// returns the level's own matches (e.g. the interface) or false to skip.
func (rs *Ruleset) rulesInto(cfg Config, level string, rules []api.FwRule, dir, chain string,
	extra func(match) ([]expr.Any, bool), acceptReturns bool) error {
	for i, r := range rules {
		if !r.Enable || r.Direction != dir {
			continue
		}
		body := []api.FwRule{r}
		where := fmt.Sprintf("%s rule %d", level, i)
		if r.Group != "" {
			if _, err := compileRule(r, &cfg, false); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			body = nil
			for _, gr := range cfg.Groups[r.Group].Rules {
				if gr.Enable && gr.Direction == dir {
					body = append(body, gr)
				}
			}
			where = fmt.Sprintf("%s (group %s)", where, r.Group)
		}
		for _, br := range body {
			m, err := compileRule(br, &cfg, r.Group != "")
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			pre, ok := extra(m)
			if !ok {
				continue
			}
			v := verdict(m.verdict)
			if acceptReturns && m.verdict == "ACCEPT" {
				v = verdict("RETURN")
			}
			for _, e := range expand(m) {
				if m.verdict != "ACCEPT" {
					rs.add(inet, chain, slices.Concat(pre, e, logged(level+" "+dir))...)
				}
				rs.add(inet, chain, slices.Concat(pre, e, []expr.Any{v})...)
			}
		}
	}
	return nil
}

// expand turns a match into the expression lists of its nftables rules:
// one per address family it applies to and per port and address given.
func expand(m match) [][]expr.Any {
	var out [][]expr.Any
	for _, fam := range []int{4, 6} {
		src, srcOK := famPrefixes(m.src, m.srcSet, fam)
		dst, dstOK := famPrefixes(m.dst, m.dstS, fam)
		if !srcOK || !dstOK {
			continue
		}
		anyAddr := m.src == nil && m.srcSet == "" && m.dst == nil && m.dstS == ""
		if anyAddr && fam == 6 {
			continue // one family-agnostic rule is enough
		}
		var base []expr.Any
		if !anyAddr {
			proto := byte(unix.NFPROTO_IPV4)
			if fam == 6 {
				proto = unix.NFPROTO_IPV6
			}
			base = []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}}}
		}
		if m.proto != 0 {
			base = append(base, l4(m.proto)...)
		}
		combos := [][]expr.Any{base}
		combos = cross(combos, m.sports, func(r [2]uint16) []expr.Any { return portIs(expr.PayloadBaseTransportHeader, 0, r) })
		combos = cross(combos, m.dports, func(r [2]uint16) []expr.Any { return portIs(expr.PayloadBaseTransportHeader, 2, r) })
		srcOff, dstOff := uint32(12), uint32(16)
		if fam == 6 {
			srcOff, dstOff = 8, 24
		}
		combos = cross(combos, src, func(p addrMatch) []expr.Any { return p.exprs(srcOff) })
		combos = cross(combos, dst, func(p addrMatch) []expr.Any { return p.exprs(dstOff) })
		out = append(out, combos...)
	}
	return out
}

// addrMatch is a prefix or a named set.
type addrMatch struct {
	p   netip.Prefix
	set string
}

func (a addrMatch) exprs(off uint32) []expr.Any {
	if a.set != "" {
		n := uint32(4)
		if len(a.set) > 2 && a.set[len(a.set)-1] == '6' {
			n = 16
		}
		return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Lookup{SourceRegister: 1, SetName: a.set}}
	}
	return prefixIs(off, a.p)
}

func famPrefixes(ps []netip.Prefix, set string, fam int) ([]addrMatch, bool) {
	if set != "" {
		return []addrMatch{{set: fmt.Sprintf("ipset-%s-%d", set, fam)}}, true
	}
	if ps == nil {
		return nil, true
	}
	var out []addrMatch
	for _, p := range ps {
		if (fam == 4) == p.Addr().Is4() {
			out = append(out, addrMatch{p: p})
		}
	}
	return out, len(out) > 0
}

func cross[T any](combos [][]expr.Any, items []T, f func(T) []expr.Any) [][]expr.Any {
	if len(items) == 0 {
		return combos
	}
	var out [][]expr.Any
	for _, c := range combos {
		for _, it := range items {
			out = append(out, slices.Concat(c, f(it)))
		}
	}
	return out
}

func l4(p uint8) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}}}
}

func portIs(base expr.PayloadBase, off uint32, r [2]uint16) []expr.Any {
	load := &expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: 2}
	if r[0] == r[1] {
		return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r[0])}}
	}
	return []expr.Any{load, &expr.Range{Op: expr.CmpOpEq, Register: 1,
		FromData: binaryutil.BigEndian.PutUint16(r[0]), ToData: binaryutil.BigEndian.PutUint16(r[1])}}
}

func prefixIs(off uint32, p netip.Prefix) []expr.Any {
	n := uint32(p.Addr().BitLen() / 8)
	e := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}}
	if p.Bits() < p.Addr().BitLen() {
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n,
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()), Xor: make([]byte, n)})
	}
	return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()})
}

func ifname(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, 16)
	copy(b, name)
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b}}
}

func verdict(v string) expr.Any {
	switch v {
	case "ACCEPT":
		return &expr.Verdict{Kind: expr.VerdictAccept}
	case "RETURN":
		return &expr.Verdict{Kind: expr.VerdictReturn}
	case "REJECT":
		return &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}
	}
	return &expr.Verdict{Kind: expr.VerdictDrop}
}

// logged sends what reaches it to the drop log (NFLOG group LogGroup),
// at most 20 packets a second so a flood can't flood the log too. It is
// a rule of its own before the dropping one: a limit inside the dropping
// rule would stop the drop, not just the log.
func logged(prefix string) []expr.Any {
	return []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 20, Unit: expr.LimitTimeSecond, Burst: 40},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: LogGroup, Data: []byte(logPrefix + prefix)}}
}

func jump(chain string) expr.Any { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

func ctEstablished(k expr.VerdictKind) []expr.Any {
	return []expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)}, &expr.Verdict{Kind: k}}
}

func ctInvalidDrop() []expr.Any {
	return []expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitINVALID), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)}, &expr.Verdict{Kind: expr.VerdictDrop}}
}

// setMark sets the bits outside keep to val: mark = (mark & keep) | val.
func setMark(keep, val uint32) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(keep), Xor: binaryutil.NativeEndian.PutUint32(val)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1}}
}

// maskMark loads mark & mask into register 1.
func maskMark(mask uint32) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: make([]byte, 4)}}
}

// interval turns prefixes into the elements of an interval set: merged,
// sorted [start, end+1) pairs.
func interval(ps []netip.Prefix) []nftables.SetElement {
	type rng struct{ lo, hi netip.Addr }
	var rs []rng
	for _, p := range ps {
		lo := p.Masked().Addr()
		hi := network.LastAddr(p)
		rs = append(rs, rng{lo, hi})
	}
	slices.SortFunc(rs, func(a, b rng) int { return a.lo.Compare(b.lo) })
	var merged []rng
	for _, r := range rs {
		if n := len(merged); n > 0 && (r.lo.Compare(merged[n-1].hi) <= 0 || r.lo == merged[n-1].hi.Next()) {
			if r.hi.Compare(merged[n-1].hi) > 0 {
				merged[n-1].hi = r.hi
			}
			continue
		}
		merged = append(merged, r)
	}
	var out []nftables.SetElement
	for _, r := range merged {
		out = append(out, nftables.SetElement{Key: r.lo.AsSlice()})
		if end := r.hi.Next(); end.IsValid() {
			out = append(out, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}
