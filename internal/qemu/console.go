package qemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/corral-project/corral/internal/errs"
)

// VNC prepares a VNC session: it sets a fresh one-time password on the
// VM's VNC server (QMP change-vnc-password) and returns it with the path
// of the VNC socket. RFB passwords are at most 8 characters.
func (m *Manager) VNC(ctx context.Context, vmid int) (socket, password string, err error) {
	p := m.proc(vmid)
	if p == nil {
		return "", "", errs.Conflict("VM %d is not running", vmid)
	}
	o, err := m.recs.Get(vmid)
	if err != nil {
		return "", "", err
	}
	if v := o.Value.Config.VGA; v == "none" || v == "serial0" {
		return "", "", errs.Conflict("VM %d has no display (vga %s); use the serial console", vmid, v)
	}
	b := make([]byte, 4)
	rand.Read(b)
	password = hex.EncodeToString(b)
	if err := p.mon.Execute(ctx, "change-vnc-password", map[string]any{"password": password}, nil); err != nil {
		return "", "", fmt.Errorf("QMP change-vnc-password: %w", err)
	}
	return pathsFor(m.runDir, vmid).VNC, password, nil
}
