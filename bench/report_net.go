package main

import (
	"fmt"
	"strings"
)

func (r *report) netSummary(b *strings.Builder) {
	n := r.net
	loss := n.loss(n.rules)
	fmt.Fprintf(b, "| Guest-to-guest throughput on one bridge with the firewall on and %s rules in the receiving guest's chain loses < %.0f %% against no firewall (medians of %d iperf3 runs of %d s) | %.1f %% (%.2f vs %.2f Gbit/s) | %s |\n",
		thousands(n.ruleCount), 100*targetFwLoss, n.runs, n.seconds, 100*loss, median(n.rules)*8/1e9, median(n.plain)*8/1e9, yesNo(loss < targetFwLoss))
	at := median(n.compile) + median(n.apply)
	fmt.Fprintf(b, "| Compile and apply a %s-rule firewall < 1 s (median of %d) | %s | %s |\n",
		thousands(n.applyRules), len(n.apply), ms(at), yesNo(at < targetApplyTime))
}

func (r *report) netSection(b *strings.Builder) {
	n := r.net
	r.heading(b, "Network: firewall cost and ruleset apply time")
	fmt.Fprintf(b, "Two container-like guests (network namespaces with a veth port each, plugged by `internal/network/port`) on one Linux bridge "+
		"in a third namespace acting as the host. `iperf3 -c` in guest 100 sends to `iperf3 -s` in guest 101 for %d s (one TCP stream); the three "+
		"setups alternate, %d runs each:\n\n", n.seconds, n.runs)
	fmt.Fprintf(b, "- **no firewall**: corral's tables absent, br_netfilter off;\n")
	fmt.Fprintf(b, "- **firewall, 1 rule**: cluster and both guests' firewalls on (anti-spoofing on both ports, guest 101 in DROP with one ACCEPT for the iperf port), br_netfilter on so bridged traffic gets conntrack;\n")
	fmt.Fprintf(b, "- **firewall, %s rules**: the same with %s non-matching ACCEPT rules before the iperf port's rule in guest 101's in-chain.\n\n", thousands(n.ruleCount), thousands(n.ruleCount))
	fmt.Fprintf(b, "| Setup | Median Gbit/s | Each run, Gbit/s | Loss vs no firewall |\n|---|---:|---|---:|\n")
	row := func(name string, xs []float64) {
		var each []string
		for _, x := range xs {
			each = append(each, fmt.Sprintf("%.2f", x*8/1e9))
		}
		fmt.Fprintf(b, "| %s | %.2f | %s | %.1f %% |\n", name, median(xs)*8/1e9, strings.Join(each, ", "), 100*n.loss(xs))
	}
	row("no firewall", n.plain)
	row("firewall, 1 rule", n.brnf)
	row(fmt.Sprintf("firewall, %s rules", thousands(n.ruleCount)), n.rules)
	fmt.Fprintf(b, "\nThe rule chain is walked for a connection's first packet only: every later packet matches `ct state established` first. "+
		"The cost that remains is br_netfilter (bridged packets pass the IP hooks and conntrack) and the mark/anti-spoofing rules in the bridge family.\n\n")
	fmt.Fprintf(b, "**Ruleset apply.** One guest with %s rules (%s nftables rules with the fixed ones), compiled with `firewall.Compile` and applied with "+
		"`firewall.Apply`: the old tables are deleted and the new ones built in one nftables transaction (google/nftables batch), in the host namespace.\n\n",
		thousands(n.applyRules), thousands(n.nftRules))
	fmt.Fprintf(b, "| Step | Median | Each run |\n|---|---:|---|\n")
	fmt.Fprintf(b, "| Compile | %s | %s |\n| Apply (one transaction) | %s | %s |\n\n", ms(median(n.compile)), durList(n.compile), ms(median(n.apply)), durList(n.apply))
}
