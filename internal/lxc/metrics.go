package lxc

import (
	"os"
	"strconv"
	"sync"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/metrics"
	"github.com/corral-project/corral/internal/network/port"
)

// samplerPIDs caches running containers' init PIDs for the sampler, so a
// round over many containers doesn't run lxc-info for each.
var samplerPIDs sync.Map // *Manager -> *sync.Map (vmid -> pid)

// SampleGuests lists this node's running containers for the metrics
// sampler (metrics.GuestSource): their cgroup is found from the init
// process, their traffic from the host ends of their veths.
func (m *Manager) SampleGuests() []metrics.GuestRef {
	m.mu.Lock()
	running := make([]int, 0, len(m.watchers))
	for vmid := range m.watchers {
		running = append(running, vmid)
	}
	m.mu.Unlock()
	cacheAny, _ := samplerPIDs.LoadOrStore(m, &sync.Map{})
	cache := cacheAny.(*sync.Map)
	live := map[int]bool{}
	out := make([]metrics.GuestRef, 0, len(running))
	for _, vmid := range running {
		live[vmid] = true
		o, err := m.coll.Get(key(vmid))
		if err != nil {
			continue
		}
		pid := 0
		if v, ok := cache.Load(vmid); ok {
			pid = v.(int)
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
				pid = 0 // restarted: look it up again
			}
		}
		if pid == 0 {
			if pid = m.initPID(vmid); pid == 0 {
				continue
			}
			cache.Store(vmid, pid)
		}
		cg, err := metrics.CgroupOfPID(pid)
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
			MaxMem: uint64(c.Memory) << 20, Cgroup: cg, Ifaces: ifaces})
	}
	cache.Range(func(k, _ any) bool {
		if !live[k.(int)] {
			cache.Delete(k)
		}
		return true
	})
	return out
}
