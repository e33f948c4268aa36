package qemu

import (
	"context"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/metrics"
	"github.com/corral-project/corral/internal/network/port"
)

// SampleGuests lists this node's running VMs for the metrics sampler
// (metrics.GuestSource). CPU and memory come from the QEMU process; disk
// counters and the balloon from QMP; traffic from the NICs' taps.
func (m *Manager) SampleGuests() []metrics.GuestRef {
	m.mu.Lock()
	running := make(map[int]*proc, len(m.running))
	for id, p := range m.running {
		running[id] = p
	}
	m.mu.Unlock()
	out := make([]metrics.GuestRef, 0, len(running))
	for vmid, p := range running {
		o, err := m.recs.Coll.Get(key(vmid))
		if err != nil {
			continue
		}
		c := o.Value.Config
		mon := p.mon
		ref := metrics.GuestRef{VMID: vmid, Type: api.GuestVM, Name: c.Name, CPUs: float64(max(c.Cores, 1) * max(c.Sockets, 1)),
			MaxMem: uint64(c.Memory) << 20, PID: p.pid, Cgroup: vmCgroup(vmid), Ifaces: taps(vmid, len(c.Nets)),
			Stats: func(ctx context.Context) (metrics.DriverStats, error) {
				return metrics.QMPStats(ctx, mon, c.Balloon > 0)
			}}
		out = append(out, ref)
	}
	return out
}

// taps are the host-side names of a VM's NICs (internal/network/port).
func taps(vmid, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, port.Name(port.Tap, vmid, i))
	}
	return out
}

func vmCgroup(vmid int) metrics.Cgroup {
	d := cgroupDirs(vmid)
	if len(d) == 1 {
		return metrics.Cgroup{V2: d[0]}
	}
	return metrics.Cgroup{Memory: d[1]}
}
