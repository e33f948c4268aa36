package server

import (
	"context"

	"github.com/danielgtaylor/huma/v2"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/network/firewall"
)

// Firewall levels share one set of operations; the level comes from the
// path parameters, through these small types.
type (
	FwClusterLvl struct{}
	FwNodeLvl    struct{ NodeParam }
	FwGuestLvl   struct{ GuestIDParam }
	FwPos        struct {
		Pos int `path:"pos" minimum:"0" maximum:"9999" doc:"rule position, 0 first"`
	}
	FwOptsBody struct {
		IfMatchParam
		Body api.FwOptions
	}
	FwRuleBody struct {
		IfMatchParam
		Body api.FwRule
	}
	FwAddBody struct {
		FwRuleBody
		At int `query:"pos" minimum:"-1" maximum:"9999" default:"-1" doc:"insert before this position; -1 appends"`
	}
	FwDelBody struct{ IfMatchParam }
)

func (FwClusterLvl) level() string { return firewall.LevelCluster }
func (p FwNodeLvl) level() string  { return firewall.NodeLevel(p.Node) }
func (p FwGuestLvl) level() string { return firewall.GuestLevel(p.VMID) }
func (b FwOptsBody) ifm() string   { return b.IfMatch }
func (b FwRuleBody) ifm() string   { return b.IfMatch }
func (b FwDelBody) ifm() string    { return b.IfMatch }

type (
	fwCluster    struct{ FwClusterLvl }
	fwClusterOpt struct {
		FwClusterLvl
		FwOptsBody
	}
	fwClusterAdd struct {
		FwClusterLvl
		FwAddBody
	}
	fwClusterPut struct {
		FwClusterLvl
		FwPos
		FwRuleBody
	}
	fwClusterDel struct {
		FwClusterLvl
		FwPos
		FwDelBody
	}
	fwNode    struct{ FwNodeLvl }
	fwNodeOpt struct {
		FwNodeLvl
		FwOptsBody
	}
	fwNodeAdd struct {
		FwNodeLvl
		FwAddBody
	}
	fwNodePut struct {
		FwNodeLvl
		FwPos
		FwRuleBody
	}
	fwNodeDel struct {
		FwNodeLvl
		FwPos
		FwDelBody
	}
	fwGuest    struct{ FwGuestLvl }
	fwGuestOpt struct {
		FwGuestLvl
		FwOptsBody
	}
	fwGuestAdd struct {
		FwGuestLvl
		FwAddBody
	}
	fwGuestPut struct {
		FwGuestLvl
		FwPos
		FwRuleBody
	}
	fwGuestDel struct {
		FwGuestLvl
		FwPos
		FwDelBody
	}
)

type fwLevelIn interface{ level() string }
type fwOptIn interface {
	fwLevelIn
	ifm() string
}

type fwRulesOut struct {
	ETag string `header:"ETag"`
	Body api.FwRules
}

func rulesOut(r api.FwRules, err error) (*fwRulesOut, error) {
	if err != nil {
		return nil, err
	}
	return &fwRulesOut{ETag: etag(r.Digest), Body: r}, nil
}

// fwLevelRoutes registers GET, options, add, update and delete of one level.
func fwLevelRoutes[L fwLevelIn, O fwOptIn, A fwOptIn, P fwOptIn, D fwOptIn](s *Server, base, id string, read, write Perm,
	opts func(*O) api.FwOptions, add func(*A) (int, api.FwRule), put func(*P) (int, api.FwRule), del func(*D) int) {
	tags := []string{"firewall"}
	fw := func() *firewall.Service { return s.Net.Firewall }
	register(s, huma.Operation{OperationID: "get-" + id + "-firewall", Method: "GET", Path: base, Summary: "Firewall options and rules", Tags: tags},
		read, func(ctx context.Context, in *L) (*fwRulesOut, error) {
			return rulesOut(fw().Level((*in).level()), nil)
		})
	register(s, huma.Operation{OperationID: "set-" + id + "-firewall-options", Method: "PUT", Path: base + "/options", Summary: "Set firewall options (enable, default policies)", Tags: tags},
		write, func(ctx context.Context, in *O) (*fwRulesOut, error) {
			return rulesOut(fw().SetOptions(ctx, (*in).level(), ifMatch((*in).ifm()), opts(in)))
		})
	register(s, huma.Operation{OperationID: "add-" + id + "-firewall-rule", Method: "POST", Path: base + "/rules", Summary: "Add a firewall rule (refused with the reason if it doesn't compile)", Tags: tags},
		write, func(ctx context.Context, in *A) (*fwRulesOut, error) {
			pos, r := add(in)
			return rulesOut(fw().AddRule(ctx, (*in).level(), ifMatch((*in).ifm()), pos, r))
		})
	register(s, huma.Operation{OperationID: "update-" + id + "-firewall-rule", Method: "PUT", Path: base + "/rules/{pos}", Summary: "Replace a firewall rule", Tags: tags},
		write, func(ctx context.Context, in *P) (*fwRulesOut, error) {
			pos, r := put(in)
			return rulesOut(fw().UpdateRule(ctx, (*in).level(), ifMatch((*in).ifm()), pos, r))
		})
	register(s, huma.Operation{OperationID: "delete-" + id + "-firewall-rule", Method: "DELETE", Path: base + "/rules/{pos}", Summary: "Delete a firewall rule", Tags: tags},
		write, func(ctx context.Context, in *D) (*fwRulesOut, error) {
			return rulesOut(fw().DeleteRule(ctx, (*in).level(), ifMatch((*in).ifm()), del(in)))
		})
}

type fwGroupsOut struct{ Body []api.FwGroup }
type fwGroupIn struct{ Body api.FwGroup }
type FwNameParam struct {
	Name string `path:"name" maxLength:"32"`
}
type fwGroupPutIn struct {
	FwNameParam
	IfMatchParam
	Body api.FwGroup
}
type fwNameDelIn struct {
	FwNameParam
	IfMatchParam
}
type fwIPSetsOut struct{ Body []api.FwIPSet }
type fwIPSetIn struct{ Body api.FwIPSet }
type fwIPSetPutIn struct {
	FwNameParam
	IfMatchParam
	Body api.FwIPSet
}
type fwAliasesOut struct{ Body []api.FwAlias }
type fwAliasIn struct{ Body api.FwAlias }
type fwAliasPutIn struct {
	FwNameParam
	IfMatchParam
	Body api.FwAlias
}
type fwLogIn struct {
	NodeParam
	Limit int `query:"limit" minimum:"0" maximum:"1000" default:"100"`
}
type fwLogOut struct{ Body []api.FwLogEntry }
type fwRulesetOut struct {
	Body struct {
		Rules    int    `json:"rules" doc:"nftables rules this node applies"`
		BridgeNF bool   `json:"bridge_nf" doc:"guest rules in use (br_netfilter on)"`
		Error    string `json:"error,omitempty"`
	}
}

func (s *Server) firewallRoutes() {
	if s.Net == nil {
		return
	}
	clusterRead := Perm{Path: "/", Privs: []string{"Sys.Audit"}}
	clusterWrite := Perm{Path: "/", Privs: []string{"Sys.Modify"}}
	fwLevelRoutes[fwCluster, fwClusterOpt, fwClusterAdd, fwClusterPut, fwClusterDel](s, "/cluster/firewall", "cluster", clusterRead, clusterWrite,
		func(in *fwClusterOpt) api.FwOptions { return in.Body },
		func(in *fwClusterAdd) (int, api.FwRule) { return in.At, in.Body },
		func(in *fwClusterPut) (int, api.FwRule) { return in.Pos, in.Body },
		func(in *fwClusterDel) int { return in.Pos })
	nodeRead := Perm{Path: "/nodes/{node}", Privs: []string{"Sys.Audit"}}
	nodeWrite := Perm{Path: "/nodes/{node}", Privs: []string{"Sys.Modify"}}
	fwLevelRoutes[fwNode, fwNodeOpt, fwNodeAdd, fwNodePut, fwNodeDel](s, "/nodes/{node}/firewall", "node", nodeRead, nodeWrite,
		func(in *fwNodeOpt) api.FwOptions { return in.Body },
		func(in *fwNodeAdd) (int, api.FwRule) { return in.At, in.Body },
		func(in *fwNodePut) (int, api.FwRule) { return in.Pos, in.Body },
		func(in *fwNodeDel) int { return in.Pos })
	for _, kind := range []string{"vms", "containers"} {
		// Containers share the guest ID space and ACL paths with VMs.
		read := Perm{Path: "/vms/{vmid}", Privs: []string{"VM.Audit"}}
		write := Perm{Path: "/vms/{vmid}", Privs: []string{"VM.Config.Network"}}
		id := map[string]string{"vms": "vm", "containers": "container"}[kind]
		fwLevelRoutes[fwGuest, fwGuestOpt, fwGuestAdd, fwGuestPut, fwGuestDel](s, "/"+kind+"/{vmid}/firewall", id, read, write,
			func(in *fwGuestOpt) api.FwOptions { return in.Body },
			func(in *fwGuestAdd) (int, api.FwRule) { return in.At, in.Body },
			func(in *fwGuestPut) (int, api.FwRule) { return in.Pos, in.Body },
			func(in *fwGuestDel) int { return in.Pos })
	}
	tags := []string{"firewall"}
	fw := s.Net.Firewall
	register(s, huma.Operation{OperationID: "get-node-firewall-ruleset", Method: "GET", Path: "/nodes/{node}/firewall/ruleset", Summary: "The compiled ruleset of this node", Tags: tags},
		nodeRead, func(ctx context.Context, in *NodeParam) (*fwRulesetOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			out := &fwRulesetOut{}
			rs, err := s.Net.Compile()
			if err != nil {
				out.Body.Error = err.Error()
				return out, nil
			}
			out.Body.Rules, out.Body.BridgeNF = rs.Rules(), rs.BridgeNF
			return out, nil
		})
	register(s, huma.Operation{OperationID: "get-node-firewall-log", Method: "GET", Path: "/nodes/{node}/firewall/log", Summary: "Packets the firewall dropped on this node, newest last", Tags: tags},
		nodeRead, func(ctx context.Context, in *fwLogIn) (*fwLogOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			entries, err := s.Net.DropLog(in.Limit)
			if err != nil {
				return nil, errs.Conflict("%v", err)
			}
			return &fwLogOut{Body: orEmpty(entries)}, nil
		})
	// Security groups, IP sets and aliases.
	register(s, huma.Operation{OperationID: "list-firewall-groups", Method: "GET", Path: "/cluster/firewall/groups", Summary: "List security groups", Tags: tags},
		clusterRead, func(ctx context.Context, _ *struct{}) (*fwGroupsOut, error) {
			return &fwGroupsOut{Body: fw.Groups()}, nil
		})
	register(s, huma.Operation{OperationID: "create-firewall-group", Method: "POST", Path: "/cluster/firewall/groups", Summary: "Create a security group", Tags: tags},
		clusterWrite, func(ctx context.Context, in *fwGroupIn) (*struct{}, error) {
			return nil, fw.PutGroup(ctx, in.Body, true, "")
		})
	register(s, huma.Operation{OperationID: "update-firewall-group", Method: "PUT", Path: "/cluster/firewall/groups/{name}", Summary: "Replace a security group", Tags: tags},
		clusterWrite, func(ctx context.Context, in *fwGroupPutIn) (*struct{}, error) {
			if in.Body.Group != in.Name {
				return nil, errs.Invalid("group", "the body names %q, the path %q", in.Body.Group, in.Name)
			}
			return nil, fw.PutGroup(ctx, in.Body, false, ifMatch(in.IfMatch))
		})
	register(s, huma.Operation{OperationID: "delete-firewall-group", Method: "DELETE", Path: "/cluster/firewall/groups/{name}", Summary: "Delete an unused security group", Tags: tags},
		clusterWrite, func(ctx context.Context, in *fwNameDelIn) (*struct{}, error) {
			return nil, fw.DeleteGroup(ctx, in.Name, ifMatch(in.IfMatch))
		})
	register(s, huma.Operation{OperationID: "list-firewall-ipsets", Method: "GET", Path: "/cluster/firewall/ipset", Summary: "List IP sets", Tags: tags},
		clusterRead, func(ctx context.Context, _ *struct{}) (*fwIPSetsOut, error) {
			return &fwIPSetsOut{Body: fw.IPSets()}, nil
		})
	register(s, huma.Operation{OperationID: "create-firewall-ipset", Method: "POST", Path: "/cluster/firewall/ipset", Summary: "Create an IP set (use as +name)", Tags: tags},
		clusterWrite, func(ctx context.Context, in *fwIPSetIn) (*struct{}, error) {
			return nil, fw.PutIPSet(ctx, in.Body, true, "")
		})
	register(s, huma.Operation{OperationID: "update-firewall-ipset", Method: "PUT", Path: "/cluster/firewall/ipset/{name}", Summary: "Replace an IP set", Tags: tags},
		clusterWrite, func(ctx context.Context, in *fwIPSetPutIn) (*struct{}, error) {
			if in.Body.Name != in.Name {
				return nil, errs.Invalid("name", "the body names %q, the path %q", in.Body.Name, in.Name)
			}
			return nil, fw.PutIPSet(ctx, in.Body, false, ifMatch(in.IfMatch))
		})
	register(s, huma.Operation{OperationID: "delete-firewall-ipset", Method: "DELETE", Path: "/cluster/firewall/ipset/{name}", Summary: "Delete an unused IP set", Tags: tags},
		clusterWrite, func(ctx context.Context, in *fwNameDelIn) (*struct{}, error) {
			return nil, fw.DeleteIPSet(ctx, in.Name, ifMatch(in.IfMatch))
		})
	register(s, huma.Operation{OperationID: "list-firewall-aliases", Method: "GET", Path: "/cluster/firewall/aliases", Summary: "List aliases", Tags: tags},
		clusterRead, func(ctx context.Context, _ *struct{}) (*fwAliasesOut, error) {
			return &fwAliasesOut{Body: fw.Aliases()}, nil
		})
	register(s, huma.Operation{OperationID: "create-firewall-alias", Method: "POST", Path: "/cluster/firewall/aliases", Summary: "Create an alias", Tags: tags},
		clusterWrite, func(ctx context.Context, in *fwAliasIn) (*struct{}, error) {
			return nil, fw.PutAlias(ctx, in.Body, true, "")
		})
	register(s, huma.Operation{OperationID: "update-firewall-alias", Method: "PUT", Path: "/cluster/firewall/aliases/{name}", Summary: "Replace an alias", Tags: tags},
		clusterWrite, func(ctx context.Context, in *fwAliasPutIn) (*struct{}, error) {
			if in.Body.Name != in.Name {
				return nil, errs.Invalid("name", "the body names %q, the path %q", in.Body.Name, in.Name)
			}
			return nil, fw.PutAlias(ctx, in.Body, false, ifMatch(in.IfMatch))
		})
	register(s, huma.Operation{OperationID: "delete-firewall-alias", Method: "DELETE", Path: "/cluster/firewall/aliases/{name}", Summary: "Delete an unused alias", Tags: tags},
		clusterWrite, func(ctx context.Context, in *fwNameDelIn) (*struct{}, error) {
			return nil, fw.DeleteAlias(ctx, in.Name, ifMatch(in.IfMatch))
		})
}
