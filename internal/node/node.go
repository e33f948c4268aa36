// Package node describes the local host as a corral node: what it is
// (kernel, CPU, memory, disks, load) and what it can run (KVM, QEMU, LXC).
//
// Everything is read from the host on each call except the KVM probe, which
// boots a tiny test guest once per process because "/dev/kvm exists" does
// not mean guests will run (see KVM).
package node

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
)

// Status reports the local host's status as node nodeName. It fails only if
// the basic host facts (/proc, uname, statfs /) cannot be read or ctx ends;
// missing virtualization features are reported in the capabilities, with
// a Detail saying what is missing.
//
// The first call per process may take up to KVMProbeTimeout plus a little
// while the KVM probe runs; later calls use its cached result.
func Status(ctx context.Context, nodeName string) (api.NodeStatus, error) {
	st := api.NodeStatus{Node: nodeName, Time: time.Now().Round(0)}

	// Capabilities run helper programs and the KVM probe; start them first
	// so they overlap with reading /proc.
	var (
		wg     sync.WaitGroup
		kvmErr error
	)
	wg.Go(func() { st.QEMU = qemuCapability(ctx) })
	wg.Go(func() { st.LXC = lxcCapability(ctx) })
	wg.Go(func() { st.KVM, kvmErr = KVM(ctx) })

	err := hostFacts(&st)
	wg.Wait()
	if err != nil {
		return api.NodeStatus{}, fmt.Errorf("node %s status: %w", nodeName, err)
	}
	if kvmErr != nil {
		return api.NodeStatus{}, fmt.Errorf("node %s status: %w", nodeName, kvmErr)
	}
	if err := ctx.Err(); err != nil {
		// Capabilities may hold "context canceled" details; don't report them.
		return api.NodeStatus{}, fmt.Errorf("node %s status: %w", nodeName, context.Cause(ctx))
	}
	return st, nil
}

// hostFacts fills the fields read from the kernel.
func hostFacts(st *api.NodeStatus) error {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	st.Kernel = unix.ByteSliceToString(uts.Release[:])

	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return fmt.Errorf("cpuinfo: %w", err)
	}
	st.CPUModel, st.CPUs, err = parseCPUInfo(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("/proc/cpuinfo: %w", err)
	}
	if st.CPUs == 0 {
		st.CPUs = runtime.NumCPU() // cpuinfo without "processor" lines
	}

	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return fmt.Errorf("loadavg: %w", err)
	}
	if st.Load, err = parseLoadavg(string(b)); err != nil {
		return fmt.Errorf("/proc/loadavg: %w", err)
	}

	b, err = os.ReadFile("/proc/uptime")
	if err != nil {
		return fmt.Errorf("uptime: %w", err)
	}
	if st.Uptime, err = parseUptime(string(b)); err != nil {
		return fmt.Errorf("/proc/uptime: %w", err)
	}

	f, err = os.Open("/proc/meminfo")
	if err != nil {
		return fmt.Errorf("meminfo: %w", err)
	}
	mi, err := parseMeminfo(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("/proc/meminfo: %w", err)
	}
	// Used is what is not available, so Free means "can still be given to
	// guests", not the kernel's much smaller MemFree.
	st.Memory = api.Usage{Total: mi.MemTotal, Used: mi.MemTotal - mi.MemAvailable, Free: mi.MemAvailable}
	st.Swap = api.Usage{Total: mi.SwapTotal, Used: mi.SwapTotal - mi.SwapFree, Free: mi.SwapFree}

	if st.RootFS, err = fsUsage("/"); err != nil {
		return err
	}
	return nil
}

// fsUsage reports a file system's size the way df does: Free is what
// unprivileged writers can still use (f_bavail), Used counts all allocated
// blocks (total - f_bfree), so Used+Free is less than Total by the blocks
// reserved for root.
func fsUsage(path string) (api.Usage, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return api.Usage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(s.Bsize)
	return api.Usage{
		Total: s.Blocks * bs,
		Used:  (s.Blocks - s.Bfree) * bs,
		Free:  s.Bavail * bs,
	}, nil
}
