package server

import (
	"context"

	"github.com/danielgtaylor/huma/v2"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
)

type nodeNetOut struct {
	ETag string `header:"ETag"`
	Body api.NodeNetwork
}
type NetIfaceParam struct {
	NodeParam
	Iface string `path:"iface" maxLength:"15"`
}
type netIfaceOut struct{ Body api.NetIface }
type netCreateIn struct {
	NodeParam
	Body api.NetIface
}
type netUpdateIn struct {
	NetIfaceParam
	IfMatchParam
	Body api.NetIface
}
type netDeleteIn struct {
	NetIfaceParam
	IfMatchParam
}
type netApplyIn struct {
	NodeParam
	Body api.NetApply
}
type zonesOut struct{ Body []api.Zone }
type zoneOut struct{ Body api.Zone }
type zoneIn struct{ Body api.Zone }
type ZoneParam struct {
	Zone string `path:"zone" maxLength:"8"`
}
type zonePutIn struct {
	ZoneParam
	IfMatchParam
	Body api.Zone
}
type zoneDelIn struct {
	ZoneParam
	IfMatchParam
}
type vnetsOut struct{ Body []api.VNet }
type vnetOut struct{ Body api.VNet }
type vnetIn struct{ Body api.VNet }
type VNetParam struct {
	VNet string `path:"vnet" maxLength:"8"`
}
type vnetPutIn struct {
	VNetParam
	IfMatchParam
	Body api.VNet
}
type vnetDelIn struct {
	VNetParam
	IfMatchParam
}
type subnetsOut struct{ Body []api.Subnet }
type subnetIn struct{ Body api.Subnet }
type SubnetParam struct {
	Subnet string `path:"subnet" maxLength:"64" doc:"the CIDR with - for /, e.g. 10.0.0.0-24"`
}
type subnetPutIn struct {
	SubnetParam
	IfMatchParam
	Body api.Subnet
}
type subnetDelIn struct {
	SubnetParam
	IfMatchParam
}
type ipsOut struct{ Body []api.IPAlloc }
type ipAllocIn struct {
	SubnetParam
	Body struct {
		Owner string `json:"owner" minLength:"1" maxLength:"64" doc:"e.g. vm/100/net0; the same owner always gets the same address"`
		MAC   string `json:"mac,omitempty" pattern:"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$|^$"`
	}
}
type ipAllocOut struct{ Body api.IPAlloc }

func (s *Server) networkRoutes() {
	if s.Net == nil {
		return
	}
	tags := []string{"network"}
	read := Perm{Path: "/nodes/{node}", Privs: []string{"Sys.Audit"}}
	write := Perm{Path: "/nodes/{node}", Privs: []string{"Sys.Modify"}}
	h := s.Net.Host
	netOut := func(n api.NodeNetwork, err error) (*nodeNetOut, error) {
		if err != nil {
			return nil, err
		}
		return &nodeNetOut{ETag: etag(n.Digest), Body: n}, nil
	}
	register(s, huma.Operation{OperationID: "get-node-network", Method: "GET", Path: "/nodes/{node}/network", Summary: "Running, configured and pending interfaces, the diff, routes and kernel capabilities", Tags: tags},
		read, func(ctx context.Context, in *NodeParam) (*nodeNetOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			return netOut(h.Get(ctx))
		})
	register(s, huma.Operation{OperationID: "create-node-interface", Method: "POST", Path: "/nodes/{node}/network", Summary: "Declare an interface (pending until applied)", Tags: tags},
		write, func(ctx context.Context, in *netCreateIn) (*nodeNetOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			if err := h.Create(ctx, in.Body); err != nil {
				return nil, err
			}
			return netOut(h.Get(ctx))
		})
	register(s, huma.Operation{OperationID: "apply-node-network", Method: "PUT", Path: "/nodes/{node}/network", Summary: "Apply the pending configuration (rolled back if any step fails)", Tags: tags},
		write, func(ctx context.Context, in *netApplyIn) (*nodeNetOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			return netOut(h.Apply(ctx, in.Body.Force))
		})
	register(s, huma.Operation{OperationID: "revert-node-network", Method: "DELETE", Path: "/nodes/{node}/network", Summary: "Drop the pending configuration", Tags: tags},
		write, func(ctx context.Context, in *NodeParam) (*nodeNetOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			if err := h.Revert(ctx); err != nil {
				return nil, err
			}
			return netOut(h.Get(ctx))
		})
	register(s, huma.Operation{OperationID: "get-node-interface", Method: "GET", Path: "/nodes/{node}/network/{iface}", Summary: "One interface (pending version if any)", Tags: tags},
		read, func(ctx context.Context, in *NetIfaceParam) (*netIfaceOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			i, err := h.Iface(ctx, in.Iface)
			if err != nil {
				return nil, err
			}
			return &netIfaceOut{Body: i}, nil
		})
	register(s, huma.Operation{OperationID: "update-node-interface", Method: "PUT", Path: "/nodes/{node}/network/{iface}", Summary: "Replace an interface's declaration (pending)", Tags: tags},
		write, func(ctx context.Context, in *netUpdateIn) (*nodeNetOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			if in.Body.Iface != "" && in.Body.Iface != in.Iface {
				return nil, errs.Invalid("iface", "the body names %q, the path %q", in.Body.Iface, in.Iface)
			}
			if err := h.Update(ctx, in.Iface, ifMatch(in.IfMatch), in.Body); err != nil {
				return nil, err
			}
			return netOut(h.Get(ctx))
		})
	register(s, huma.Operation{OperationID: "delete-node-interface", Method: "DELETE", Path: "/nodes/{node}/network/{iface}", Summary: "Remove an interface's declaration (pending)", Tags: tags},
		write, func(ctx context.Context, in *netDeleteIn) (*nodeNetOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			if err := h.Delete(ctx, in.Iface, ifMatch(in.IfMatch)); err != nil {
				return nil, err
			}
			return netOut(h.Get(ctx))
		})
	s.sdnRoutes()
}

func (s *Server) sdnRoutes() {
	tags := []string{"sdn"}
	read := Perm{Path: "/sdn", Privs: []string{"SDN.Audit"}}
	write := Perm{Path: "/sdn", Privs: []string{"SDN.Allocate"}}
	d := s.Net.Defs
	register(s, huma.Operation{OperationID: "list-zones", Method: "GET", Path: "/cluster/zones", Summary: "List zones", Tags: tags},
		read, func(ctx context.Context, _ *struct{}) (*zonesOut, error) {
			return &zonesOut{Body: orEmpty(d.Zones())}, nil
		})
	register(s, huma.Operation{OperationID: "create-zone", Method: "POST", Path: "/cluster/zones", Summary: "Create a zone (simple or vxlan)", Tags: tags},
		write, func(ctx context.Context, in *zoneIn) (*zoneOut, error) {
			if err := d.CreateZone(ctx, in.Body); err != nil {
				return nil, err
			}
			z, err := d.Zone(in.Body.Zone)
			return &zoneOut{Body: z}, err
		})
	register(s, huma.Operation{OperationID: "get-zone", Method: "GET", Path: "/cluster/zones/{zone}", Summary: "One zone", Tags: tags},
		read, func(ctx context.Context, in *ZoneParam) (*zoneOut, error) {
			z, err := d.Zone(in.Zone)
			if err != nil {
				return nil, err
			}
			return &zoneOut{Body: z}, nil
		})
	register(s, huma.Operation{OperationID: "update-zone", Method: "PUT", Path: "/cluster/zones/{zone}", Summary: "Replace a zone's settings", Tags: tags},
		write, func(ctx context.Context, in *zonePutIn) (*struct{}, error) {
			return nil, d.UpdateZone(ctx, in.Zone, ifMatch(in.IfMatch), in.Body)
		})
	register(s, huma.Operation{OperationID: "delete-zone", Method: "DELETE", Path: "/cluster/zones/{zone}", Summary: "Delete a zone without vnets", Tags: tags},
		write, func(ctx context.Context, in *zoneDelIn) (*struct{}, error) {
			return nil, d.DeleteZone(ctx, in.Zone, ifMatch(in.IfMatch))
		})
	register(s, huma.Operation{OperationID: "list-vnets", Method: "GET", Path: "/cluster/vnets", Summary: "List vnets", Tags: tags},
		read, func(ctx context.Context, _ *struct{}) (*vnetsOut, error) {
			return &vnetsOut{Body: orEmpty(d.VNets())}, nil
		})
	register(s, huma.Operation{OperationID: "create-vnet", Method: "POST", Path: "/cluster/vnets", Summary: "Create a vnet (guests name it as their bridge)", Tags: tags},
		write, func(ctx context.Context, in *vnetIn) (*vnetOut, error) {
			if err := d.CreateVNet(ctx, in.Body); err != nil {
				return nil, err
			}
			v, err := d.VNet(in.Body.VNet)
			return &vnetOut{Body: v}, err
		})
	register(s, huma.Operation{OperationID: "get-vnet", Method: "GET", Path: "/cluster/vnets/{vnet}", Summary: "One vnet", Tags: tags},
		read, func(ctx context.Context, in *VNetParam) (*vnetOut, error) {
			v, err := d.VNet(in.VNet)
			if err != nil {
				return nil, err
			}
			return &vnetOut{Body: v}, nil
		})
	register(s, huma.Operation{OperationID: "update-vnet", Method: "PUT", Path: "/cluster/vnets/{vnet}", Summary: "Replace a vnet", Tags: tags},
		write, func(ctx context.Context, in *vnetPutIn) (*struct{}, error) {
			return nil, d.UpdateVNet(ctx, in.VNet, ifMatch(in.IfMatch), in.Body)
		})
	register(s, huma.Operation{OperationID: "delete-vnet", Method: "DELETE", Path: "/cluster/vnets/{vnet}", Summary: "Delete a vnet without subnets", Tags: tags},
		write, func(ctx context.Context, in *vnetDelIn) (*struct{}, error) {
			return nil, d.DeleteVNet(ctx, in.VNet, ifMatch(in.IfMatch))
		})
	register(s, huma.Operation{OperationID: "list-subnets", Method: "GET", Path: "/cluster/subnets", Summary: "List subnets", Tags: tags},
		read, func(ctx context.Context, _ *struct{}) (*subnetsOut, error) {
			return &subnetsOut{Body: orEmpty(d.Subnets())}, nil
		})
	register(s, huma.Operation{OperationID: "create-subnet", Method: "POST", Path: "/cluster/subnets", Summary: "Create a subnet of a vnet", Tags: tags},
		write, func(ctx context.Context, in *subnetIn) (*struct{}, error) { return nil, d.CreateSubnet(ctx, in.Body) })
	register(s, huma.Operation{OperationID: "update-subnet", Method: "PUT", Path: "/cluster/subnets/{subnet}", Summary: "Replace a subnet's settings", Tags: tags},
		write, func(ctx context.Context, in *subnetPutIn) (*struct{}, error) {
			return nil, d.UpdateSubnet(ctx, in.Subnet, ifMatch(in.IfMatch), in.Body)
		})
	register(s, huma.Operation{OperationID: "delete-subnet", Method: "DELETE", Path: "/cluster/subnets/{subnet}", Summary: "Delete a subnet without allocations", Tags: tags},
		write, func(ctx context.Context, in *subnetDelIn) (*struct{}, error) {
			return nil, d.DeleteSubnet(ctx, in.Subnet, ifMatch(in.IfMatch))
		})
	register(s, huma.Operation{OperationID: "list-subnet-ips", Method: "GET", Path: "/cluster/subnets/{subnet}/ips", Summary: "IPAM allocations of a subnet", Tags: tags},
		read, func(ctx context.Context, in *SubnetParam) (*ipsOut, error) {
			return &ipsOut{Body: orEmpty(d.Allocations(in.Subnet))}, nil
		})
	register(s, huma.Operation{OperationID: "allocate-subnet-ip", Method: "POST", Path: "/cluster/subnets/{subnet}/ips", Summary: "Allocate an address (stable per owner)", Tags: tags},
		write, func(ctx context.Context, in *ipAllocIn) (*ipAllocOut, error) {
			ip, err := d.Alloc(ctx, in.Subnet, in.Body.Owner, in.Body.MAC)
			if err != nil {
				return nil, err
			}
			for _, a := range d.Allocations(in.Subnet) {
				if a.IP == ip {
					return &ipAllocOut{Body: a}, nil
				}
			}
			return &ipAllocOut{Body: api.IPAlloc{IP: ip, Owner: in.Body.Owner}}, nil
		})
}

func orEmpty[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}
