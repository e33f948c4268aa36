package qemu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/task"
)

// Debian's ovmf package: firmware code (shared, read-only) and the
// pristine variable store each VM gets a copy of. The 4M pair matches.
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// ovmf returns the firmware and the VM's UEFI variable store, making the
// store at the first start: a volume next to the VM's first disk (or on
// "local"), so boot entries persist and travel with the VM's disks.
func (m *Manager) ovmf(ctx context.Context, c *api.VMConfig, l *task.Log) (code, vars string, err error) {
	tmpl, err := os.ReadFile(ovmfVars)
	if _, cerr := os.Stat(ovmfCode); err != nil || cerr != nil {
		return "", "", fmt.Errorf("bios ovmf: UEFI firmware %s is missing (install Debian's ovmf package)", ovmfCode)
	}
	if c.EFIVars != "" {
		vars, err := m.volumePath(ctx, c.EFIVars, api.ContentImages)
		if err != nil {
			return "", "", fmt.Errorf("efivars: %w", err)
		}
		return ovmfCode, vars, nil
	}
	pool := "local"
	if len(c.Disks) > 0 {
		if id, err := storage.ParseVolID(c.Disks[0].Volume); err == nil {
			pool = id.Storage
		}
	}
	p, err := m.stor.Pool(ctx, pool)
	if err != nil {
		return "", "", fmt.Errorf("efivars: %w", err)
	}
	unlock := m.stor.Lock(pool)
	v, err := p.Alloc(ctx, storage.AllocRequest{VMID: c.VMID, Size: uint64(len(tmpl)), Format: "raw", Content: api.ContentImages})
	unlock()
	if err != nil {
		return "", "", fmt.Errorf("efivars on %s: %w", pool, err)
	}
	vars, err = m.volumePath(ctx, v.VolID, api.ContentImages)
	if err == nil && !filepath.IsAbs(vars) {
		err = fmt.Errorf("storage %s holds block devices; the UEFI variable store needs a file", pool)
	}
	if err == nil {
		// Exactly the template's size: QEMU refuses a pflash of any other.
		err = os.WriteFile(vars, tmpl, 0o600)
	}
	if err == nil {
		_, err = m.recs.Coll.Update(ctx, key(c.VMID), "", func(r *record) error { r.Config.EFIVars = v.VolID; return nil })
	}
	if err != nil {
		m.stor.FreeVolumes(ctx, []string{v.VolID}, l.Printf)
		return "", "", fmt.Errorf("efivars: %w", err)
	}
	c.EFIVars = v.VolID
	l.Printf("UEFI variable store %s made", v.VolID)
	return ovmfCode, vars, nil
}
