package lxc

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage/dir"
)

// cgroupFile returns the path of a file of a container's cgroup for a
// controller (v1) or in the unified tree (v2).
func (m *Manager) cgroupFile(vmid int, controller, file string) string {
	rel := filepath.Join(m.cgTag, fmt.Sprintf("ct-%d", vmid), file)
	if cgroupV2() {
		return filepath.Join(cgroupRoot, rel)
	}
	return filepath.Join(cgroupRoot, controller, rel)
}

func readUint(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// cpuSeconds is the CPU time the container's processes used.
func (m *Manager) cpuSeconds(vmid int) float64 {
	if cgroupV2() {
		b, _ := os.ReadFile(m.cgroupFile(vmid, "", "cpu.stat"))
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
				n, _ := strconv.ParseFloat(v, 64)
				return n / 1e6
			}
		}
		return 0
	}
	return float64(readUint(m.cgroupFile(vmid, "cpuacct", "cpuacct.usage"))) / 1e9
}

// netDev sums the traffic of the container's interfaces (not lo), read in
// its network namespace through its init's /proc.
func netDev(pid int) (in, out uint64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		rx, _ := strconv.ParseUint(f[0], 10, 64)
		tx, _ := strconv.ParseUint(f[8], 10, 64)
		in, out = in+rx, out+tx
	}
	return in, out
}

// Status reports a container's runtime state from LXC, its cgroup and
// its network namespace.
func (m *Manager) Status(ctx context.Context, vmid int) (api.CTStatus, error) {
	o, err := m.recs.Get(vmid)
	if err != nil {
		return api.CTStatus{}, err
	}
	c := o.Value.Config
	st := api.CTStatus{VMID: vmid, Node: c.Node, MaxMem: uint64(c.Memory) << 20, MaxSwap: uint64(c.Swap) << 20}
	if c.Node != m.node {
		return st, errs.Conflict("container %d belongs to node %s; ask that node", vmid, c.Node)
	}
	if sz, err := parseSizeOr0(c.RootFS.Size); err == nil {
		st.MaxDisk = sz
	}
	if rootfs, err := m.volumePath(ctx, c.RootFS.Volume, api.ContentRootdir); err == nil {
		st.Disk = dir.DirUsage(rootfs)
	}
	st.Status = m.state(vmid)
	if st.Status == "stopped" {
		return st, nil
	}
	st.PID = m.initPID(vmid)
	if st.PID > 0 {
		if fi, err := os.Stat(fmt.Sprintf("/proc/%d", st.PID)); err == nil {
			st.Started = fi.ModTime().UTC()
			st.Uptime = int64(time.Since(fi.ModTime()).Seconds())
		}
		st.NetIn, st.NetOut = netDev(st.PID)
	}
	if cgroupV2() {
		st.Mem = readUint(m.cgroupFile(vmid, "", "memory.current"))
		st.Swap = readUint(m.cgroupFile(vmid, "", "memory.swap.current"))
	} else {
		st.Mem = readUint(m.cgroupFile(vmid, "memory", "memory.usage_in_bytes"))
		if sw := readUint(m.cgroupFile(vmid, "memory", "memory.memsw.usage_in_bytes")); sw > st.Mem {
			st.Swap = sw - st.Mem
		}
	}
	cpu := m.cpuSeconds(vmid)
	now := float64(time.Now().UnixNano()) / 1e9
	m.mu.Lock()
	prev := m.cpuPrev[vmid]
	m.cpuPrev[vmid] = [2]float64{cpu, now}
	m.mu.Unlock()
	if prev[1] > 0 && now > prev[1] {
		st.CPU = (cpu - prev[0]) / (now - prev[1]) / float64(max(1, c.Cores))
	}
	return st, nil
}
