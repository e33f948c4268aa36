package metrics

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// GuestRef describes one running guest to the sampler. Drivers provide
// them (internal/qemu for VMs; a container driver gives CgroupOfPID of its
// init process and its veth names), the sampler reads the counters itself.
type GuestRef struct {
	VMID   int
	Type   string // api.GuestVM or api.GuestContainer
	Name   string
	CPUs   float64 // the cores it may use: CPU share is relative to these
	MaxMem uint64
	// PID is the guest's main process (QEMU). When set, CPU time and
	// memory come from /proc/<pid> (the VM's resident memory, without the
	// page cache its disk images leave in the cgroup); otherwise from Cgroup.
	PID    int
	Cgroup Cgroup
	// Ifaces are the guest's host-side interfaces (tap, veth): what the
	// host sends is what the guest receives.
	Ifaces []string
	// Stats, when set, adds what only the driver knows (QMP block
	// statistics and the balloon for VMs).
	Stats func(ctx context.Context) (DriverStats, error)
}

// Cgroup locates a guest's cgroup: the directory on the unified hierarchy
// (v2), or one directory per controller on v1.
type Cgroup struct {
	V2      string
	CPUAcct string
	Memory  string
	BlkIO   string
}

// DriverStats are counters a driver reads from its guest.
type DriverStats struct {
	Balloon   uint64 // bytes the balloon leaves the guest (0: no balloon)
	HaveDisk  bool   // the disk counters below are valid
	ReadBytes uint64
	WriteByte uint64
	ReadOps   uint64
	WriteOps  uint64
}

// GuestSource lists the running guests of one driver on this node.
type GuestSource interface {
	SampleGuests() []GuestRef
}

// StorageUsage is one pool's size on this node.
type StorageUsage struct {
	Storage string
	Total   uint64
	Used    uint64
}

// counters are a guest's cumulative counters at one moment.
type counters struct {
	cpuSec                         float64
	rdBytes, wrBytes, rdOps, wrOps uint64
	haveDisk                       bool
	noOps                          bool // the disk byte counters have no operation counts
	netIn, netOut                  uint64
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}

// readKV reads "key value" lines (cpu.stat, memory.stat, io.stat fields).
func readKV(path string, fn func(k string, v uint64)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			fn(k, n)
		}
	}
	return sc.Err()
}

// procCPU is a process's user+system time in seconds (all its threads).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return float64(ut+st) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture corral runs on.
const clockTicks = 100

var pageSize = uint64(os.Getpagesize())

func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/statm: malformed", pid)
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	return n * pageSize, err
}

// cgroupCPU is the cgroup's CPU time in seconds.
func cgroupCPU(cg Cgroup) (float64, error) {
	if cg.V2 != "" {
		var usec uint64
		err := readKV(filepath.Join(cg.V2, "cpu.stat"), func(k string, v uint64) {
			if k == "usage_usec" {
				usec = v
			}
		})
		return float64(usec) / 1e6, err
	}
	if cg.CPUAcct != "" {
		ns, err := readUint(filepath.Join(cg.CPUAcct, "cpuacct.usage"))
		return float64(ns) / 1e9, err
	}
	return 0, fmt.Errorf("no cpu accounting cgroup")
}

// cgroupMem is the cgroup's memory use without reclaimable file cache.
func cgroupMem(cg Cgroup) (uint64, error) {
	dir, cur, inactive := cg.V2, "memory.current", "inactive_file"
	if dir == "" {
		dir, cur, inactive = cg.Memory, "memory.usage_in_bytes", "total_inactive_file"
	}
	if dir == "" {
		return 0, fmt.Errorf("no memory cgroup")
	}
	used, err := readUint(filepath.Join(dir, cur))
	if err != nil {
		return 0, err
	}
	var cache uint64
	readKV(filepath.Join(dir, "memory.stat"), func(k string, v uint64) {
		if k == inactive {
			cache = v
		}
	})
	if cache < used {
		used -= cache
	}
	return used, nil
}

// cgroupIO sums block I/O over the cgroup's devices.
func cgroupIO(cg Cgroup, c *counters) error {
	if cg.V2 != "" {
		f, err := os.Open(filepath.Join(cg.V2, "io.stat"))
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			for _, kv := range strings.Fields(sc.Text())[1:] {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.ParseUint(v, 10, 64)
				switch k {
				case "rbytes":
					c.rdBytes += n
				case "wbytes":
					c.wrBytes += n
				case "rios":
					c.rdOps += n
				case "wios":
					c.wrOps += n
				}
			}
		}
		c.haveDisk = true
		return sc.Err()
	}
	// On v1 the blkio controller's throttle counters stay at zero on
	// blk-mq devices, so read what the kernel counts per process instead:
	// /proc/<pid>/io of every process in the cgroup (each includes the
	// children it reaped). Operation counts have no such source.
	dir := cg.BlkIO
	if dir == "" {
		dir = cg.Memory
	}
	if dir == "" {
		dir = cg.CPUAcct
	}
	if dir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(string(b)) {
		readKV("/proc/"+f+"/io", func(k string, v uint64) {
			switch k {
			case "read_bytes:":
				c.rdBytes += v
			case "write_bytes:":
				c.wrBytes += v
			}
		})
	}
	c.haveDisk, c.noOps = true, true
	return nil
}

// ifaceBytes reads an interface's received and transmitted byte counters.
func ifaceBytes(name string) (rx, tx uint64, err error) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return 0, 0, fmt.Errorf("bad interface name %q", name)
	}
	dir := filepath.Join("/sys/class/net", name, "statistics")
	if rx, err = readUint(filepath.Join(dir, "rx_bytes")); err != nil {
		return 0, 0, err
	}
	tx, err = readUint(filepath.Join(dir, "tx_bytes"))
	return rx, tx, err
}

// QMP is the part of a QMP monitor (internal/qemu/qmp.Monitor) QMPStats uses.
type QMP interface {
	Execute(ctx context.Context, command string, args, result any) error
}

// QMPStats reads a VM's disk counters (query-blockstats, summed over its
// drives) and, if it has one, its balloon size (query-balloon).
func QMPStats(ctx context.Context, mon QMP, balloon bool) (DriverStats, error) {
	var d DriverStats
	var blocks []struct {
		Stats struct {
			RdBytes uint64 `json:"rd_bytes"`
			WrBytes uint64 `json:"wr_bytes"`
			RdOps   uint64 `json:"rd_operations"`
			WrOps   uint64 `json:"wr_operations"`
		} `json:"stats"`
	}
	if err := mon.Execute(ctx, "query-blockstats", nil, &blocks); err != nil {
		return d, fmt.Errorf("query-blockstats: %w", err)
	}
	d.HaveDisk = true
	for _, b := range blocks {
		d.ReadBytes += b.Stats.RdBytes
		d.WriteByte += b.Stats.WrBytes
		d.ReadOps += b.Stats.RdOps
		d.WriteOps += b.Stats.WrOps
	}
	if balloon {
		var bi struct {
			Actual uint64 `json:"actual"`
		}
		if err := mon.Execute(ctx, "query-balloon", nil, &bi); err == nil {
			d.Balloon = bi.Actual
		}
	}
	return d, nil
}

// cgroupRoot is where the hierarchies are mounted.
var cgroupRoot = "/sys/fs/cgroup"

// CgroupOfPID finds the cgroup a process lives in, on whichever layout the
// host has: the v1 controllers' directories when cpuacct is a v1 controller
// (hybrid hosts), else the unified (v2) directory. A container driver hands
// its container's init PID here and puts the result in GuestRef.Cgroup.
func CgroupOfPID(pid int) (Cgroup, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return Cgroup{}, err
	}
	defer f.Close()
	v1 := map[string]string{}
	var unified string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			v1[ctl] = parts[2]
		}
	}
	if err := sc.Err(); err != nil {
		return Cgroup{}, err
	}
	if p, ok := v1["cpuacct"]; ok {
		cg := Cgroup{CPUAcct: filepath.Join(cgroupRoot, "cpuacct", p)}
		if m, ok := v1["memory"]; ok {
			cg.Memory = filepath.Join(cgroupRoot, "memory", m)
		}
		if b, ok := v1["blkio"]; ok {
			cg.BlkIO = filepath.Join(cgroupRoot, "blkio", b)
		}
		return cg, nil
	}
	if unified != "" {
		root := cgroupRoot
		if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
			root = filepath.Join(cgroupRoot, "unified") // v2 beside v1, without the controllers
		}
		return Cgroup{V2: filepath.Join(root, unified)}, nil
	}
	return Cgroup{}, fmt.Errorf("process %d: no cgroup found", pid)
}
