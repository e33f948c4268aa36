package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

func (a *cliApp) newNetCmd() *cobra.Command {
	cmd := newParentCmd("net", "Host network interfaces, zones, vnets and subnets")
	cmd.Long = `Manage a node's network: declared interfaces (bridges, VXLAN, bonds, VLANs)
whose changes stay pending until applied, and the cluster's SDN zones, vnets
and subnets.

Interface settings are key=value arguments with the API's field names; a key
given twice becomes a list. Examples:
  corral net add vmbr1 type=bridge bridge_ports=eth1 addresses=192.0.2.10/24 gateway=192.0.2.1
  corral net show            # running, pending and the diff
  corral net apply           # refused if it would cut off the management address (--force)
  corral net revert          # drop pending changes
  corral net zone add zone=lab type=simple
  corral net vnet add vnet=lan zone=lab
  corral net subnet add subnet=10.10.0.0/24 vnet=lan gateway=10.10.0.1 dhcp_start=10.10.0.100 dhcp_end=10.10.0.200`
	cmd.AddCommand(a.newNetShowCmd(), a.newNetIfaceCmd("add"), a.newNetIfaceCmd("set"), a.newNetIfaceCmd("remove"),
		a.newNetApplyCmd(), a.newNetRevertCmd(),
		a.newDefsCmd("zone", "/cluster/zones", "zone", []string{"zone", "type", "peers", "mtu"}),
		a.newDefsCmd("vnet", "/cluster/vnets", "vnet", []string{"vnet", "zone", "tag"}),
		a.newDefsCmd("subnet", "/cluster/subnets", "subnet", []string{"subnet", "vnet", "gateway", "snat", "dhcp_start", "dhcp_end"}))
	return cmd
}

// netCall runs one request against the node's network endpoint.
func (a *cliApp) netCall(ctx context.Context, node, method, rest string, body any, out any, opts ...client.RequestOption) error {
	c, _, err := a.connect(false)
	if err != nil {
		return err
	}
	defer c.Close()
	node, err = resolveNode(ctx, c, node)
	if err != nil {
		return err
	}
	path := client.PathJoin("nodes", node, "network")
	if rest != "" {
		path += "/" + rest
	}
	_, err = c.Do(ctx, method, path, nil, body, out, opts...)
	return err
}

func (a *cliApp) printNetwork(n api.NodeNetwork) error {
	return a.printValue(n, func(w io.Writer) error {
		fmt.Fprintln(w, "IFACE\tTYPE\tUP\tMTU\tMASTER\tADDRESSES\tDETAILS")
		for _, i := range n.Running {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", i.Iface, i.Type, yesNo(i.Up), i.MTU, cell(i.Master),
				cell(strings.Join(i.Addresses, ",")), cell(ifaceDetails(i)))
		}
		switch {
		case n.Pending == nil:
			fmt.Fprintln(w, "\nNo pending changes.")
		case len(n.Diff) == 0:
			fmt.Fprintln(w, "\nPending configuration equals the running one.")
		default:
			fmt.Fprintln(w, "\nPENDING\tACTION\tDETAIL")
			for _, d := range n.Diff {
				fmt.Fprintf(w, "%s\t%s\t%s\n", d.Iface, d.Action, cell(d.Detail))
			}
		}
		c := n.Caps
		fmt.Fprintf(w, "\nKernel: bridge %s, vxlan %s, bond %s, vlan %s, vlan-aware bridges %s\n",
			yesNo(c.Bridge), yesNo(c.VXLAN), yesNo(c.Bond), yesNo(c.VLAN), yesNo(c.VLANFilter))
		return nil
	})
}

func ifaceDetails(i api.NetIface) string {
	var p []string
	if len(i.Ports) > 0 {
		p = append(p, "ports "+strings.Join(i.Ports, ","))
	}
	if i.VNI != 0 {
		p = append(p, fmt.Sprintf("vni %d", i.VNI))
	}
	if len(i.Remotes) > 0 {
		p = append(p, "peers "+strings.Join(i.Remotes, ","))
	}
	if len(i.Slaves) > 0 {
		p = append(p, "slaves "+strings.Join(i.Slaves, ","))
	}
	if i.VLANID != 0 {
		p = append(p, fmt.Sprintf("vlan %d on %s", i.VLANID, i.VLANRaw))
	}
	if i.Gateway != "" {
		p = append(p, "gw "+i.Gateway)
	}
	return strings.Join(p, "; ")
}

func (a *cliApp) newNetShowCmd() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show running interfaces, routes' gateways, pending changes and kernel capabilities",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n api.NodeNetwork
			if err := a.netCall(cmd.Context(), node, http.MethodGet, "", nil, &n); err != nil {
				return err
			}
			return a.printNetwork(n)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "node (default: the only node)")
	return cmd
}

// ifaceArgs are an interface's list-valued fields: one value is still a list.
var ifaceLists = map[string]bool{"addresses": true, "bridge_ports": true, "remotes": true, "slaves": true}

func (a *cliApp) newNetIfaceCmd(verb string) *cobra.Command {
	var node string
	short := map[string]string{"add": "Declare an interface (pending)", "set": "Change an interface's settings (pending)",
		"remove": "Remove an interface's declaration (pending)"}[verb]
	cmd := &cobra.Command{
		Use:   verb + " IFACE [key=value ...]",
		Short: short,
		Args:  usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			pairs, err := parseKeyValues(args[1:])
			if err != nil {
				return err
			}
			body := listify(bodyFromPairs(pairs), ifaceLists)
			var n api.NodeNetwork
			switch verb {
			case "add":
				body["iface"] = args[0]
				err = a.netCall(ctx, node, http.MethodPost, "", body, &n)
			case "set":
				var cur map[string]any
				if err := a.netCall(ctx, node, http.MethodGet, client.PathJoin(args[0])[1:], nil, &cur); err != nil {
					return err
				}
				for _, k := range []string{"up", "mac", "master", "$schema"} {
					delete(cur, k)
				}
				for k, v := range body {
					cur[k] = v
				}
				err = a.netCall(ctx, node, http.MethodPut, client.PathJoin(args[0])[1:], cur, &n)
			case "remove":
				if len(pairs) > 0 {
					return usageErrorf("remove takes no settings")
				}
				err = a.netCall(ctx, node, http.MethodDelete, client.PathJoin(args[0])[1:], nil, &n)
			}
			if err != nil {
				return err
			}
			return a.printNetwork(n)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "node (default: the only node)")
	return cmd
}

// listify turns single values of list fields into one-element lists, and
// splits comma lists ("addresses=a,b").
func listify(body map[string]any, lists map[string]bool) map[string]any {
	for k, v := range body {
		if !lists[k] {
			continue
		}
		if s, ok := v.(string); ok {
			var out []any
			for _, p := range strings.Split(s, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
			body[k] = out
		}
	}
	return body
}

func (a *cliApp) newNetApplyCmd() *cobra.Command {
	var node string
	var force bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Apply the pending configuration (rolled back if any step fails)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n api.NodeNetwork
			if err := a.netCall(cmd.Context(), node, http.MethodPut, "", api.NetApply{Force: force}, &n); err != nil {
				return err
			}
			return a.printNetwork(n)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "node (default: the only node)")
	cmd.Flags().BoolVar(&force, "force", false, "apply even if the management address would be removed")
	return cmd
}

func (a *cliApp) newNetRevertCmd() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "revert",
		Short: "Drop the pending configuration",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n api.NodeNetwork
			if err := a.netCall(cmd.Context(), node, http.MethodDelete, "", nil, &n); err != nil {
				return err
			}
			return a.printNetwork(n)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "node (default: the only node)")
	return cmd
}

// newDefsCmd is list/add/set/remove of a cluster-wide definition collection
// (zones, vnets, subnets, and the firewall's groups, IP sets and aliases).
func (a *cliApp) newDefsCmd(name, path, idKey string, cols []string) *cobra.Command {
	cmd := newParentCmd(name, "Manage "+name+"s")
	idPath := func(id string) string { return path + "/" + client.PathJoin(strings.ReplaceAll(id, "/", "-"))[1:] }
	lists := map[string]bool{"peers": true, "nodes": true, "cidrs": true}
	call := func(ctx context.Context, method, p string, body, out any) error {
		c, _, err := a.connect(false)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Do(ctx, method, p, nil, body, out)
		return err
	}
	list := &cobra.Command{Use: "list", Short: "List " + name + "s", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rows []map[string]any
			if err := call(cmd.Context(), http.MethodGet, path, nil, &rows); err != nil {
				return err
			}
			var cs []column[map[string]any]
			for _, c := range cols {
				cs = append(cs, column[map[string]any]{strings.ToUpper(c), func(r map[string]any) string { return anyText(r[c]) }})
			}
			return printList(a, rows, cs)
		}}
	add := &cobra.Command{Use: "add key=value ...", Short: "Create a " + name, Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			pairs, err := parseKeyValues(args)
			if err != nil {
				return err
			}
			body := listify(bodyFromPairs(pairs), lists)
			if err := call(cmd.Context(), http.MethodPost, path, body, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s %v created.\n", name, body[idKey])
			return nil
		}}
	set := &cobra.Command{Use: "set ID key=value ...", Short: "Change a " + name, Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			pairs, err := parseKeyValues(args[1:])
			if err != nil {
				return err
			}
			var cur, all []map[string]any
			if err := call(cmd.Context(), http.MethodGet, path, nil, &all); err != nil {
				return err
			}
			for _, r := range all {
				if anyText(r[idKey]) == args[0] {
					cur = append(cur, r)
				}
			}
			if len(cur) == 0 {
				return fmt.Errorf("%s %s does not exist", name, args[0])
			}
			obj := cur[0]
			delete(obj, "digest")
			delete(obj, "$schema")
			for k, v := range listify(bodyFromPairs(pairs), lists) {
				obj[k] = v
			}
			if err := call(cmd.Context(), http.MethodPut, idPath(args[0]), obj, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s %s changed.\n", name, args[0])
			return nil
		}}
	remove := &cobra.Command{Use: "remove ID", Aliases: []string{"delete"}, Short: "Delete a " + name, Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := call(cmd.Context(), http.MethodDelete, idPath(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s %s removed.\n", name, args[0])
			return nil
		}}
	cmd.AddCommand(list, add, set, remove)
	return cmd
}

func anyText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []any:
		var p []string
		for _, e := range x {
			p = append(p, anyText(e))
		}
		return strings.Join(p, ",")
	}
	b, _ := json.Marshal(v)
	return string(b)
}
