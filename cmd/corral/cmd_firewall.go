package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

func (a *cliApp) newFirewallCmd() *cobra.Command {
	cmd := newParentCmd("firewall", "Firewall rules of the cluster, nodes and guests", "fw")
	cmd.Long = `Manage the firewall. LEVEL is cluster, node/NAME, vm/ID or ct/ID.

The cluster's enable switch turns every level on or off; a guest's firewall
also needs "firewall": true on the NIC. Guest defaults: in DROP, out ACCEPT;
node defaults: ACCEPT both ways. Rules use the API's field names:
  corral firewall options cluster enable=true
  corral firewall options vm/100 enable=true policy_in=DROP
  corral firewall add vm/100 type=in action=ACCEPT proto=tcp dport=22 comment=ssh
  corral firewall add vm/100 type=in group=web
  corral firewall show vm/100
  corral firewall remove vm/100 0
  corral firewall group add group=web rules='[{"type":"in","action":"ACCEPT","proto":"tcp","dport":"80,443","enable":true}]'
  corral firewall ipset add name=mgmt cidrs=192.0.2.0/24,198.51.100.7
  corral firewall alias add name=gw cidr=192.0.2.1
A rule that doesn't compile is refused with the reason.`
	cmd.AddCommand(a.newFwLogCmd(), a.newFwShowCmd(), a.newFwOptionsCmd(), a.newFwRuleCmd("add"), a.newFwRuleCmd("set"), a.newFwRuleCmd("remove"),
		a.newDefsCmd("group", "/cluster/firewall/groups", "group", []string{"group", "comment", "rules"}),
		a.newDefsCmd("ipset", "/cluster/firewall/ipset", "name", []string{"name", "cidrs", "comment"}),
		a.newDefsCmd("alias", "/cluster/firewall/aliases", "name", []string{"name", "cidr", "comment"}))
	return cmd
}

// fwLevelPath maps cluster, node/NAME, vm/ID, ct/ID to the API path.
func fwLevelPath(level string) (string, error) {
	kind, id, _ := strings.Cut(level, "/")
	switch {
	case kind == "cluster" && id == "":
		return "/cluster/firewall", nil
	case kind == "node" && id != "":
		return client.PathJoin("nodes", id, "firewall"), nil
	case (kind == "vm" || kind == "ct") && id != "":
		if _, err := strconv.Atoi(id); err != nil {
			return "", usageErrorf("%q: a guest ID is a number", level)
		}
		return client.PathJoin(map[string]string{"vm": "vms", "ct": "containers"}[kind], id, "firewall"), nil
	}
	return "", usageErrorf("level %q: want cluster, node/NAME, vm/ID or ct/ID", level)
}

func (a *cliApp) fwCall(ctx context.Context, method, path string, query url.Values, body any) error {
	c, _, err := a.connect(false)
	if err != nil {
		return err
	}
	defer c.Close()
	var out api.FwRules
	if _, err := c.Do(ctx, method, path, query, body, &out); err != nil {
		return err
	}
	return a.printRules(out)
}

func (a *cliApp) printRules(r api.FwRules) error {
	return a.printValue(r, func(w io.Writer) error {
		o := r.Options
		fmt.Fprintf(w, "enable: %s\tpolicy_in: %s\tpolicy_out: %s\n\n", yesNo(o.Enable), cell(o.PolicyIn), cell(o.PolicyOut))
		fmt.Fprintln(w, "POS\tON\tTYPE\tACTION\tPROTO\tDPORT\tSPORT\tSOURCE\tDEST\tIFACE\tCOMMENT")
		for i, x := range r.Rules {
			action := x.Action
			if x.Group != "" {
				action = "group " + x.Group
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i, yesNo(x.Enable), x.Direction, action, cell(x.Proto),
				cell(x.DPort), cell(x.SPort), cell(x.Source), cell(x.Dest), cell(x.Iface), cell(x.Comment))
		}
		return nil
	})
}

func (a *cliApp) newFwShowCmd() *cobra.Command {
	return &cobra.Command{Use: "show LEVEL", Short: "Show a level's options and rules", Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := fwLevelPath(args[0])
			if err != nil {
				return err
			}
			return a.fwCall(cmd.Context(), http.MethodGet, p, nil, nil)
		}}
}

func (a *cliApp) newFwOptionsCmd() *cobra.Command {
	return &cobra.Command{Use: "options LEVEL key=value ...", Short: "Set enable, policy_in, policy_out, macfilter",
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := fwLevelPath(args[0])
			if err != nil {
				return err
			}
			pairs, err := parseKeyValues(args[1:])
			if err != nil {
				return err
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			var cur api.FwRules
			_, err = c.Do(cmd.Context(), http.MethodGet, p, nil, nil, &cur)
			c.Close()
			if err != nil {
				return err
			}
			opts := map[string]any{"enable": cur.Options.Enable, "policy_in": cur.Options.PolicyIn, "policy_out": cur.Options.PolicyOut}
			if cur.Options.MACFilter != nil {
				opts["macfilter"] = *cur.Options.MACFilter
			}
			for k, v := range bodyFromPairs(pairs) {
				opts[k] = v
			}
			return a.fwCall(cmd.Context(), http.MethodPut, p+"/options", nil, opts)
		}}
}

func (a *cliApp) newFwRuleCmd(verb string) *cobra.Command {
	var pos int
	use := map[string]string{"add": "add LEVEL key=value ...", "set": "set LEVEL POS key=value ...", "remove": "remove LEVEL POS"}[verb]
	cmd := &cobra.Command{Use: use, Short: map[string]string{"add": "Add a rule", "set": "Replace a rule", "remove": "Delete a rule"}[verb],
		Args: usageArgs(cobra.MinimumNArgs(map[string]int{"add": 2, "set": 3, "remove": 2}[verb])),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := fwLevelPath(args[0])
			if err != nil {
				return err
			}
			kv := args[1:]
			if verb != "add" {
				if _, err := strconv.Atoi(args[1]); err != nil {
					return usageErrorf("POS %q is not a number", args[1])
				}
				p += "/rules/" + args[1]
				kv = args[2:]
			}
			pairs, err := parseKeyValues(kv)
			if err != nil {
				return err
			}
			body := bodyFromPairs(pairs)
			for _, k := range []string{"dport", "sport", "source", "dest", "iface", "comment"} {
				if v, ok := body[k]; ok {
					body[k] = anyText(v) // "22" is a port list, not a number
				}
			}
			if _, ok := body["enable"]; !ok {
				body["enable"] = true
			}
			switch verb {
			case "add":
				return a.fwCall(cmd.Context(), http.MethodPost, p+"/rules", url.Values{"pos": {strconv.Itoa(pos)}}, body)
			case "set":
				return a.fwCall(cmd.Context(), http.MethodPut, p, nil, body)
			}
			if len(pairs) > 0 {
				return usageErrorf("remove takes no settings")
			}
			return a.fwCall(cmd.Context(), http.MethodDelete, p, nil, nil)
		}}
	if verb == "add" {
		cmd.Flags().IntVar(&pos, "pos", -1, "insert before this position (default: append)")
	}
	return cmd
}

func (a *cliApp) newFwLogCmd() *cobra.Command {
	var node string
	var limit int
	cmd := &cobra.Command{Use: "log", Short: "Show packets the firewall dropped on a node, newest last", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			node, err := resolveNode(cmd.Context(), c, node)
			if err != nil {
				return err
			}
			var entries []api.FwLogEntry
			if _, err := c.Do(cmd.Context(), http.MethodGet, client.PathJoin("nodes", node, "firewall", "log"), url.Values{"limit": {strconv.Itoa(limit)}}, nil, &entries); err != nil {
				return err
			}
			port := func(p int) string {
				if p == 0 {
					return ""
				}
				return strconv.Itoa(p)
			}
			return printList(a, entries, []column[api.FwLogEntry]{
				{"TIME", func(e api.FwLogEntry) string { return e.Time.Local().Format("15:04:05.000") }},
				{"RULE", func(e api.FwLogEntry) string { return e.Rule }},
				{"IN", func(e api.FwLogEntry) string { return e.In }},
				{"OUT", func(e api.FwLogEntry) string { return e.Out }},
				{"PROTO", func(e api.FwLogEntry) string { return e.Proto }},
				{"SOURCE", func(e api.FwLogEntry) string { return strings.TrimSuffix(e.Src+":"+port(e.SPort), ":") }},
				{"DEST", func(e api.FwLogEntry) string { return strings.TrimSuffix(e.Dst+":"+port(e.DPort), ":") }},
			})
		}}
	cmd.Flags().StringVar(&node, "node", "", "node (default: the only node)")
	cmd.Flags().IntVar(&limit, "limit", 100, "newest entries to show (at most 1000)")
	return cmd
}
