package lxc

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/corral-project/corral/api"
)

// startupOrder reads order=N from a startup spec; unordered containers
// come after the ordered ones.
func startupOrder(spec string) int {
	for f := range strings.SplitSeq(spec, ",") {
		if v, ok := strings.CutPrefix(f, "order="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return 1 << 30
}

// StartOnBoot starts this node's containers marked onboot, by startup
// order and then ID, but only when the host has booted since the daemon
// last ran (boot_id changed): a daemon restart must not start containers
// an administrator stopped. Its marker is its own, apart from the VMs'.
func (m *Manager) StartOnBoot(ctx context.Context, dataDir string) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return
	}
	bootID := strings.TrimSpace(string(b))
	marker := filepath.Join(dataDir, "last-boot-id-containers")
	prev, _ := os.ReadFile(marker)
	os.WriteFile(marker, []byte(bootID+"\n"), 0o600)
	if strings.TrimSpace(string(prev)) == bootID {
		return
	}
	var cts []api.CTConfig
	for _, o := range m.recs.Coll.List() {
		c := o.Value.Config
		if c.Node == m.node && c.OnBoot && !c.Template && o.Value.Lock == "" && m.state(c.VMID) == "stopped" {
			cts = append(cts, c)
		}
	}
	sort.Slice(cts, func(i, j int) bool {
		oi, oj := startupOrder(cts[i].Startup), startupOrder(cts[j].Startup)
		if oi != oj {
			return oi < oj
		}
		return cts[i].VMID < cts[j].VMID
	})
	for _, c := range cts {
		if _, err := m.Action(ctx, c.VMID, "start", "root@pam", api.CTShutdown{}); err != nil {
			m.log.Warn("onboot start failed", "vmid", c.VMID, "err", err)
		}
	}
}
