package lxc

import (
	"context"
	"fmt"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/task"
)

// Everything the container driver does with the network layer is here:
// corral makes each NIC's veth pair (bridge, MTU, VLAN tag, rate limit,
// firewall and anti-spoofing) before lxc-start, and removes it when the
// container stops.

// plugNets makes the veth pairs of c's NICs and returns their guest ends;
// on failure none is left. Without a network layer it returns none and
// LXC makes plain veths itself.
func (m *Manager) plugNets(ctx context.Context, c api.CTConfig, l *task.Log) ([]string, error) {
	if m.net == nil || len(c.Nets) == 0 {
		return nil, nil
	}
	ends, err := m.net.PlugCTAll(ctx, c.VMID, c.Nets)
	if err != nil {
		return nil, err
	}
	for _, n := range c.Nets {
		l.Printf("%s: veth on %s", n.Name, n.Bridge)
	}
	return ends, nil
}

// replugNets re-registers a running container's ports after a daemon
// restart; the port layer finds the existing host ends.
func (m *Manager) replugNets(ctx context.Context, c api.CTConfig) {
	if m.net == nil {
		return
	}
	for i, n := range c.Nets {
		if _, err := m.net.PlugCT(ctx, c.VMID, i, n); err != nil {
			m.log.Warn("re-plugging a running container's NIC failed", "vmid", c.VMID, "nic", i, "err", err)
		}
	}
}

// unplugNets removes a container's ports (stopped, crashed, failed start).
func (m *Manager) unplugNets(vmid int) {
	if m.net == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.net.UnplugGuest(ctx, vmid); err != nil {
		m.log.Warn("removing a container's ports failed", "vmid", vmid, "err", err)
	}
}

// netsLive says whether a running container takes nets without a
// restart: the same NICs, named, addressed and sized as before, with only
// their bridge, VLAN tag, rate limit or firewall flag changed — what the
// host end of a veth carries.
func netsLive(old, nets []api.CTNet) bool {
	if len(old) != len(nets) {
		return false
	}
	for i := range old {
		a, b := old[i], nets[i]
		a.Bridge, a.Tag, a.Rate, a.Firewall = b.Bridge, b.Tag, b.Rate, b.Firewall
		if a != b {
			return false
		}
	}
	return true
}

// applyNetsLive re-plugs a running container's ports with their new
// settings; the port layer moves and reshapes the host ends in place.
func (m *Manager) applyNetsLive(ctx context.Context, vmid int, nets []api.CTNet) error {
	for i, n := range nets {
		if _, err := m.net.PlugCT(ctx, vmid, i, n); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nil
}
