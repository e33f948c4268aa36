package qemu

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/task"
)

// Everything the VM driver does about NICs is here: corral makes each
// NIC's tap (internal/network/port via NetPorts) before QEMU starts, QEMU
// opens it by name without scripts, and the taps go when the VM stops.

// plugNets creates the taps of c's NICs; on failure none is left.
func (m *Manager) plugNets(ctx context.Context, c api.VMConfig, l *task.Log) ([]string, error) {
	if len(c.Nets) == 0 || m.net == nil {
		return nil, nil
	}
	taps, err := m.net.PlugVMAll(ctx, c.VMID, c.Nets)
	if err != nil {
		return nil, err
	}
	for i, n := range c.Nets {
		l.Printf("net%d: tap %s on %s", i, taps[i], n.Bridge)
	}
	return taps, nil
}

// replugNets re-registers a running VM's taps after a daemon restart.
func (m *Manager) replugNets(ctx context.Context, c api.VMConfig) {
	if m.net == nil {
		return
	}
	for i, n := range c.Nets {
		if _, err := m.net.PlugVM(ctx, c.VMID, i, n); err != nil {
			m.log.Warn("re-plugging a running VM's NIC failed", "vmid", c.VMID, "nic", i, "err", err)
		}
	}
}

// unplugNets removes a VM's taps (stopped, crashed, or failed to start).
func (m *Manager) unplugNets(vmid int) {
	if m.net == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.net.UnplugGuest(ctx, vmid); err != nil {
		m.log.Warn("removing a VM's taps failed", "vmid", vmid, "err", err)
	}
}

func (m *Manager) execPrefix() []string {
	if m.net == nil {
		return nil
	}
	return m.net.ExecPrefix()
}

// netArgs is each NIC's -netdev and -device. The tap exists already, so
// QEMU runs no scripts.
func netArgs(c api.VMConfig, taps []string, bootindex func(string) string) []string {
	var a []string
	for i, n := range c.Nets {
		if i >= len(taps) {
			break
		}
		id := "net" + strconv.Itoa(i)
		model := map[string]string{"virtio": "virtio-net-pci", "e1000": "e1000"}[n.Model]
		if model == "" {
			model = "virtio-net-pci"
		}
		a = append(a, "-netdev", "tap,id="+id+",ifname="+taps[i]+",script=no,downscript=no",
			"-device", model+",mac="+n.MAC+",netdev="+id+",id="+id+bootindex(id))
	}
	return a
}

// keepMACs gives NICs without a MAC the MAC the NIC at the same position
// had, else a new one: a guest's addresses stay stable across edits.
func keepMACs(nets, old []api.VMNet) []api.VMNet {
	nets = append([]api.VMNet(nil), nets...)
	for i := range nets {
		switch {
		case nets[i].MAC != "":
		case i < len(old) && old[i].MAC != "":
			nets[i].MAC = old[i].MAC
		default:
			nets[i].MAC = newMAC()
		}
	}
	return nets
}

// netsLive says whether a running VM takes nets without a restart: its
// NICs unchanged in model and MAC (bridge, tag, rate and firewall change
// live), plus NICs appended at the end (hot-plugged) or removed from the
// end (hot-unplugged, the guest releasing them).
func netsLive(old, nets []api.VMNet) bool {
	for i := range min(len(old), len(nets)) {
		if nets[i].Model != old[i].Model || nets[i].MAC != old[i].MAC {
			return false
		}
	}
	return true
}

// applyNetsLive re-plugs a running VM's taps with their new settings,
// unplugs the NICs dropped from the end and hot-plugs the NICs added after
// old's.
func (m *Manager) applyNetsLive(ctx context.Context, old []api.VMNet, c api.VMConfig) error {
	if m.net == nil {
		return nil
	}
	for i := len(old) - 1; i >= len(c.Nets); i-- {
		if err := m.deviceDel(ctx, c.VMID, "net"+strconv.Itoa(i)); err != nil {
			return fmt.Errorf("net%d: %w", i, err)
		}
		if p := m.proc(c.VMID); p != nil {
			if err := p.mon.Execute(ctx, "netdev_del", map[string]any{"id": "net" + strconv.Itoa(i)}, nil); err != nil {
				m.log.Warn("netdev_del after unplug", "vmid", c.VMID, "nic", i, "err", err)
			}
		}
		if err := m.net.Unplug(ctx, c.VMID, i); err != nil {
			return fmt.Errorf("net%d: %w", i, err)
		}
	}
	for i, n := range c.Nets {
		tap, err := m.net.PlugVM(ctx, c.VMID, i, n)
		if err != nil {
			return fmt.Errorf("net%d: %w", i, err)
		}
		if i < len(old) {
			continue
		}
		if err := m.hotplugNIC(ctx, c, i, tap); err != nil {
			_ = m.net.Unplug(ctx, c.VMID, i)
			return fmt.Errorf("net%d: %w", i, err)
		}
	}
	return nil
}

// hotplugNIC adds NIC i of a running VM through QMP: the tap as a netdev,
// then the device (into a free PCIe root port on q35).
func (m *Manager) hotplugNIC(ctx context.Context, c api.VMConfig, i int, tap string) error {
	p := m.proc(c.VMID)
	if p == nil {
		return fmt.Errorf("VM %d is not running", c.VMID)
	}
	id := "net" + strconv.Itoa(i)
	if err := p.mon.Execute(ctx, "netdev_add", map[string]any{"type": "tap", "id": id, "ifname": tap, "script": "no", "downscript": "no"}, nil); err != nil {
		return fmt.Errorf("hotplug %s: %w", id, err)
	}
	model := map[string]string{"virtio": "virtio-net-pci", "e1000": "e1000"}[c.Nets[i].Model]
	if model == "" {
		model = "virtio-net-pci"
	}
	dev := map[string]any{"driver": model, "id": id, "netdev": id, "mac": c.Nets[i].MAC}
	var err error
	if c.Machine != "q35" {
		err = p.mon.Execute(ctx, "device_add", dev, nil)
	} else {
		err = fmt.Errorf("all %d hotplug ports are in use", hotplugPorts)
		for port := 0; port < hotplugPorts && err != nil; port++ {
			dev["bus"] = "hotplug" + strconv.Itoa(port)
			err = p.mon.Execute(ctx, "device_add", dev, nil)
		}
	}
	if err != nil {
		p.mon.Execute(ctx, "netdev_del", map[string]any{"id": id}, nil)
		return fmt.Errorf("hotplug %s: %w", id, err)
	}
	return nil
}

// releaseNets frees a removed VM's IPAM addresses.
func (m *Manager) releaseNets(vmid int) {
	if m.net == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.net.ReleaseGuest(ctx, vmid); err != nil {
		m.log.Warn("releasing a VM's addresses failed", "vmid", vmid, "err", err)
	}
}
