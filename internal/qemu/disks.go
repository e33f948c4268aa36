package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/guest"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/task"
)

// diskOp validates a disk operation's target and runs fn as a task under
// the VM's lock.
func (m *Manager) diskOp(ctx context.Context, vmid, disk int, typ, user string, needStopped bool, fn func(ctx context.Context, c api.VMConfig, l *task.Log) error) (string, error) {
	o, err := m.recs.Get(vmid)
	if err != nil {
		return "", err
	}
	c := o.Value.Config
	switch {
	case c.Node != m.node:
		return "", m.recs.NotOwner(vmid, c.Node)
	case c.Template:
		return "", errs.Conflict("VM %d is a template: its disks are read-only", vmid)
	case disk >= len(c.Disks):
		return "", errs.NotFound("VM %d has no disk%d", vmid, disk)
	case needStopped && m.status(vmid) != "stopped":
		return "", errs.Conflict("VM %d is running; stop it first", vmid)
	}
	if err := m.recs.CheckIdle(o); err != nil {
		return "", err
	}
	return m.recs.LockedTask(ctx, m.tasks, vmid, "disk", typ, user, func(ctx context.Context, l *task.Log) error {
		o, err := m.recs.Get(vmid)
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

// MoveDisk copies a disk to another pool and switches the config to it;
// the source is freed on request. A stopped VM's disk is copied with
// qemu-img convert; a running VM's is mirrored by QEMU (drive-mirror), and
// the guest goes on using the copy without a pause.
func (m *Manager) MoveDisk(ctx context.Context, vmid, disk int, in api.VMDiskMove, user string, auth guest.Authorizer) (string, error) {
	cfg, err := m.stor.Get(in.Storage)
	if err != nil {
		return "", errs.Invalid("storage", "storage %q does not exist", in.Storage)
	}
	if !slices.Contains(cfg.Content, api.ContentImages) {
		return "", errs.Invalid("storage", "storage %s does not hold disk images", in.Storage)
	}
	if o, err := m.recs.Get(vmid); err == nil && disk < len(o.Value.Config.Disks) {
		if in.Delete {
			if err := guest.CheckVolume(auth, vmid, "delete", o.Value.Config.Disks[disk].Volume, guest.UseFree); err != nil {
				return "", err
			}
		}
		if id, err := storage.ParseVolID(o.Value.Config.Disks[disk].Volume); err == nil && id.Storage == in.Storage &&
			(in.Format == "" || strings.HasSuffix(id.Name, "."+in.Format)) {
			return "", errs.Invalid("storage", "disk%d is already on %s in that format", disk, in.Storage)
		}
	}
	return m.diskOp(ctx, vmid, disk, "qmmove", user, false, func(ctx context.Context, c api.VMConfig, l *task.Log) error {
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
			if p := m.proc(vmid); p != nil {
				l.Printf("mirroring %s to %s while the VM runs", src, dst.VolID)
				err = m.runJob(ctx, p, "drive-mirror", map[string]any{
					"device": "drive-disk" + strconv.Itoa(disk), "target": dstPath, "format": dst.Format,
					"mode": "existing", "sync": "full", "auto-dismiss": false,
				}, l)
			} else {
				l.Printf("copying %s to %s", src, dst.VolID)
				err = qemuImg(ctx, "convert", "-p", "-n", "-f", vols[i].Format, "-O", dst.Format, srcPath, dstPath)
			}
		}
		if err != nil {
			m.stor.FreeVolumes(ctx, []string{dst.VolID}, l.Printf)
			return err
		}
		if _, err := m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error {
			r.Config.Disks[disk].Volume = dst.VolID
			return nil
		}); err != nil {
			m.stor.FreeVolumes(ctx, []string{dst.VolID}, l.Printf)
			return err
		}
		l.Printf("disk%d is now %s", disk, dst.VolID)
		if in.Delete {
			m.freeChecked(ctx, vmid, src, auth, l)
		}
		return nil
	})
}

// freeChecked frees a volume the caller asked to free, checking again
// under the VM's lock: the disk at that index may have changed since the
// request was checked.
func (m *Manager) freeChecked(ctx context.Context, vmid int, vol string, auth guest.Authorizer, l *task.Log) {
	if err := guest.CheckVolume(auth, vmid, "free", vol, guest.UseFree); err != nil {
		l.Printf("keeping %s: %v", vol, err)
		return
	}
	m.stor.FreeVolumes(ctx, []string{vol}, l.Printf)
}

// AttachDisk adds a disk to a stopped VM.
func (m *Manager) AttachDisk(ctx context.Context, vmid int, in api.VMDiskAttach, user string, allowPath bool, auth guest.Authorizer) (string, error) {
	o, err := m.recs.Get(vmid)
	if err != nil {
		return "", err
	}
	c := o.Value.Config
	switch {
	case c.Node != m.node:
		return "", m.recs.NotOwner(vmid, c.Node)
	case c.Template:
		return "", errs.Conflict("VM %d is a template", vmid)
	case m.status(vmid) != "stopped" && in.Bus != "virtio":
		return "", errs.Conflict("VM %d is running: only virtio disks can be added live", vmid)
	}
	if err := m.recs.CheckIdle(o); err != nil {
		return "", err
	}
	d := in.VMDisk
	var src string
	if in.ImportFrom != "" {
		if d.Volume != "" || d.Storage == "" {
			return "", errs.Invalid("import_from", "importing needs a target storage and no volume")
		}
		if strings.HasPrefix(in.ImportFrom, "/") {
			if !allowPath {
				return "", errs.Forbidden("importing from a host path is for root@pam; upload the image to a pool instead")
			}
			src = filepathClean(in.ImportFrom)
		} else {
			if err := guest.CheckVolume(auth, vmid, "import_from", in.ImportFrom, guest.UseImport); err != nil {
				return "", err
			}
			p, err := m.anyVolumePath(ctx, in.ImportFrom)
			if err != nil {
				return "", errs.Invalid("import_from", "%v", err)
			}
			src = p
		}
		d.Size = "1" // placeholder for validation; the image decides the size
	}
	n := c
	n.Disks = append(append([]api.VMDisk(nil), c.Disks...), d)
	if err := m.validate(ctx, &n, true, auth, &c); err != nil {
		return "", err
	}
	return m.tasks.Start(ctx, "qmattach", strconv.Itoa(vmid), user, func(ctx context.Context, l *task.Log) error {
		defer m.recs.Queue(vmid)()
		if d.Volume == "" {
			if src != "" {
				v, err := m.importImage(ctx, vmid, d, src, l)
				if err != nil {
					return err
				}
				d.Volume = v
			} else {
				tmp := api.VMConfig{VMID: vmid, Disks: []api.VMDisk{d}}
				if err := m.createDisks(ctx, &tmp, l); err != nil {
					return err
				}
				d = tmp.Disks[0]
			}
		}
		d.Storage, d.Size, d.Format = "", "", ""
		if m.proc(vmid) != nil {
			if err := m.hotplugDisk(ctx, vmid, len(n.Disks)-1, d, l); err != nil {
				m.stor.FreeVolumes(ctx, []string{d.Volume}, l.Printf)
				return err
			}
		}
		_, err := m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error {
			r.Config.Disks = append(r.Config.Disks, d)
			return nil
		})
		if err == nil {
			l.Printf("attached %s as disk%d", d.Volume, len(n.Disks)-1)
		}
		return err
	})
}

// importImage copies an image file into a new volume of the target pool.
func (m *Manager) importImage(ctx context.Context, vmid int, d api.VMDisk, src string, l *task.Log) (string, error) {
	info, err := imgInfo(ctx, src)
	if err != nil {
		return "", err
	}
	p, err := m.stor.Pool(ctx, d.Storage)
	if err != nil {
		return "", err
	}
	unlock := m.stor.Lock(d.Storage)
	v, err := p.Alloc(ctx, storage.AllocRequest{VMID: vmid, Size: info.size, Format: d.Format, Content: api.ContentImages})
	unlock()
	if err != nil {
		return "", err
	}
	dst, err := m.volumePath(ctx, v.VolID, api.ContentImages)
	if err == nil {
		l.Printf("importing %s (%s, %d bytes) into %s", src, info.format, info.size, v.VolID)
		err = qemuImg(ctx, "convert", "-n", "-f", info.format, "-O", v.Format, src, dst)
	}
	if err != nil {
		m.stor.FreeVolumes(ctx, []string{v.VolID}, l.Printf)
		return "", err
	}
	return v.VolID, nil
}

// DetachDisk removes a disk from a VM's config, freeing the volume when
// asked (otherwise it stays on the pool, still owned by the VM). A running
// VM gives up its last disk through hot-unplug; device IDs follow disk
// positions, so a disk in the middle waits for the VM to stop.
func (m *Manager) DetachDisk(ctx context.Context, vmid, disk int, free bool, user string, auth guest.Authorizer) (string, error) {
	if free {
		if o, err := m.recs.Get(vmid); err == nil && disk < len(o.Value.Config.Disks) {
			if err := guest.CheckVolume(auth, vmid, "free", o.Value.Config.Disks[disk].Volume, guest.UseFree); err != nil {
				return "", err
			}
		}
	}
	if m.status(vmid) != "stopped" {
		o, err := m.recs.Get(vmid)
		if err != nil {
			return "", err
		}
		switch n := len(o.Value.Config.Disks); {
		case disk >= n: // diskOp says it doesn't exist
		case disk != n-1:
			return "", errs.Conflict("VM %d is running: only its last disk (disk%d) can be detached live; stop it to detach disk%d", vmid, n-1, disk)
		case o.Value.Config.Disks[disk].Bus != "virtio":
			return "", errs.Conflict("VM %d is running: disk%d is on %s, which can't be unplugged live", vmid, disk, o.Value.Config.Disks[disk].Bus)
		}
	}
	return m.diskOp(ctx, vmid, disk, "qmdetach", user, false, func(ctx context.Context, c api.VMConfig, l *task.Log) error {
		vol := c.Disks[disk].Volume
		if m.proc(vmid) != nil {
			if err := m.unplugDisk(ctx, vmid, disk, l); err != nil {
				return err
			}
		}
		if _, err := m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error {
			r.Config.Disks = slices.Delete(r.Config.Disks, disk, disk+1)
			r.Config.Boot = slices.DeleteFunc(r.Config.Boot, func(b string) bool { return strings.HasPrefix(b, "disk") })
			return nil
		}); err != nil {
			return err
		}
		l.Printf("detached %s", vol)
		if free {
			m.freeChecked(ctx, vmid, vol, auth, l)
		}
		return nil
	})
}

// anyVolumePath resolves a volume of any content type on this node.
func (m *Manager) anyVolumePath(ctx context.Context, volid string) (string, error) {
	id, err := storage.ParseVolID(volid)
	if err != nil {
		return "", err
	}
	p, err := m.stor.Pool(ctx, id.Storage)
	if err != nil {
		return "", err
	}
	return p.Path(ctx, id.Name)
}

type imgDesc struct {
	format string
	size   uint64
}

// imgInfo reads an image's format and virtual size with qemu-img.
func imgInfo(ctx context.Context, path string) (imgDesc, error) {
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "-U", "--output=json", path).Output()
	if err != nil {
		return imgDesc{}, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	var qi struct {
		Format      string `json:"format"`
		VirtualSize uint64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &qi); err != nil {
		return imgDesc{}, err
	}
	if qi.Format != "raw" && qi.Format != "qcow2" && qi.Format != "vmdk" && qi.Format != "vdi" && qi.Format != "vhdx" {
		return imgDesc{}, fmt.Errorf("%s: unsupported image format %s", path, qi.Format)
	}
	return imgDesc{format: qi.Format, size: qi.VirtualSize}, nil
}

func filepathClean(p string) string { return filepath.Clean(p) }

// hotplugDisk adds a virtio disk to a running VM: the image as a block
// node, then the device (into a free PCIe root port on q35).
func (m *Manager) hotplugDisk(ctx context.Context, vmid, index int, d api.VMDisk, l *task.Log) error {
	p := m.proc(vmid)
	o, err := m.recs.Get(vmid)
	if err != nil {
		return err
	}
	path, err := m.volumePath(ctx, d.Volume, api.ContentImages)
	if err != nil {
		return err
	}
	format := "raw"
	if strings.HasSuffix(path, ".qcow2") {
		format = "qcow2"
	}
	id := "disk" + strconv.Itoa(index)
	node := "drive-" + id
	if err := p.mon.Execute(ctx, "blockdev-add", map[string]any{
		"driver": format, "node-name": node, "read-only": d.ReadOnly,
		"file": map[string]any{"driver": "file", "filename": path, "aio": "threads"},
	}, nil); err != nil {
		return fmt.Errorf("hotplug %s: %w", id, err)
	}
	dev := map[string]any{"driver": "virtio-blk-pci", "id": id, "drive": node}
	if o.Value.Config.Machine != "q35" {
		err = p.mon.Execute(ctx, "device_add", dev, nil)
	} else {
		err = fmt.Errorf("all %d hotplug ports are in use", hotplugPorts)
		for port := 0; port < hotplugPorts && err != nil; port++ {
			dev["bus"] = "hotplug" + strconv.Itoa(port)
			err = p.mon.Execute(ctx, "device_add", dev, nil)
		}
	}
	if err != nil {
		p.mon.Execute(ctx, "blockdev-del", map[string]any{"node-name": node}, nil)
		return fmt.Errorf("hotplug %s: %w", id, err)
	}
	l.Printf("%s plugged into the running VM", id)
	return nil
}

// unplugDisk asks the guest to release a virtio disk (ACPI/PCIe hot-unplug)
// and waits for QEMU to confirm, then drops the disk's block node.
func (m *Manager) unplugDisk(ctx context.Context, vmid, index int, l *task.Log) error {
	p := m.proc(vmid)
	if p == nil {
		return fmt.Errorf("VM %d is not running", vmid)
	}
	id := "disk" + strconv.Itoa(index)
	// The root node's name: after a mirror it is no longer the one we gave.
	var blocks []struct {
		Device   string `json:"device"`
		QDev     string `json:"qdev"`
		Inserted *struct {
			NodeName string `json:"node-name"`
		} `json:"inserted"`
	}
	if err := p.mon.Execute(ctx, "query-block", nil, &blocks); err != nil {
		return fmt.Errorf("QMP query-block: %w", err)
	}
	node := ""
	for _, b := range blocks {
		if b.Inserted != nil && b.Device == "" && (b.QDev == id || strings.HasPrefix(b.QDev, "/machine/peripheral/"+id+"/")) {
			node = b.Inserted.NodeName
		}
	}
	if err := m.deviceDel(ctx, vmid, id); err != nil {
		return err
	}
	// A disk plugged at runtime has a block node of its own to remove; one
	// from the command line went with its device.
	if node != "" {
		if err := p.mon.Execute(ctx, "blockdev-del", map[string]any{"node-name": node}, nil); err != nil {
			l.Printf("block node %s: %v", node, err)
		}
	}
	l.Printf("%s unplugged", id)
	return nil
}

// deviceDel asks the guest to release a device (ACPI/PCIe hot-unplug) and
// waits for QEMU to confirm it is gone: the guest's OS must cooperate.
func (m *Manager) deviceDel(ctx context.Context, vmid int, id string) error {
	p := m.proc(vmid)
	if p == nil {
		return fmt.Errorf("VM %d is not running", vmid)
	}
	sub := p.mon.Subscribe("DEVICE_DELETED")
	defer sub.Close()
	if err := p.mon.Execute(ctx, "device_del", map[string]any{"id": id}, nil); err != nil {
		return fmt.Errorf("unplug %s: %w", id, err)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				return fmt.Errorf("unplug %s: the VM went away", id)
			}
			var d struct {
				Device string `json:"device"`
			}
			ev.DecodeData(&d)
			if d.Device == id {
				return nil
			}
		case <-wait.Done():
			return errs.Conflict("unplug %s: the guest did not release it within 30s (is its OS running and hotplug-capable?)", id)
		}
	}
}
