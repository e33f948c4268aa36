package qemu

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
)

// Memory grows in steps of 128 MiB: the size of a Linux memory block on
// x86-64, the unit a guest can bring online.
const memStep = 128

// memSlots is how many DIMMs a VM with memory hotplug can take.
const memSlots = 16

// vcpus is the number of vCPUs a VM starts with.
func vcpus(c api.VMConfig) int {
	if c.VCPUs > 0 {
		return c.VCPUs
	}
	return c.Cores * c.Sockets
}

// maxMemory is what a VM with memory hotplug may grow to.
func maxMemory(c api.VMConfig) int {
	if c.MaxMemory > 0 {
		return c.MaxMemory
	}
	return 4 * c.Memory
}

// memoryArg is QEMU's -m: fixed, or with DIMM slots up to maxmemory.
func memoryArg(c api.VMConfig) string {
	if !slices.Contains(c.Hotplug, "memory") {
		return strconv.Itoa(c.Memory)
	}
	return fmt.Sprintf("size=%d,slots=%d,maxmem=%dM", c.Memory, memSlots, maxMemory(c))
}

// applyLive changes a running VM as far as it can without a restart and
// returns the config it runs with afterwards; whatever still differs from
// next becomes pending. vCPUs are added (and those added live removed)
// with device_add/device_del when hotplug has "cpu"; memory grows by a DIMM
// when hotplug has "memory"; NICs change on their taps or are hot-plugged
// (nets.go). Shrinking memory always waits for a restart:
// a guest can't be relied on to give memory back.
func (m *Manager) applyLive(ctx context.Context, vmid int, cur, next api.VMConfig) (api.VMConfig, error) {
	p := m.proc(vmid)
	if p == nil {
		return cur, nil
	}
	live := cur
	if slices.Contains(cur.Hotplug, "cpu") && next.Cores == cur.Cores && next.Sockets == cur.Sockets && vcpus(next) != vcpus(cur) {
		if err := m.setVCPUs(ctx, p, vcpus(cur), vcpus(next)); err != nil {
			return cur, err
		}
		live.VCPUs = next.VCPUs
	}
	if !reflect.DeepEqual(next.Nets, cur.Nets) && netsLive(cur.Nets, next.Nets) {
		// Bridge, tag, rate and firewall change on the taps; NICs added
		// at the end are hot-plugged.
		c := cur
		c.Nets = next.Nets
		if err := m.applyNetsLive(ctx, cur.Nets, c); err != nil {
			return cur, err
		}
		live.Nets = next.Nets
	}
	if slices.Contains(cur.Hotplug, "memory") && next.Memory > cur.Memory && next.MaxMemory == cur.MaxMemory {
		if next.Memory > maxMemory(cur) {
			return cur, errs.Invalid("memory", "the running VM can grow to %d MiB (maxmemory); stop it to go beyond", maxMemory(cur))
		}
		if err := m.addDIMM(ctx, p, next.Memory-cur.Memory); err != nil {
			return cur, err
		}
		live.Memory = next.Memory
	}
	return live, nil
}

// hotCPU is one entry of query-hotpluggable-cpus.
type hotCPU struct {
	Type  string         `json:"type"`
	Props map[string]any `json:"props"`
	QOM   string         `json:"qom-path"`
}

// setVCPUs plugs vCPUs in (into the lowest free slots) or unplugs those
// plugged in live (from the highest), from have to want.
func (m *Manager) setVCPUs(ctx context.Context, p *proc, have, want int) error {
	var cpus []hotCPU
	if err := p.mon.Execute(ctx, "query-hotpluggable-cpus", nil, &cpus); err != nil {
		return fmt.Errorf("QMP query-hotpluggable-cpus: %w", err)
	}
	// QEMU lists the slots from the highest down.
	slices.Reverse(cpus)
	if want > have {
		for i := 0; i < len(cpus) && have < want; i++ {
			c := cpus[i]
			if c.QOM != "" {
				continue
			}
			dev := map[string]any{"driver": c.Type, "id": "cpu" + strconv.Itoa(i)}
			for k, v := range c.Props {
				dev[k] = v
			}
			if err := p.mon.Execute(ctx, "device_add", dev, nil); err != nil {
				return errs.Backend(fmt.Errorf("adding vCPU %d: %w", i, err))
			}
			have++
		}
		return nil
	}
	for i := len(cpus) - 1; i >= 0 && have > want; i-- {
		id := "cpu" + strconv.Itoa(i)
		if cpus[i].QOM != "/machine/peripheral/"+id {
			continue
		}
		if err := p.mon.Execute(ctx, "device_del", map[string]any{"id": id}, nil); err != nil {
			return errs.Backend(fmt.Errorf("removing vCPU %d: %w", i, err))
		}
		have--
	}
	if have > want {
		return errs.Conflict("only vCPUs added while the VM runs can be removed live (%d left); set vcpus and restart", have)
	}
	return nil
}

// addDIMM plugs size MiB of RAM in as one more DIMM.
func (m *Manager) addDIMM(ctx context.Context, p *proc, size int) error {
	var devs []struct {
		Type string `json:"type"`
	}
	if err := p.mon.Execute(ctx, "query-memory-devices", nil, &devs); err != nil {
		return fmt.Errorf("QMP query-memory-devices: %w", err)
	}
	if len(devs) >= memSlots {
		return errs.Conflict("all %d memory slots are in use; restart the VM to consolidate them", memSlots)
	}
	id := "dimm" + strconv.Itoa(len(devs))
	if err := p.mon.Execute(ctx, "object-add", map[string]any{"qom-type": "memory-backend-ram", "id": "mem-" + id, "size": uint64(size) << 20}, nil); err != nil {
		return errs.Backend(fmt.Errorf("adding %d MiB of memory: %w", size, err))
	}
	if err := p.mon.Execute(ctx, "device_add", map[string]any{"driver": "pc-dimm", "id": id, "memdev": "mem-" + id}, nil); err != nil {
		p.mon.Execute(ctx, "object-del", map[string]any{"id": "mem-" + id}, nil)
		return errs.Backend(fmt.Errorf("adding %d MiB of memory: %w", size, err))
	}
	return nil
}
