package metrics

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("corral_"+name, help, labels, nil)
}

var (
	nodeL    = []string{"node"}
	guestL   = []string{"id", "name", "type", "node"}
	storageL = []string{"node", "storage"}

	dNodeCPU      = desc("node_cpu_ratio", "Share of the node's CPUs busy over the last interval.", nodeL...)
	dNodeCPUs     = desc("node_cpus", "Logical CPUs.", nodeL...)
	dNodeLoad     = desc("node_load", "Load average.", "node", "window")
	dNodeMem      = desc("node_memory_bytes", "Memory: total, used (without reclaimable cache).", "node", "kind")
	dNodeSwap     = desc("node_swap_bytes", "Swap: total, used.", "node", "kind")
	dNodeRoot     = desc("node_rootfs_bytes", "Root file system: total, used.", "node", "kind")
	dNodeNetRx    = desc("node_network_receive_bytes_total", "Bytes received per interface.", "node", "interface")
	dNodeNetTx    = desc("node_network_transmit_bytes_total", "Bytes sent per interface.", "node", "interface")
	dNodePSI      = desc("node_pressure_some_avg10_ratio", "Pressure stall information: share of time some task waited (avg10).", "node", "resource")
	dGuestCPUSec  = desc("guest_cpu_seconds_total", "CPU time the guest used.", guestL...)
	dGuestCPU     = desc("guest_cpu_ratio", "Share of the guest's cores busy over the last interval.", guestL...)
	dGuestCPUs    = desc("guest_cpus", "Cores the guest may use.", guestL...)
	dGuestMem     = desc("guest_memory_bytes", "Memory the guest uses.", guestL...)
	dGuestMaxMem  = desc("guest_memory_max_bytes", "Memory the guest was given.", guestL...)
	dGuestBalloon = desc("guest_balloon_bytes", "Memory the balloon leaves a VM.", guestL...)
	dGuestRdB     = desc("guest_disk_read_bytes_total", "Bytes read from the guest's disks.", guestL...)
	dGuestWrB     = desc("guest_disk_written_bytes_total", "Bytes written to the guest's disks.", guestL...)
	dGuestRdOps   = desc("guest_disk_reads_total", "Read operations on the guest's disks.", guestL...)
	dGuestWrOps   = desc("guest_disk_writes_total", "Write operations on the guest's disks.", guestL...)
	dGuestNetIn   = desc("guest_network_receive_bytes_total", "Bytes the guest received.", guestL...)
	dGuestNetOut  = desc("guest_network_transmit_bytes_total", "Bytes the guest sent.", guestL...)
	dStorage      = desc("storage_bytes", "Storage pool size: total, used.", "node", "storage", "kind")
	dSampleDur    = desc("metrics_sample_duration_seconds", "How long the last sampling round took.", nodeL...)
	dExportDrop   = desc("metrics_export_dropped_total", "Rounds not sent to an external metric server because it was down or slow.", "node", "server")
	dExportSent   = desc("metrics_export_points_total", "Points sent to an external metric server.", "node", "server")
)

// Filter says whether the caller may see an entity: kind is KindNode,
// KindGuest or KindStorage, id the node name, guest ID or pool ID.
type Filter func(kind, id string) bool

// Collector exposes the latest sample to Prometheus, limited by allow.
func (s *Service) Collector(allow Filter) prometheus.Collector { return &collector{s: s, allow: allow} }

type collector struct {
	s     *Service
	allow Filter
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dNodeCPU, dNodeCPUs, dNodeLoad, dNodeMem, dNodeSwap, dNodeRoot, dNodeNetRx, dNodeNetTx, dNodePSI,
		dGuestCPUSec, dGuestCPU, dGuestCPUs, dGuestMem, dGuestMaxMem, dGuestBalloon, dGuestRdB, dGuestWrB, dGuestRdOps, dGuestWrOps,
		dGuestNetIn, dGuestNetOut, dStorage, dSampleDur, dExportDrop, dExportSent} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		if !math.IsNaN(v) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
		}
	}
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	node := s.cfg.Node
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.node; n != nil && c.allow(KindNode, node) {
		gauge(dNodeCPU, n.CPU, node)
		gauge(dNodeCPUs, float64(n.CPUs), node)
		for i, w := range []string{"1m", "5m", "15m"} {
			gauge(dNodeLoad, n.Load[i], node, w)
		}
		gauge(dNodeMem, float64(n.MemTotal), node, "total")
		gauge(dNodeMem, float64(n.MemUsed), node, "used")
		gauge(dNodeSwap, float64(n.SwapTotal), node, "total")
		gauge(dNodeSwap, float64(n.SwapUsed), node, "used")
		gauge(dNodeRoot, float64(n.RootTotal), node, "total")
		gauge(dNodeRoot, float64(n.RootUsed), node, "used")
		for name, v := range n.c.ifaces {
			counter(dNodeNetRx, float64(v[0]), node, name)
			counter(dNodeNetTx, float64(v[1]), node, name)
		}
		for res, v := range n.PSI {
			gauge(dNodePSI, v/100, node, res)
		}
		gauge(dSampleDur, s.sampleNs.load().Seconds(), node)
		for id, st := range s.ExportStats() { // sinks have their own lock
			counter(dExportDrop, float64(st.Dropped), node, id)
			counter(dExportSent, float64(st.Sent), node, id)
		}
	}
	for _, g := range s.guests {
		id := strconv.Itoa(g.VMID)
		if !c.allow(KindGuest, id) {
			continue
		}
		l := []string{id, g.Name, g.Type, node}
		counter(dGuestCPUSec, g.c.cpuSec, l...)
		gauge(dGuestCPU, g.CPU, l...)
		gauge(dGuestCPUs, g.CPUs, l...)
		gauge(dGuestMem, float64(g.Mem), l...)
		gauge(dGuestMaxMem, float64(g.MaxMem), l...)
		if g.Balloon > 0 {
			gauge(dGuestBalloon, float64(g.Balloon), l...)
		}
		if g.c.haveDisk {
			counter(dGuestRdB, float64(g.c.rdBytes), l...)
			counter(dGuestWrB, float64(g.c.wrBytes), l...)
			if !g.c.noOps {
				counter(dGuestRdOps, float64(g.c.rdOps), l...)
				counter(dGuestWrOps, float64(g.c.wrOps), l...)
			}
		}
		if !math.IsNaN(g.NetIn) || g.c.netIn > 0 || g.c.netOut > 0 {
			counter(dGuestNetIn, float64(g.c.netIn), l...)
			counter(dGuestNetOut, float64(g.c.netOut), l...)
		}
	}
	for id, p := range s.storage {
		if c.allow(KindStorage, id) {
			gauge(dStorage, float64(p.Total), node, id, "total")
			gauge(dStorage, float64(p.Used), node, id, "used")
		}
	}
}
