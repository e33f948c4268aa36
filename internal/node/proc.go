package node

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The parsers take readers or strings rather than paths so tests can feed
// them fixtures from other kernels and architectures.

// meminfo holds the /proc/meminfo fields corral reports, in bytes.
type meminfo struct {
	MemTotal     uint64
	MemAvailable uint64
	SwapTotal    uint64
	SwapFree     uint64
}

// parseMeminfo reads /proc/meminfo. Values there are in KiB despite the
// "kB" unit. MemAvailable (Linux >= 3.14) is the kernel's own estimate of
// memory usable without swapping; reporting total-free instead would count
// page cache as used and make every busy host look full. Without it, the
// estimate falls back to MemFree+Buffers+Cached.
func parseMeminfo(r io.Reader) (meminfo, error) {
	vals := map[string]uint64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return meminfo{}, fmt.Errorf("meminfo field %s: %w", key, err)
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		vals[key] = n
	}
	if err := sc.Err(); err != nil {
		return meminfo{}, fmt.Errorf("reading meminfo: %w", err)
	}
	total, ok := vals["MemTotal"]
	if !ok || total == 0 {
		return meminfo{}, errors.New("meminfo has no MemTotal")
	}
	m := meminfo{MemTotal: total, SwapTotal: vals["SwapTotal"], SwapFree: vals["SwapFree"]}
	if avail, ok := vals["MemAvailable"]; ok {
		m.MemAvailable = avail
	} else {
		m.MemAvailable = vals["MemFree"] + vals["Buffers"] + vals["Cached"]
	}
	m.MemAvailable = min(m.MemAvailable, m.MemTotal)
	m.SwapFree = min(m.SwapFree, m.SwapTotal)
	return m, nil
}

// cpuModelKeys are the /proc/cpuinfo keys naming the CPU, by architecture,
// in order of preference: x86 "model name", ARM "Hardware"/"Processor",
// POWER "cpu", MIPS "cpu model", RISC-V "uarch". Keys are matched exactly so
// x86's "cpu MHz" or "cpu family" never count as "cpu".
var cpuModelKeys = []string{"model name", "cpu model", "Hardware", "Processor", "cpu", "uarch"}

// parseCPUInfo returns the CPU model and the number of logical CPUs
// ("processor" entries) in /proc/cpuinfo. The count is of CPUs online on the
// host, not the ones this process may use (see runtime.NumCPU for that),
// because the status describes the node.
func parseCPUInfo(r io.Reader) (model string, cpus int, err error) {
	found := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if key == "processor" {
			// On old ARM kernels "Processor" names the model and
			// "processor" numbers the CPUs; both are matched exactly.
			if _, err := strconv.Atoi(val); err == nil {
				cpus++
			}
			continue
		}
		if _, seen := found[key]; !seen && val != "" {
			found[key] = val
		}
	}
	if err := sc.Err(); err != nil {
		return "", 0, fmt.Errorf("reading cpuinfo: %w", err)
	}
	for _, k := range cpuModelKeys {
		if v, ok := found[k]; ok {
			model = v
			break
		}
	}
	return model, cpus, nil
}

// parseLoadavg parses the first three fields of /proc/loadavg.
func parseLoadavg(s string) ([3]float64, error) {
	var load [3]float64
	f := strings.Fields(s)
	if len(f) < 3 {
		return load, fmt.Errorf("loadavg %q: want at least 3 fields", s)
	}
	for i := range load {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return load, fmt.Errorf("loadavg field %d: %w", i+1, err)
		}
		load[i] = v
	}
	return load, nil
}

// parseUptime returns the whole seconds of the first field of /proc/uptime.
func parseUptime(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) < 1 {
		return 0, fmt.Errorf("uptime %q: empty", s)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("uptime %q: invalid seconds", s)
	}
	return int64(v), nil
}

// cgroup2Mounts returns the mount points of cgroup2 file systems listed in
// a mounts table (/proc/self/mounts format: device mountpoint fstype ...).
// On a unified host that is /sys/fs/cgroup; on a hybrid (cgroup v1 + v2)
// host typically /sys/fs/cgroup/unified.
func cgroup2Mounts(r io.Reader) ([]string, error) {
	var mps []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[2] == "cgroup2" {
			mps = append(mps, unescapeMount(f[1]))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	return mps, nil
}

// unescapeMount undoes the octal escapes (\040 for space, ...) the kernel
// uses in mount tables.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
