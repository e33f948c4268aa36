package qemu

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/guest"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/store"
	"github.com/corral-project/corral/internal/task"
)

// Template turns a stopped VM into a read-only template: its disks become
// base volumes that linked clones share.
func (m *Manager) Template(ctx context.Context, vmid int, user string) (string, error) {
	if _, err := m.recs.Prepare(vmid, guest.Want{Stopped: true, NotTemplate: true}, m.status); err != nil {
		return "", err
	}
	return m.recs.LockedTask(ctx, m.tasks, vmid, "template", "qmtemplate", user, func(ctx context.Context, l *task.Log) error {
		o, err := m.recs.Get(vmid)
		if err != nil {
			return err
		}
		c := o.Value.Config
		for i, d := range c.Disks {
			id, err := storage.ParseVolID(d.Volume)
			if err != nil {
				return err
			}
			p, err := m.stor.Pool(ctx, id.Storage)
			if err != nil {
				return err
			}
			b, ok := p.(storage.Baser)
			if !ok {
				return fmt.Errorf("disk %d: storage %s cannot hold template disks", i, id.Storage)
			}
			unlock := m.stor.Lock(id.Storage)
			v, err := b.MakeBase(ctx, id.Name)
			unlock()
			if err != nil {
				return fmt.Errorf("disk %d: %w", i, err)
			}
			l.Printf("%s is now %s", d.Volume, v.VolID)
			c.Disks[i].Volume = v.VolID
			// Record each rename at once: a failure halfway leaves a config
			// that still names every disk correctly.
			if _, err := m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error { r.Config.Disks = c.Disks; return nil }); err != nil {
				return err
			}
		}
		c.Template = true
		if _, err := m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error { r.Config.Template = true; r.Pending = nil; return nil }); err != nil {
			return err
		}
		m.setIndex(ctx, c, "stopped")
		l.Printf("VM %d is a template", vmid)
		return nil
	})
}

// Clone makes a new VM from vmid. Templates clone linked where the storage
// can (instant, sharing the base); everything else is copied in full.
// Parallel clones of one template queue on its lock and all succeed.
func (m *Manager) Clone(ctx context.Context, vmid int, in api.VMClone, user string) (int, string, error) {
	o, err := m.recs.Get(vmid)
	if err != nil {
		return 0, "", err
	}
	src := o.Value.Config
	switch {
	case src.Node != m.node:
		return 0, "", m.recs.NotOwner(vmid, src.Node)
	case !src.Template && m.status(vmid) != "stopped":
		return 0, "", errs.Conflict("VM %d is running; clone it stopped, or make it a template", vmid)
	}
	if err := m.recs.CheckIdle(o); err != nil {
		return 0, "", err
	}
	newid := in.NewID
	if newid == 0 {
		id, err := m.guests.NextID(ctx, user)
		if err != nil {
			return 0, "", err
		}
		newid = id.VMID
	} else if newid < guest.MinID {
		return 0, "", errs.Invalid("newid", "guest IDs start at %d", guest.MinID)
	}
	c := src
	c.VMID, c.Template, c.UUID = newid, false, newUUID()
	// The clone gets a fresh UEFI variable store at its first start: the
	// source's boot entries name the source's disks anyway.
	c.EFIVars = ""
	c.Name = in.Name
	if c.Name == "" && src.Name != "" {
		c.Name = strings.TrimRight(src.Name[:min(len(src.Name), 57)], "-.") + "-clone"
	}
	c.Disks = append([]api.VMDisk(nil), src.Disks...)
	c.Nets = append([]api.VMNet(nil), src.Nets...)
	for i := range c.Nets {
		c.Nets[i].MAC = newMAC()
	}
	op1, err := m.recs.Coll.PutOp(key(newid), record{Config: c, Lock: "clone"}, 0)
	if err != nil {
		return 0, "", err
	}
	op2, _ := m.guests.Guests.PutOp(key(newid), guest.Meta{VMID: newid, Type: api.GuestVM, Node: m.node, Name: c.Name, Status: "stopped"}, 0)
	if _, err := m.st.Apply(ctx, op1, op2); err != nil {
		if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) {
			return 0, "", errs.Conflict("guest ID %d is already in use", newid)
		}
		return 0, "", err
	}
	linked := src.Template && !in.Full
	upid, err := m.tasks.Start(ctx, "qmclone", strconv.Itoa(vmid), user, func(ctx context.Context, l *task.Log) error {
		unlockSrc := m.recs.Queue(vmid)
		var made []string
		for i, d := range src.Disks {
			id, err := storage.ParseVolID(d.Volume)
			if err == nil {
				var p storage.Pool
				if p, err = m.stor.Pool(ctx, id.Storage); err == nil {
					link := linked
					if caps := m.poolCaps(id.Storage); link && !caps.LinkedClones {
						l.Printf("storage %s has no linked clones: copying disk %d in full", id.Storage, i)
						link = false
					}
					unlock := m.stor.Lock(id.Storage)
					var v api.Volume
					v, err = p.Clone(ctx, id.Name, newid, link)
					unlock()
					if err == nil {
						kind := "full copy"
						if link {
							kind = "linked clone"
						}
						l.Printf("disk %d: %s -> %s (%s)", i, d.Volume, v.VolID, kind)
						made = append(made, v.VolID)
						c.Disks[i].Volume = v.VolID
					}
				}
			}
			if err != nil {
				unlockSrc()
				m.stor.FreeVolumes(ctx, made, l.Printf)
				m.removeRecord(newid)
				return fmt.Errorf("disk %d: %w", i, err)
			}
		}
		unlockSrc()
		if _, err := m.recs.Coll.Update(ctx, key(newid), "", func(r *record) error { r.Config, r.Lock = c, ""; return nil }); err != nil {
			return err
		}
		l.Printf("VM %d cloned to %d", vmid, newid)
		return nil
	})
	if err != nil {
		m.removeRecord(newid)
		return 0, "", err
	}
	return newid, upid, nil
}

func (m *Manager) poolCaps(id string) api.StorageCaps {
	cfg, err := m.stor.Get(id)
	if err != nil {
		return api.StorageCaps{}
	}
	p, ok := storage.Lookup(cfg.Type)
	if !ok {
		return api.StorageCaps{}
	}
	return p.Caps()
}
