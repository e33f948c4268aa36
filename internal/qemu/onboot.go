package qemu

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// StartOnBoot starts this node's VMs marked onboot, in ID order, but only
// when the host has booted since the daemon last ran (boot_id changed): a
// daemon restart or upgrade must not start VMs an administrator stopped.
func (m *Manager) StartOnBoot(ctx context.Context, dataDir string) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return
	}
	bootID := strings.TrimSpace(string(b))
	marker := filepath.Join(dataDir, "last-boot-id")
	prev, _ := os.ReadFile(marker)
	os.WriteFile(marker, []byte(bootID+"\n"), 0o600)
	if strings.TrimSpace(string(prev)) == bootID {
		return
	}
	var ids []int
	for _, o := range m.recs.Coll.List() {
		c := o.Value.Config
		if c.Node == m.node && c.OnBoot && !c.Template && m.proc(c.VMID) == nil {
			ids = append(ids, c.VMID)
		}
	}
	sort.Ints(ids)
	for _, id := range ids {
		if _, err := m.Action(ctx, id, "start", "root@pam", defaultShutdown); err != nil {
			m.log.Warn("onboot start failed", "vmid", id, "err", err)
		}
	}
}
