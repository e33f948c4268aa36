package zone

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/network"
	"github.com/corral-project/corral/internal/store"
)

func allocID(subnetID string, ip netip.Addr) string {
	return subnetID + "/" + strings.ReplaceAll(ip.String(), ":", "_")
}

// Allocations lists a subnet's allocations ("" for all).
func (d *Defs) Allocations(subnetID string) []api.IPAlloc {
	var out []api.IPAlloc
	for _, o := range d.ipam.List() {
		if subnetID == "" || SubnetID(o.Value.Subnet) == subnetID {
			out = append(out, o.Value)
		}
	}
	return out
}

// Alloc gives owner an address in the subnet: the one it already has
// (stable across restarts), else the first free one outside the gateway and
// the DHCP pool. Each address is claimed with a create-only write, so two
// nodes allocating at once never get the same address.
func (d *Defs) Alloc(ctx context.Context, subnetID, owner, mac string) (string, error) {
	o, err := d.subnets.Get(subnetID)
	if err != nil {
		return "", errs.NotFound("subnet %s does not exist", subnetID)
	}
	sub := o.Value
	if owner == "" {
		return "", errs.Invalid("owner", "an allocation needs an owner")
	}
	for _, a := range d.Allocations(subnetID) {
		if a.Owner == owner {
			if mac != "" && a.MAC != mac {
				ip, _ := netip.ParseAddr(a.IP)
				_, err := d.ipam.Update(ctx, allocID(subnetID, ip), "", func(x *api.IPAlloc) error { x.MAC = mac; return nil })
				if err != nil {
					return "", err
				}
			}
			return a.IP, nil
		}
	}
	p := netip.MustParsePrefix(sub.Subnet)
	var lo, hi netip.Addr
	if sub.DHCPStart != "" {
		lo, hi = netip.MustParseAddr(sub.DHCPStart), netip.MustParseAddr(sub.DHCPEnd)
	}
	last := network.LastAddr(p)
	for ip := p.Addr().Next(); ip.IsValid() && p.Contains(ip) && ip != last; ip = ip.Next() {
		if ip.String() == sub.Gateway || (lo.IsValid() && ip.Compare(lo) >= 0 && ip.Compare(hi) <= 0) {
			continue
		}
		if _, err := d.ipam.Get(allocID(subnetID, ip)); err == nil {
			continue
		}
		_, err := d.ipam.Create(ctx, allocID(subnetID, ip), api.IPAlloc{IP: ip.String(), Subnet: sub.Subnet, Owner: owner, MAC: mac})
		if errors.Is(err, store.ErrExists) {
			continue // someone else took it just now
		}
		if err != nil {
			return "", err
		}
		return ip.String(), nil
	}
	return "", errs.NoSpace("subnet %s has no free address", sub.Subnet)
}

// Release frees owner's addresses in every subnet.
func (d *Defs) Release(ctx context.Context, owner string) error {
	return d.release(ctx, func(o string) bool { return o == owner })
}

// ReleasePrefix frees the addresses of every owner starting with prefix
// (all NICs of a guest).
func (d *Defs) ReleasePrefix(ctx context.Context, prefix string) error {
	return d.release(ctx, func(o string) bool { return strings.HasPrefix(o, prefix) })
}

func (d *Defs) release(ctx context.Context, match func(string) bool) error {
	for _, o := range d.ipam.List() {
		if match(o.Value.Owner) {
			if err := d.ipam.Delete(ctx, strings.TrimPrefix(o.Key, d.ipam.Prefix()), ""); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}
