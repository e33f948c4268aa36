package lxc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
)

// lxcShare is where Debian's lxc package keeps its shared configs.
const lxcShare = "/usr/share/lxc/config"

// cgroupRoot is where the host mounts its cgroups.
var cgroupRoot = "/sys/fs/cgroup"

// cgroupV2 reports a pure unified hierarchy (cgroup.controllers at the
// root); a hybrid host like Debian with systemd.unified_cgroup_hierarchy=0
// has its controllers on v1.
func cgroupV2() bool {
	_, err := os.Stat(cgroupRoot + "/cgroup.controllers")
	return err == nil
}

// cgroupTag names this daemon's cgroup subtree: a hash of its lxcpath,
// so daemons with different data dirs (tests, several nodes on one host)
// never share the cgroup of a container with the same ID.
func cgroupTag(lxcPath string) string {
	h := sha256.Sum256([]byte(lxcPath))
	return "corral-" + hex.EncodeToString(h[:4])
}

// IDMap is the user-namespace mapping of unprivileged containers: IDs
// 0..Size-1 inside are Base..Base+Size-1 on the host.
type IDMap struct {
	Base int
	Size int
}

// DefaultIDMap is Proxmox's and LXC's customary range.
var DefaultIDMap = IDMap{Base: 100000, Size: 65536}

// Host maps a container ID to the host.
func (m IDMap) Host(id int) int { return m.Base + id }

// limitKeys returns the cgroup settings for a config: memory, swap and CPU
// (quota, weight), as LXC keys without the lxc.cgroup[2]. prefix.
func limitKeys(c api.CTConfig) [][2]string {
	mem := uint64(c.Memory) << 20
	memsw := mem + uint64(c.Swap)<<20
	var kv [][2]string
	if cgroupV2() {
		kv = append(kv, [2]string{"memory.max", strconv.FormatUint(mem, 10)}, [2]string{"memory.swap.max", strconv.FormatUint(uint64(c.Swap)<<20, 10)})
		quota := "max"
		if c.CPULimit > 0 {
			quota = strconv.Itoa(int(c.CPULimit * 100000))
		}
		kv = append(kv, [2]string{"cpu.max", quota + " 100000"}, [2]string{"cpu.weight", strconv.Itoa(max(1, c.CPUUnits))})
		return kv
	}
	kv = append(kv, [2]string{"memory.limit_in_bytes", strconv.FormatUint(mem, 10)})
	if _, err := os.Stat(cgroupRoot + "/memory/memory.memsw.limit_in_bytes"); err == nil {
		kv = append(kv, [2]string{"memory.memsw.limit_in_bytes", strconv.FormatUint(memsw, 10)})
	}
	quota := "-1"
	if c.CPULimit > 0 {
		quota = strconv.Itoa(int(c.CPULimit * 100000))
	}
	kv = append(kv, [2]string{"cpu.cfs_period_us", "100000"}, [2]string{"cpu.cfs_quota_us", quota},
		[2]string{"cpu.shares", strconv.Itoa(max(2, c.CPUUnits*1024/100))})
	return kv
}

// cgroupPrefix is the LXC config prefix for the host's cgroup layout.
func cgroupPrefix() string {
	if cgroupV2() {
		return "lxc.cgroup2."
	}
	return "lxc.cgroup."
}

// applyLimits changes a running container's memory and CPU limits. On v1
// the memory+swap limit must never be below the memory limit, so the
// order depends on whether memory grows or shrinks: both orders are tried.
func (m *Manager) applyLimits(ctx context.Context, vmid int, c api.CTConfig) error {
	kv := limitKeys(c)
	var failed [][2]string
	for _, p := range kv {
		if _, err := m.tool(ctx, 10*time.Second, "lxc-cgroup", vmid, "--", p[0], p[1]); err != nil {
			failed = append(failed, p)
		}
	}
	for _, p := range failed {
		if _, err := m.tool(ctx, 10*time.Second, "lxc-cgroup", vmid, "--", p[0], p[1]); err != nil {
			return errs.Conflict("could not apply %s=%s to running container %d: %v", p[0], p[1], vmid, err)
		}
	}
	return nil
}

// netConfig renders a container's network interfaces as LXC keys. NICs
// are veth pairs whose host end LXC attaches to the bridge; this is the
// one place to change when the network layer takes over NIC setup.
func netConfig(nets []api.CTNet) []string {
	if len(nets) == 0 {
		return []string{"lxc.net.0.type = empty"}
	}
	var out []string
	for i, n := range nets {
		p := fmt.Sprintf("lxc.net.%d.", i)
		out = append(out, p+"type = veth", p+"name = "+n.Name, p+"hwaddr = "+strings.ToLower(n.HWAddr), p+"flags = up")
		if n.Bridge != "" {
			out = append(out, p+"link = "+n.Bridge)
		}
		if n.MTU > 0 {
			out = append(out, p+"mtu = "+strconv.Itoa(n.MTU))
		}
	}
	return out
}

// cpuset lists the host CPUs a container with cores CPUs may use.
func cpuset(cores int) string {
	n := runtime.NumCPU()
	if cores >= n {
		return ""
	}
	if cores == 1 {
		return "0"
	}
	return "0-" + strconv.Itoa(cores-1)
}

// cleanConfValue refuses values that would break out of one LXC config
// line (paths come from corral and the storage layer, but are checked
// anyway).
func cleanConfValue(v string) error {
	if strings.ContainsAny(v, "\n\r\x00") {
		return fmt.Errorf("%q can't be written into an LXC config", v)
	}
	return nil
}

// buildConfig renders a container's LXC config: everything comes from the
// validated config and paths corral resolved itself.
func (m *Manager) buildConfig(c api.CTConfig, rootfs string, mpSources []string) (string, error) {
	for _, p := range append([]string{rootfs}, mpSources...) {
		if err := cleanConfValue(p); err != nil || strings.ContainsAny(p, " \t") {
			return "", fmt.Errorf("path %q has characters LXC config lines can't carry", p)
		}
	}
	var b strings.Builder
	line := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	line("# generated by corral for container %d; changes are overwritten at start", c.VMID)
	line("lxc.include = %s/common.conf", lxcShare)
	if c.Unprivileged {
		line("lxc.include = %s/userns.conf", lxcShare)
		line("lxc.idmap = u 0 %d %d", m.idmap.Base, m.idmap.Size)
		line("lxc.idmap = g 0 %d %d", m.idmap.Base, m.idmap.Size)
	}
	if c.Features.Nesting {
		line("lxc.include = %s/nesting.conf", lxcShare)
	}
	line("lxc.arch = %s", map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[c.Arch])
	line("lxc.uts.name = %s", c.Hostname)
	line("lxc.rootfs.path = dir:%s", rootfs)
	line("lxc.autodev = 1")
	line("lxc.tty.max = 2")
	line("lxc.pty.max = 64")
	if !c.Console {
		line("lxc.console.path = none")
	}
	// Cgroups under this daemon's own subtree (see cgroupTag).
	line("lxc.cgroup.dir.monitor = %s/mon-%d", m.cgTag, c.VMID)
	line("lxc.cgroup.dir.container = %s/ct-%d", m.cgTag, c.VMID)
	line("lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed:force")
	pre := cgroupPrefix()
	for _, kv := range limitKeys(c) {
		line("%s%s = %s", pre, kv[0], kv[1])
	}
	if cs := cpuset(c.Cores); cs != "" {
		line("%scpuset.cpus = %s", pre, cs)
	}
	if c.OSType == "busybox" {
		// busybox init powers off on SIGUSR2 and reboots on SIGTERM.
		line("lxc.signal.halt = SIGUSR2")
		line("lxc.signal.reboot = SIGTERM")
	} else if c.OSType == "debian" || c.OSType == "ubuntu" {
		line("lxc.signal.halt = SIGRTMIN+3")
	}
	if c.Features.FUSE {
		line("lxc.mount.entry = /dev/fuse dev/fuse none bind,create=file,optional 0 0")
		line("%sdevices.allow = c 10:229 rwm", pre)
	}
	for i, mp := range c.Mountpoints {
		opts := "bind,create=dir"
		if mp.ReadOnly {
			opts += ",ro"
		}
		line("lxc.mount.entry = %s %s none %s 0 0", mpSources[i], strings.TrimPrefix(mp.MP, "/"), opts)
	}
	for _, l := range netConfig(c.Nets) {
		line("%s", l)
	}
	return b.String(), nil
}

// CgroupTag is cgroupTag for callers outside the package (tests clean up
// the cgroup directories of daemons they ran).
func CgroupTag(lxcPath string) string { return cgroupTag(lxcPath) }
