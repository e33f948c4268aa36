package qemu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroupRoot is where cgroups are mounted; a variable so tests of other
// hosts' layouts could point elsewhere.
var cgroupRoot = "/sys/fs/cgroup"

// cgroupLimits are what a VM's cgroup enforces.
type cgroupLimits struct {
	Weight   int    // relative CPU share, 1..10000 (v2 cpu.weight)
	QuotaCPU int    // CPUs' worth of time the VM may use
	MemMax   uint64 // bytes: guest RAM plus QEMU's own overhead
}

// limitsFor sizes a VM's cgroup: its vCPUs plus one CPU for QEMU's own
// threads, and its RAM plus generous room for QEMU (TCG's translation
// cache, device emulation): the limit must catch a runaway, never a VM.
func limitsFor(vcpus, memMiB int) cgroupLimits {
	mem := uint64(memMiB)<<20 + uint64(memMiB)<<18 + 768<<20
	return cgroupLimits{Weight: 100, QuotaCPU: vcpus + 1, MemMax: mem}
}

// cgroupV2 reports whether the unified hierarchy with cpu and memory
// controllers is mounted at the root (Debian 12's default).
func cgroupV2() bool {
	b, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil && strings.Contains(string(b), "cpu") && strings.Contains(string(b), "memory")
}

// cgroupDirs returns the cgroup directories of a VM (one on v2, one per
// controller on v1).
func cgroupDirs(vmid int) []string {
	name := "qemu-" + strconv.Itoa(vmid)
	if cgroupV2() {
		return []string{filepath.Join(cgroupRoot, "corral", name)}
	}
	return []string{filepath.Join(cgroupRoot, "cpu", "corral", name), filepath.Join(cgroupRoot, "memory", "corral", name)}
}

func write(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("cgroup: write %s: %w", path, err)
	}
	return nil
}

// placeInCgroup creates the VM's cgroup, sets its limits and moves the
// QEMU process (all its threads) into it.
func placeInCgroup(vmid, pid int, l cgroupLimits) error {
	pidStr := strconv.Itoa(pid)
	if cgroupV2() {
		parent := filepath.Join(cgroupRoot, "corral")
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		// Delegate the controllers to corral's subtree.
		write(filepath.Join(cgroupRoot, "cgroup.subtree_control"), "+cpu +memory")
		if err := write(filepath.Join(parent, "cgroup.subtree_control"), "+cpu +memory"); err != nil {
			return err
		}
		dir := cgroupDirs(vmid)[0]
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		for file, v := range map[string]string{
			"cpu.weight": strconv.Itoa(l.Weight),
			"cpu.max":    fmt.Sprintf("%d 100000", l.QuotaCPU*100000),
			"memory.max": strconv.FormatUint(l.MemMax, 10),
		} {
			if err := write(filepath.Join(dir, file), v); err != nil {
				return err
			}
		}
		return write(filepath.Join(dir, "cgroup.procs"), pidStr)
	}
	dirs := cgroupDirs(vmid)
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
	}
	settings := []struct{ dir, file, v string }{
		{dirs[0], "cpu.shares", strconv.Itoa(l.Weight * 1024 / 100)},
		{dirs[0], "cpu.cfs_period_us", "100000"},
		{dirs[0], "cpu.cfs_quota_us", strconv.Itoa(l.QuotaCPU * 100000)},
		{dirs[1], "memory.limit_in_bytes", strconv.FormatUint(l.MemMax, 10)},
		{dirs[0], "cgroup.procs", pidStr},
		{dirs[1], "cgroup.procs", pidStr},
	}
	for _, s := range settings {
		if err := write(filepath.Join(s.dir, s.file), s.v); err != nil {
			return err
		}
	}
	return nil
}

// removeCgroup deletes a stopped VM's cgroup directories. QEMU's last
// threads may still be leaving when its socket closes (rmdir fails with
// EBUSY), so it retries briefly; a cgroup that still can't go is reused
// at the next start.
func removeCgroup(vmid int) {
	for _, d := range cgroupDirs(vmid) {
		for try := 0; try < 20; try++ {
			err := os.Remove(d)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
