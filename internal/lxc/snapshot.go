package lxc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/guest"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/store"
	"github.com/corral-project/corral/internal/task"
)

// snap is one snapshot of a container: its volumes' snapshots (named
// like it on their pools) and the config at the time, which a rollback
// restores.
type snap struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Time        time.Time    `json:"time"`
	Config      api.CTConfig `json:"config"`
}

// poolOf opens the pool of a volume ID and returns the volume's name.
func (m *Manager) poolOf(ctx context.Context, volid string) (storage.Pool, string, string, error) {
	id, err := storage.ParseVolID(volid)
	if err != nil {
		return nil, "", "", err
	}
	p, err := m.stor.Pool(ctx, id.Storage)
	if err != nil {
		return nil, "", "", err
	}
	return p, id.Storage, id.Name, nil
}

// deleteSnapshots removes every snapshot of a container's volumes before
// they are freed.
func (m *Manager) deleteSnapshots(ctx context.Context, r record, l *task.Log) {
	for _, s := range r.Snapshots {
		for _, v := range volumesOf(r.Config) {
			p, _, name, err := m.poolOf(ctx, v)
			if err == nil {
				err = p.DeleteSnapshot(ctx, name, s.Name)
			}
			if err != nil {
				l.Printf("delete snapshot %s of %s: %v", s.Name, v, err)
			}
		}
	}
}

// Snapshots lists a container's snapshots, oldest first.
func (m *Manager) Snapshots(vmid int) ([]api.CTSnapshot, error) {
	o, err := m.recs.Get(vmid)
	if err != nil {
		return nil, err
	}
	out := []api.CTSnapshot{}
	for _, s := range o.Value.Snapshots {
		out = append(out, api.CTSnapshot{Name: s.Name, Description: s.Description, Time: s.Time})
	}
	return out, nil
}

// Snapshot snapshots every volume of a container. A running container is
// frozen meanwhile (cgroup freezer), so the snapshot is consistent across
// its volumes; on btrfs that is a moment, on a plain directory pool it
// lasts the copy.
func (m *Manager) Snapshot(ctx context.Context, vmid int, in api.CTSnapshotCreate, user string) (string, error) {
	o, err := m.recs.Local(vmid)
	if err != nil {
		return "", err
	}
	if slices.ContainsFunc(o.Value.Snapshots, func(s snap) bool { return s.Name == in.Name }) {
		return "", errs.Conflict("container %d already has a snapshot %s", vmid, in.Name)
	}
	if o.Value.Config.Template {
		return "", errs.Conflict("container %d is a template", vmid)
	}
	return m.recs.LockedTask(ctx, m.tasks, vmid, "snapshot", "vzsnapshot", user, func(ctx context.Context, l *task.Log) error {
		o, err := m.recs.Get(vmid)
		if err != nil {
			return err
		}
		c := o.Value.Config
		if m.state(vmid) == "running" {
			if _, err := m.tool(ctx, 30*time.Second, "lxc-freeze", vmid); err != nil {
				return err
			}
			l.Printf("container frozen for the snapshot")
			defer func() {
				if _, err := m.tool(context.Background(), 30*time.Second, "lxc-unfreeze", vmid); err != nil {
					l.Printf("WARNING: thaw after snapshot: %v", err)
				} else {
					l.Printf("container thawed")
				}
			}()
		}
		var done []string
		for _, v := range volumesOf(c) {
			p, _, name, err := m.poolOf(ctx, v)
			if err == nil {
				err = p.Snapshot(ctx, name, in.Name)
			}
			if err != nil {
				for _, d := range done {
					if p, _, name, err := m.poolOf(ctx, d); err == nil {
						p.DeleteSnapshot(ctx, name, in.Name)
					}
				}
				return fmt.Errorf("snapshot %s: %w", v, err)
			}
			l.Printf("snapshot %s of %s taken", in.Name, v)
			done = append(done, v)
		}
		_, err = m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error {
			r.Snapshots = append(r.Snapshots, snap{Name: in.Name, Description: in.Description, Time: time.Now().UTC(), Config: c})
			return nil
		})
		return err
	})
}

// Rollback returns a stopped container's volumes and config to a snapshot.
func (m *Manager) Rollback(ctx context.Context, vmid int, name, user string) (string, error) {
	o, err := m.recs.Local(vmid)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(o.Value.Snapshots, func(s snap) bool { return s.Name == name })
	if i < 0 {
		return "", errs.NotFound("container %d has no snapshot %s", vmid, name)
	}
	if m.state(vmid) != "stopped" {
		return "", errs.Conflict("container %d is running; stop it first", vmid)
	}
	return m.recs.LockedTask(ctx, m.tasks, vmid, "rollback", "vzrollback", user, func(ctx context.Context, l *task.Log) error {
		if m.state(vmid) != "stopped" {
			return fmt.Errorf("container %d was started meanwhile", vmid)
		}
		o, err := m.recs.Get(vmid)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(o.Value.Snapshots, func(s snap) bool { return s.Name == name })
		if i < 0 {
			return fmt.Errorf("snapshot %s vanished", name)
		}
		s := o.Value.Snapshots[i]
		for _, v := range volumesOf(s.Config) {
			p, _, vname, err := m.poolOf(ctx, v)
			if err == nil {
				err = p.Rollback(ctx, vname, name)
			}
			if err != nil {
				return fmt.Errorf("rollback %s: %w", v, err)
			}
			l.Printf("%s rolled back to %s", v, name)
		}
		_, err = m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error { r.Config, r.Pending = s.Config, nil; return nil })
		if err == nil {
			m.setIndex(ctx, s.Config, "stopped")
		}
		return err
	})
}

// DeleteSnapshot removes a snapshot of every volume and from the record.
func (m *Manager) DeleteSnapshot(ctx context.Context, vmid int, name, user string) (string, error) {
	o, err := m.recs.Local(vmid)
	if err != nil {
		return "", err
	}
	if !slices.ContainsFunc(o.Value.Snapshots, func(s snap) bool { return s.Name == name }) {
		return "", errs.NotFound("container %d has no snapshot %s", vmid, name)
	}
	return m.recs.LockedTask(ctx, m.tasks, vmid, "snapshot-delete", "vzdelsnapshot", user, func(ctx context.Context, l *task.Log) error {
		o, err := m.recs.Get(vmid)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(o.Value.Snapshots, func(s snap) bool { return s.Name == name })
		if i < 0 {
			return nil
		}
		for _, v := range volumesOf(o.Value.Snapshots[i].Config) {
			p, _, vname, err := m.poolOf(ctx, v)
			if err == nil {
				err = p.DeleteSnapshot(ctx, vname, name)
			}
			if err != nil && !errors.Is(err, storage.ErrNotFound) && !isNotFound(err) {
				return fmt.Errorf("delete snapshot of %s: %w", v, err)
			}
		}
		_, err = m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error {
			r.Snapshots = slices.DeleteFunc(r.Snapshots, func(s snap) bool { return s.Name == name })
			return nil
		})
		return err
	})
}

func isNotFound(err error) bool {
	var e *errs.Error
	return errors.As(err, &e) && e.Kind == errs.KindNotFound
}

// Template turns a stopped container into a template: its volumes become
// base volumes (basevol-) that clones are made from.
func (m *Manager) Template(ctx context.Context, vmid int, user string) (string, error) {
	o, err := m.recs.Local(vmid)
	if err != nil {
		return "", err
	}
	switch {
	case o.Value.Config.Template:
		return "", errs.Conflict("container %d is already a template", vmid)
	case len(o.Value.Snapshots) > 0:
		return "", errs.Conflict("container %d has snapshots; delete them first", vmid)
	case m.state(vmid) != "stopped":
		return "", errs.Conflict("container %d is running; stop it first", vmid)
	}
	return m.recs.LockedTask(ctx, m.tasks, vmid, "template", "vztemplate", user, func(ctx context.Context, l *task.Log) error {
		o, err := m.recs.Get(vmid)
		if err != nil {
			return err
		}
		c := o.Value.Config
		rename := func(volid string) (string, error) {
			p, pool, name, err := m.poolOf(ctx, volid)
			if err != nil {
				return "", err
			}
			b, ok := p.(storage.Baser)
			if !ok {
				return "", fmt.Errorf("storage %s cannot hold templates", pool)
			}
			unlock := m.stor.Lock(pool)
			v, err := b.MakeBase(ctx, name)
			unlock()
			if err != nil {
				return "", fmt.Errorf("%s: %w", volid, err)
			}
			l.Printf("%s is now %s", volid, v.VolID)
			return v.VolID, nil
		}
		// Each rename is recorded at once, so a failure halfway leaves a
		// config that names every volume correctly.
		save := func() error {
			_, err := m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error { r.Config = c; r.Pending = nil; return nil })
			return err
		}
		if c.RootFS.Volume, err = rename(c.RootFS.Volume); err != nil {
			return err
		}
		if err := save(); err != nil {
			return err
		}
		for i, mp := range c.Mountpoints {
			if mp.Volume == "" || !slices.Contains(volumesOf(c), mp.Volume) {
				continue
			}
			if c.Mountpoints[i].Volume, err = rename(mp.Volume); err != nil {
				return err
			}
			if err := save(); err != nil {
				return err
			}
		}
		c.Template = true
		if err := save(); err != nil {
			return err
		}
		m.setIndex(ctx, c, "stopped")
		l.Printf("container %d is a template", vmid)
		return nil
	})
}

// Clone makes a new container from a stopped container or a template:
// linked (sharing the base) where the pool can, else a full copy.
func (m *Manager) Clone(ctx context.Context, vmid int, in api.CTClone, user string) (int, string, error) {
	o, err := m.recs.Local(vmid)
	if err != nil {
		return 0, "", err
	}
	src := o.Value.Config
	if !src.Template && m.state(vmid) != "stopped" {
		return 0, "", errs.Conflict("container %d is running; clone it stopped, or make it a template", vmid)
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
	c.VMID, c.Template = newid, false
	c.Hostname = in.Hostname
	if c.Hostname == "" {
		c.Hostname = fmt.Sprintf("ct%d", newid)
	}
	c.Mountpoints = slices.Clone(src.Mountpoints)
	c.Nets = slices.Clone(src.Nets)
	for i := range c.Nets {
		c.Nets[i].HWAddr = newMAC()
	}
	op1, err := m.recs.Coll.PutOp(key(newid), record{Config: c, Lock: "clone"}, 0)
	if err != nil {
		return 0, "", err
	}
	op2, _ := m.guests.Guests.PutOp(key(newid), guest.Meta{VMID: newid, Type: api.GuestContainer, Node: m.node, Name: c.Hostname, Status: "stopped"}, 0)
	if _, err := m.st.Apply(ctx, op1, op2); err != nil {
		if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) {
			return 0, "", errs.Conflict("guest ID %d is already in use", newid)
		}
		return 0, "", err
	}
	linked := src.Template && !in.Full
	upid, err := m.tasks.Start(ctx, "vzclone", strconv.Itoa(vmid), user, func(ctx context.Context, l *task.Log) error {
		unlockSrc := m.recs.Queue(vmid)
		var made []string
		clone := func(volid string) (string, error) {
			p, pool, name, err := m.poolOf(ctx, volid)
			if err != nil {
				return "", err
			}
			unlock := m.stor.Lock(pool)
			defer unlock()
			kind := "linked clone"
			v, err := p.Clone(ctx, name, newid, linked)
			if linked && errors.Is(err, storage.ErrNotSupported) {
				kind = "full copy"
				v, err = p.Clone(ctx, name, newid, false)
			} else if !linked {
				kind = "full copy"
			}
			if err != nil {
				return "", fmt.Errorf("clone %s: %w", volid, err)
			}
			made = append(made, v.VolID)
			l.Printf("%s -> %s (%s)", volid, v.VolID, kind)
			return v.VolID, nil
		}
		fail := func(err error) error {
			unlockSrc()
			m.stor.FreeVolumes(context.Background(), made, l.Printf)
			m.removeRecord(newid)
			return err
		}
		owned := volumesOf(src)
		if c.RootFS.Volume, err = clone(src.RootFS.Volume); err != nil {
			return fail(err)
		}
		for i, mp := range src.Mountpoints {
			if mp.Volume == "" || !slices.Contains(owned, mp.Volume) {
				continue
			}
			if c.Mountpoints[i].Volume, err = clone(mp.Volume); err != nil {
				return fail(err)
			}
		}
		unlockSrc()
		if _, err := m.recs.Coll.Update(ctx, key(newid), "", func(r *record) error { r.Config, r.Lock = c, ""; return nil }); err != nil {
			return err
		}
		l.Printf("container %d cloned to %d", vmid, newid)
		return nil
	})
	if err != nil {
		m.removeRecord(newid)
		return 0, "", err
	}
	return newid, upid, nil
}
