// Package zone is corral's SDN: zones (simple: an isolated bridge per node;
// vxlan: one L2 segment across nodes), vnets (what guests attach to, like a
// bridge), subnets (gateway on the host, DHCP/DNS by a dnsmasq per vnet,
// optional SNAT) and IPAM (allocations in the cluster store).
package zone

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/store"
)

// Defs holds the cluster-wide definitions.
type Defs struct {
	st      *store.Store
	zones   *store.Collection[api.Zone]
	vnets   *store.Collection[api.VNet]
	subnets *store.Collection[api.Subnet]
	ipam    *store.Collection[api.IPAlloc]
}

// NewDefs returns the definitions service.
func NewDefs(st *store.Store) *Defs {
	return &Defs{st: st, zones: store.NewCollection[api.Zone](st, "network/zones"),
		vnets: store.NewCollection[api.VNet](st, "network/vnets"), subnets: store.NewCollection[api.Subnet](st, "network/subnets"),
		ipam: store.NewCollection[api.IPAlloc](st, "network/ipam")}
}

var idRe = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// SubnetID is the store ID of a subnet: its CIDR with / as -.
func SubnetID(cidr string) string { return strings.ReplaceAll(cidr, "/", "-") }

// Zones lists zones.
func (d *Defs) Zones() []api.Zone {
	return network.List(d.zones, func(z *api.Zone, dg string) { z.Digest = dg })
}

// VNets lists vnets.
func (d *Defs) VNets() []api.VNet {
	return network.List(d.vnets, func(v *api.VNet, dg string) { v.Digest = dg })
}

// Subnets lists subnets.
func (d *Defs) Subnets() []api.Subnet {
	return network.List(d.subnets, func(s *api.Subnet, dg string) { s.Digest = dg })
}

// Zone returns one zone.
func (d *Defs) Zone(id string) (api.Zone, error) {
	o, err := d.zones.Get(id)
	if err != nil {
		return api.Zone{}, errs.NotFound("zone %s does not exist", id)
	}
	o.Value.Digest = o.Digest
	return o.Value, nil
}

// VNet returns one vnet.
func (d *Defs) VNet(id string) (api.VNet, error) {
	o, err := d.vnets.Get(id)
	if err != nil {
		return api.VNet{}, errs.NotFound("vnet %s does not exist", id)
	}
	o.Value.Digest = o.Digest
	return o.Value, nil
}

func checkZone(z api.Zone) error {
	if !idRe.MatchString(z.Zone) {
		return errs.Invalid("zone", "zone IDs are 1-8 lower-case letters and digits, starting with a letter")
	}
	if z.Type != "simple" && z.Type != "vxlan" {
		return errs.Invalid("type", "must be simple or vxlan")
	}
	for i, p := range z.Peers {
		if _, err := netip.ParseAddr(p); err != nil {
			return errs.Invalid(fmt.Sprintf("peers[%d]", i), "%q is not an IP address", p)
		}
	}
	if z.Type != "vxlan" && len(z.Peers) > 0 {
		return errs.Invalid("peers", "only vxlan zones have peers")
	}
	if z.MTU != 0 && (z.MTU < 576 || z.MTU > 65535) {
		return errs.Invalid("mtu", "must be 576-65535")
	}
	return nil
}

// CreateZone adds a zone.
func (d *Defs) CreateZone(ctx context.Context, z api.Zone) error {
	z.Digest = ""
	if err := checkZone(z); err != nil {
		return err
	}
	_, err := d.zones.Create(ctx, z.Zone, z)
	return network.StoreErr(err, "zone "+z.Zone)
}

// UpdateZone replaces a zone (its ID and type stay).
func (d *Defs) UpdateZone(ctx context.Context, id, ifMatch string, z api.Zone) error {
	_, err := d.zones.Update(ctx, id, ifMatch, func(cur *api.Zone) error {
		if z.Type != "" && z.Type != cur.Type {
			return errs.Invalid("type", "a zone's type cannot change")
		}
		z.Zone, z.Type, z.Digest = id, cur.Type, ""
		if err := checkZone(z); err != nil {
			return err
		}
		*cur = z
		return nil
	})
	return network.StoreErr(err, "zone "+id)
}

// DeleteZone removes a zone without vnets.
func (d *Defs) DeleteZone(ctx context.Context, id, ifMatch string) error {
	for _, v := range d.VNets() {
		if v.Zone == id {
			return errs.Conflict("zone %s still has vnet %s", id, v.VNet)
		}
	}
	return network.StoreErr(d.zones.Delete(ctx, id, ifMatch), "zone "+id)
}

func (d *Defs) checkVNet(v api.VNet) error {
	if !idRe.MatchString(v.VNet) {
		return errs.Invalid("vnet", "vnet IDs are 1-8 lower-case letters and digits, starting with a letter (they name the bridge)")
	}
	z, err := d.Zone(v.Zone)
	if err != nil {
		return errs.Invalid("zone", "zone %s does not exist", v.Zone)
	}
	if z.Type == "vxlan" {
		if v.Tag < 1 || v.Tag > 16777215 {
			return errs.Invalid("tag", "a vnet of a vxlan zone needs a VNI (tag) of 1-16777215")
		}
		for _, o := range d.VNets() {
			if o.VNet != v.VNet && o.Tag == v.Tag {
				if oz, _ := d.Zone(o.Zone); oz.Type == "vxlan" {
					return errs.Invalid("tag", "VNI %d is already used by vnet %s", v.Tag, o.VNet)
				}
			}
		}
	} else if v.Tag != 0 {
		return errs.Invalid("tag", "vnets of simple zones have no tag")
	}
	return nil
}

// CreateVNet adds a vnet.
func (d *Defs) CreateVNet(ctx context.Context, v api.VNet) error {
	v.Digest = ""
	if err := d.checkVNet(v); err != nil {
		return err
	}
	_, err := d.vnets.Create(ctx, v.VNet, v)
	return network.StoreErr(err, "vnet "+v.VNet)
}

// UpdateVNet replaces a vnet.
func (d *Defs) UpdateVNet(ctx context.Context, id, ifMatch string, v api.VNet) error {
	v.VNet, v.Digest = id, ""
	if err := d.checkVNet(v); err != nil {
		return err
	}
	_, err := d.vnets.Update(ctx, id, ifMatch, func(cur *api.VNet) error { *cur = v; return nil })
	return network.StoreErr(err, "vnet "+id)
}

// DeleteVNet removes a vnet without subnets.
func (d *Defs) DeleteVNet(ctx context.Context, id, ifMatch string) error {
	for _, s := range d.Subnets() {
		if s.VNet == id {
			return errs.Conflict("vnet %s still has subnet %s", id, s.Subnet)
		}
	}
	return network.StoreErr(d.vnets.Delete(ctx, id, ifMatch), "vnet "+id)
}

func (d *Defs) checkSubnet(s *api.Subnet) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s.Subnet)
	if err != nil {
		return p, errs.Invalid("subnet", "%q is not a CIDR", s.Subnet)
	}
	if p.Masked() != p {
		return p, errs.Invalid("subnet", "%s has host bits set; did you mean %s?", s.Subnet, p.Masked())
	}
	if _, err := d.VNet(s.VNet); err != nil {
		return p, errs.Invalid("vnet", "vnet %s does not exist", s.VNet)
	}
	in := func(field, v string) error {
		if v == "" {
			return nil
		}
		a, err := netip.ParseAddr(v)
		if err != nil || !p.Contains(a) {
			return errs.Invalid(field, "%q is not an address in %s", v, s.Subnet)
		}
		return nil
	}
	for _, f := range [][2]string{{"gateway", s.Gateway}, {"dhcp_start", s.DHCPStart}, {"dhcp_end", s.DHCPEnd}} {
		if err := in(f[0], f[1]); err != nil {
			return p, err
		}
	}
	if (s.DHCPStart == "") != (s.DHCPEnd == "") {
		return p, errs.Invalid("dhcp_end", "give both ends of the DHCP range")
	}
	if s.DHCPStart != "" {
		if s.Gateway == "" {
			return p, errs.Invalid("gateway", "DHCP needs the gateway address, where dnsmasq listens")
		}
		if netip.MustParseAddr(s.DHCPStart).Compare(netip.MustParseAddr(s.DHCPEnd)) > 0 {
			return p, errs.Invalid("dhcp_end", "the range ends before it starts")
		}
	}
	if s.SNAT && s.Gateway == "" {
		return p, errs.Invalid("snat", "SNAT needs a gateway on the host")
	}
	for _, o := range d.Subnets() {
		if o.Subnet == s.Subnet {
			continue
		}
		if op, err := netip.ParsePrefix(o.Subnet); err == nil && op.Overlaps(p) {
			return p, errs.Invalid("subnet", "%s overlaps subnet %s", s.Subnet, o.Subnet)
		}
	}
	return p, nil
}

// CreateSubnet adds a subnet.
func (d *Defs) CreateSubnet(ctx context.Context, s api.Subnet) error {
	s.Digest = ""
	if _, err := d.checkSubnet(&s); err != nil {
		return err
	}
	_, err := d.subnets.Create(ctx, SubnetID(s.Subnet), s)
	return network.StoreErr(err, "subnet "+s.Subnet)
}

// UpdateSubnet replaces a subnet's settings (its CIDR stays).
func (d *Defs) UpdateSubnet(ctx context.Context, id, ifMatch string, s api.Subnet) error {
	o, err := d.subnets.Get(id)
	if err != nil {
		return errs.NotFound("subnet %s does not exist", id)
	}
	s.Subnet, s.Digest = o.Value.Subnet, ""
	if _, err := d.checkSubnet(&s); err != nil {
		return err
	}
	_, err = d.subnets.Update(ctx, id, ifMatch, func(cur *api.Subnet) error { *cur = s; return nil })
	return network.StoreErr(err, "subnet "+id)
}

// DeleteSubnet removes a subnet without allocations.
func (d *Defs) DeleteSubnet(ctx context.Context, id, ifMatch string) error {
	if a := d.Allocations(id); len(a) > 0 {
		return errs.Conflict("subnet %s still has %d address allocations (first: %s for %s)", id, len(a), a[0].IP, a[0].Owner)
	}
	return network.StoreErr(d.subnets.Delete(ctx, id, ifMatch), "subnet "+id)
}

// SubnetsOf lists a vnet's subnets.
func (d *Defs) SubnetsOf(vnet string) []api.Subnet {
	return slices.DeleteFunc(d.Subnets(), func(s api.Subnet) bool { return s.VNet != vnet })
}
