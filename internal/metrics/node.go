package metrics

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// nodeCounters are the node's raw readings at one moment.
type nodeCounters struct {
	cpuBusy, cpuTotal uint64 // jiffies, all CPUs
	cpus              int
	load              [3]float64
	memTotal, memUsed uint64
	swapTotal, swapUs uint64
	rootTotal, rootUs uint64
	ifaces            map[string][2]uint64 // rx, tx bytes
	psi               map[string]float64   // cpu, memory, io: "some" avg10 in percent; absent without PSI
}

func readNode() (nodeCounters, error) {
	var n nodeCounters
	if err := readProcStat(&n); err != nil {
		return n, err
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		for i := 0; i < 3 && i < len(f); i++ {
			n.load[i], _ = strconv.ParseFloat(f[i], 64)
		}
	}
	mem := map[string]uint64{}
	readMeminfo(mem)
	n.memTotal = mem["MemTotal"]
	if avail, ok := mem["MemAvailable"]; ok && avail <= n.memTotal {
		n.memUsed = n.memTotal - avail
	}
	n.swapTotal = mem["SwapTotal"]
	if mem["SwapFree"] <= n.swapTotal {
		n.swapUs = n.swapTotal - mem["SwapFree"]
	}
	var fs unix.Statfs_t
	if err := unix.Statfs("/", &fs); err == nil {
		n.rootTotal = fs.Blocks * uint64(fs.Bsize)
		n.rootUs = (fs.Blocks - fs.Bfree) * uint64(fs.Bsize)
	}
	n.ifaces = readNetDev()
	n.psi = map[string]float64{}
	for _, res := range []string{"cpu", "memory", "io"} {
		if v, ok := readPSI("/proc/pressure/" + res); ok {
			n.psi[res] = v
		}
	}
	return n, nil
}

func readMeminfo(mem map[string]uint64) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 2 {
			continue
		}
		v, err := strconv.ParseUint(fl[1], 10, 64)
		if err != nil {
			continue
		}
		if len(fl) == 3 && fl[2] == "kB" {
			v *= 1024
		}
		mem[strings.TrimSuffix(fl[0], ":")] = v
	}
}

func readProcStat(n *nodeCounters) error {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "cpu ") {
			fl := strings.Fields(line)[1:]
			for i, s := range fl {
				v, _ := strconv.ParseUint(s, 10, 64)
				if i >= 8 { // guest time is already counted in user
					break
				}
				n.cpuTotal += v
				if i != 3 && i != 4 { // idle, iowait
					n.cpuBusy += v
				}
			}
		} else if strings.HasPrefix(line, "cpu") {
			n.cpus++
		}
	}
	return sc.Err()
}

// readNetDev returns every interface's byte counters but loopback.
func readNetDev() map[string][2]uint64 {
	out := map[string][2]uint64{}
	f, err := os.Open("/proc/net/dev")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		fl := strings.Fields(rest)
		if name == "lo" || len(fl) < 9 {
			continue
		}
		rx, _ := strconv.ParseUint(fl[0], 10, 64)
		tx, _ := strconv.ParseUint(fl[8], 10, 64)
		out[name] = [2]uint64{rx, tx}
	}
	return out
}

// guestIface reports host-side interfaces of guests, which the node's
// own traffic totals leave out (their traffic is the guests').
func guestIface(name string) bool {
	for _, p := range []string{"tap", "veth", "fwbr", "fwln", "fwpr"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// readPSI returns the "some avg10" pressure of a resource.
func readPSI(path string) (float64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for _, kv := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(kv, "avg10="); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
