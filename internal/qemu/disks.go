package qemu

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/task"
)

// diskOp validates a disk operation's target and runs fn as a task under
// the VM's lock.
func (m *Manager) diskOp(ctx context.Context, vmid, disk int, typ, user string, needStopped bool, fn func(ctx context.Context, c api.VMConfig, l *task.Log) error) (string, error) {
	o, err := m.get(vmid)
	if err != nil {
		return "", err
	}
	c := o.Value.Config
	switch {
	case c.Node != m.node:
		return "", errs.Conflict("VM %d belongs to node %s; send the request there", vmid, c.Node)
	case c.Template:
		return "", errs.Conflict("VM %d is a template: its disks are read-only", vmid)
	case disk >= len(c.Disks):
		return "", errs.NotFound("VM %d has no disk%d", vmid, disk)
	case needStopped && m.status(vmid) != "stopped":
		return "", errs.Conflict("VM %d is running; stop it first", vmid)
	}
	if err := checkIdle(o); err != nil {
		return "", err
	}
	return m.tasks.Start(ctx, typ, strconv.Itoa(vmid), user, func(ctx context.Context, l *task.Log) error {
		defer m.lock(vmid)()
		o, err := m.get(vmid)
		if err != nil {
			return err
		}
		return fn(ctx, o.Value.Config, l)
	})
}

// ResizeDisk grows a disk: through the storage when stopped, through QMP
// block_resize when running (the guest sees the new size at once).
func (m *Manager) ResizeDisk(ctx context.Context, vmid, disk int, size, user string) (string, error) {
	delta := strings.HasPrefix(size, "+")
	n, err := storage.ParseSize(strings.TrimPrefix(size, "+"))
	if err != nil {
		return "", errs.Invalid("size", "%v", err)
	}
	return m.diskOp(ctx, vmid, disk, "qmresize", user, false, func(ctx context.Context, c api.VMConfig, l *task.Log) error {
		id, _ := storage.ParseVolID(c.Disks[disk].Volume)
		p, err := m.stor.Pool(ctx, id.Storage)
		if err != nil {
			return err
		}
		vols, err := p.List(ctx, "", vmid)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(vols, func(v api.Volume) bool { return v.VolID == c.Disks[disk].Volume })
		if i < 0 {
			return fmt.Errorf("volume %s not found", c.Disks[disk].Volume)
		}
		target := n
		if delta {
			target += vols[i].Size
		}
		if target < vols[i].Size {
			return errs.Invalid("size", "disks only grow (now %d bytes)", vols[i].Size)
		}
		if pr := m.proc(vmid); pr != nil {
			nodes, err := m.blockNodes(ctx, pr)
			if err != nil {
				return err
			}
			if err := pr.mon.Execute(ctx, "block_resize", map[string]any{"node-name": nodes["drive-disk"+strconv.Itoa(disk)], "size": target}, nil); err != nil {
				return fmt.Errorf("QMP block_resize: %w", err)
			}
		} else {
			unlock := m.stor.Lock(id.Storage)
			err := p.Resize(ctx, id.Name, target)
			unlock()
			if err != nil {
				return err
			}
		}
		l.Printf("disk%d resized to %d bytes", disk, target)
		return nil
	})
}

// MoveDisk copies a stopped VM's disk to another pool with qemu-img
// convert and switches the config to it; the source is freed on request.
func (m *Manager) MoveDisk(ctx context.Context, vmid, disk int, in api.VMDiskMove, user string) (string, error) {
	cfg, err := m.stor.Get(in.Storage)
	if err != nil {
		return "", errs.Invalid("storage", "storage %q does not exist", in.Storage)
	}
	if !slices.Contains(cfg.Content, api.ContentImages) {
		return "", errs.Invalid("storage", "storage %s does not hold disk images", in.Storage)
	}
	return m.diskOp(ctx, vmid, disk, "qmmove", user, true, func(ctx context.Context, c api.VMConfig, l *task.Log) error {
		src := c.Disks[disk].Volume
		srcPath, err := m.volumePath(ctx, src, api.ContentImages)
		if err != nil {
			return err
		}
		sid, _ := storage.ParseVolID(src)
		sp, err := m.stor.Pool(ctx, sid.Storage)
		if err != nil {
			return err
		}
		vols, _ := sp.List(ctx, "", vmid)
		i := slices.IndexFunc(vols, func(v api.Volume) bool { return v.VolID == src })
		if i < 0 {
			return fmt.Errorf("volume %s not found", src)
		}
		dp, err := m.stor.Pool(ctx, in.Storage)
		if err != nil {
			return err
		}
		unlock := m.stor.Lock(in.Storage)
		dst, err := dp.Alloc(ctx, storage.AllocRequest{VMID: vmid, Size: vols[i].Size, Format: in.Format, Content: api.ContentImages})
		unlock()
		if err != nil {
			return fmt.Errorf("allocate on %s: %w", in.Storage, err)
		}
		dstPath, err := m.volumePath(ctx, dst.VolID, api.ContentImages)
		if err == nil {
			l.Printf("copying %s to %s", src, dst.VolID)
			err = qemuImg(ctx, "convert", "-p", "-n", "-f", vols[i].Format, "-O", dst.Format, srcPath, dstPath)
		}
		if err != nil {
			m.freeAll(ctx, []string{dst.VolID}, l)
			return err
		}
		if _, err := m.coll.Update(ctx, key(vmid), "", func(r *record) error {
			r.Config.Disks[disk].Volume = dst.VolID
			return nil
		}); err != nil {
			m.freeAll(ctx, []string{dst.VolID}, l)
			return err
		}
		l.Printf("disk%d is now %s", disk, dst.VolID)
		if in.Delete {
			m.freeAll(ctx, []string{src}, l)
		}
		return nil
	})
}
