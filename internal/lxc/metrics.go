package lxc

import (
	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/metrics"
	"github.com/corral-project/corral/internal/network/port"
)

// SampleGuests lists this node's running containers for the metrics
// sampler (metrics.GuestSource): their cgroup directories (so the sampler
// reads CPU, memory and I/O itself, with no exec per container) and the
// host ends of their veths.
func (m *Manager) SampleGuests() []metrics.GuestRef {
	m.mu.Lock()
	running := make([]int, 0, len(m.watched))
	for vmid := range m.watched {
		running = append(running, vmid)
	}
	m.mu.Unlock()
	out := make([]metrics.GuestRef, 0, len(running))
	for _, vmid := range running {
		o, err := m.recs.Coll.Get(key(vmid))
		if err != nil {
			continue
		}
		c := o.Value.Config
		cpus := float64(max(c.Cores, 1))
		if c.CPULimit > 0 {
			cpus = c.CPULimit
		}
		var ifaces []string
		for i := range c.Nets {
			ifaces = append(ifaces, port.Name(port.Veth, vmid, i))
		}
		out = append(out, metrics.GuestRef{VMID: vmid, Type: api.GuestContainer, Name: c.Hostname, CPUs: cpus,
			MaxMem: uint64(c.Memory) << 20, Cgroup: m.metricsCgroup(vmid), Ifaces: ifaces})
	}
	return out
}

// metricsCgroup is where a container's cgroup lives on this host's layout.
func (m *Manager) metricsCgroup(vmid int) metrics.Cgroup {
	if cgroupV2() {
		return metrics.Cgroup{V2: m.cgroupFile(vmid, "", "")}
	}
	return metrics.Cgroup{CPUAcct: m.cgroupFile(vmid, "cpuacct", ""), Memory: m.cgroupFile(vmid, "memory", ""), BlkIO: m.cgroupFile(vmid, "blkio", "")}
}
