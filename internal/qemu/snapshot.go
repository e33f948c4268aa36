package qemu

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/task"
)

// snap is a stored snapshot: the API view plus the config it restores.
type snap struct {
	api.VMSnapshot
	Config api.VMConfig `json:"config"`
}

// Snapshots lists a VM's snapshot tree.
func (m *Manager) Snapshots(vmid int) ([]api.VMSnapshot, error) {
	o, err := m.recs.Get(vmid)
	if err != nil {
		return nil, err
	}
	out := []api.VMSnapshot{}
	for _, s := range o.Value.Snapshots {
		v := s.VMSnapshot
		v.Current = s.Name == o.Value.Current
		out = append(out, v)
	}
	return out, nil
}

// diskPools resolves every disk's pool, refusing when one can't snapshot.
func (m *Manager) diskPools(ctx context.Context, c api.VMConfig) ([]storage.Pool, []string, error) {
	var pools []storage.Pool
	var names []string
	for i, d := range c.Disks {
		id, err := storage.ParseVolID(d.Volume)
		if err != nil {
			return nil, nil, err
		}
		if !m.poolCaps(id.Storage).Snapshots {
			return nil, nil, errs.Conflict("disk %d is on storage %s, which cannot take snapshots", i, id.Storage)
		}
		p, err := m.stor.Pool(ctx, id.Storage)
		if err != nil {
			return nil, nil, err
		}
		pools, names = append(pools, p), append(names, id.Name)
	}
	return pools, names, nil
}

// Snapshot takes a snapshot: of the disks when stopped (through the
// storage), of disks and RAM when running (QMP snapshot-save; qcow2 disks).
func (m *Manager) Snapshot(ctx context.Context, vmid int, in api.VMSnapshotCreate, user string) (string, error) {
	o, err := m.recs.Get(vmid)
	if err != nil {
		return "", err
	}
	c := o.Value.Config
	if c.Node != m.node {
		return "", m.recs.NotOwner(vmid, c.Node)
	}
	if err := m.recs.CheckIdle(o); err != nil {
		return "", err
	}
	for _, s := range o.Value.Snapshots {
		if s.Name == in.Name {
			return "", errs.Conflict("VM %d already has a snapshot %s", vmid, in.Name)
		}
	}
	if _, _, err := m.diskPools(ctx, c); err != nil {
		return "", err
	}
	return m.recs.LockedTask(ctx, m.tasks, vmid, "snapshot", "qmsnapshot", user, func(ctx context.Context, l *task.Log) error {
		o, err := m.recs.Get(vmid)
		if err != nil {
			return err
		}
		c := o.Value.Config
		running := m.proc(vmid) != nil
		s := snap{VMSnapshot: api.VMSnapshot{Name: in.Name, Description: in.Description, Parent: o.Value.Current, Time: time.Now().UTC(), VMState: running}, Config: c}
		if running {
			if err := m.saveVM(ctx, vmid, c, in.Name, l); err != nil {
				return err
			}
		} else {
			pools, names, err := m.diskPools(ctx, c)
			if err != nil {
				return err
			}
			for i := range pools {
				if err := pools[i].Snapshot(ctx, names[i], in.Name); err != nil {
					for j := 0; j < i; j++ {
						pools[j].DeleteSnapshot(ctx, names[j], in.Name)
					}
					return fmt.Errorf("disk %d: %w", i, err)
				}
				l.Printf("disk %d: snapshot %s taken", i, in.Name)
			}
		}
		_, err = m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error {
			r.Snapshots = append(r.Snapshots, s)
			r.Current = in.Name
			return nil
		})
		return err
	})
}

// blockNodes maps drive IDs to the block node names QMP jobs need.
func (m *Manager) blockNodes(ctx context.Context, p *proc) (map[string]string, error) {
	var blocks []struct {
		Device   string `json:"device"`
		Inserted *struct {
			NodeName string `json:"node-name"`
		} `json:"inserted"`
	}
	if err := p.mon.Execute(ctx, "query-block", nil, &blocks); err != nil {
		return nil, fmt.Errorf("QMP query-block: %w", err)
	}
	out := map[string]string{}
	for _, b := range blocks {
		if b.Inserted != nil {
			out[b.Device] = b.Inserted.NodeName
		}
	}
	return out, nil
}

// runJob runs a QMP job command and waits for it to conclude. A job that
// reaches "ready" (a mirror in step with its source) is completed; a task
// that is stopped cancels its job so QEMU doesn't go on with it.
func (m *Manager) runJob(ctx context.Context, p *proc, cmd string, args map[string]any, l *task.Log) error {
	jobID := fmt.Sprintf("corral-%s-%d", cmd, time.Now().UnixNano())
	args["job-id"] = jobID
	if err := p.mon.Execute(ctx, cmd, args, nil); err != nil {
		return fmt.Errorf("QMP %s: %w", cmd, err)
	}
	completing, lastPct := false, -1
	for {
		var jobs []struct {
			ID       string `json:"id"`
			Status   string `json:"status"`
			Error    string `json:"error"`
			Progress int64  `json:"current-progress"`
			Total    int64  `json:"total-progress"`
		}
		if err := p.mon.Execute(ctx, "query-jobs", nil, &jobs); err != nil {
			return fmt.Errorf("QMP query-jobs: %w", err)
		}
		for _, j := range jobs {
			if j.ID != jobID {
				continue
			}
			if j.Total > 0 {
				if pct := int(j.Progress * 100 / j.Total); pct/10 != lastPct/10 {
					l.Printf("%s: %d%%", cmd, pct)
					lastPct = pct
				}
			}
			switch {
			case j.Status == "ready" && !completing:
				if err := p.mon.Execute(ctx, "job-complete", map[string]any{"id": jobID}, nil); err != nil {
					return fmt.Errorf("QMP job-complete: %w", err)
				}
				completing = true
			case j.Status == "concluded":
				p.mon.Execute(ctx, "job-dismiss", map[string]any{"id": jobID}, nil)
				if j.Error != "" {
					return fmt.Errorf("%s: %s", cmd, j.Error)
				}
				l.Printf("%s done", cmd)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			p.mon.Execute(cctx, "job-cancel", map[string]any{"id": jobID, "force": true}, nil)
			cancel()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// saveVM snapshots a running VM's disks and RAM into its qcow2 disks.
func (m *Manager) saveVM(ctx context.Context, vmid int, c api.VMConfig, name string, l *task.Log) error {
	p := m.proc(vmid)
	if len(c.Disks) == 0 {
		return errs.Conflict("a running VM's snapshot keeps its RAM on a qcow2 disk; VM %d has no disk", vmid)
	}
	for i, d := range c.Disks {
		if !strings.HasSuffix(d.Volume, ".qcow2") {
			return errs.Conflict("disk %d (%s) is not qcow2: snapshot the VM stopped instead", i, d.Volume)
		}
	}
	nodes, err := m.blockNodes(ctx, p)
	if err != nil {
		return err
	}
	var devs []string
	for i := range c.Disks {
		n, ok := nodes["drive-disk"+strconv.Itoa(i)]
		if !ok {
			return fmt.Errorf("disk %d has no block node", i)
		}
		devs = append(devs, n)
	}
	l.Printf("saving disks and RAM (snapshot-save)")
	return m.runJob(ctx, p, "snapshot-save", map[string]any{"tag": name, "vmstate": devs[0], "devices": devs}, l)
}

// Rollback returns a VM to a snapshot. The VM is stopped first; a snapshot
// with RAM is then resumed where it was taken (QEMU -loadvm).
func (m *Manager) Rollback(ctx context.Context, vmid int, name, user string) (string, error) {
	o, err := m.recs.Get(vmid)
	if err != nil {
		return "", err
	}
	if o.Value.Config.Node != m.node {
		return "", m.recs.NotOwner(vmid, o.Value.Config.Node)
	}
	if err := m.recs.CheckIdle(o); err != nil {
		return "", err
	}
	i := slices.IndexFunc(o.Value.Snapshots, func(s snap) bool { return s.Name == name })
	if i < 0 {
		return "", errs.NotFound("VM %d has no snapshot %s", vmid, name)
	}
	s := o.Value.Snapshots[i]
	return m.recs.LockedTask(ctx, m.tasks, vmid, "rollback", "qmrollback", user, func(ctx context.Context, l *task.Log) error {
		if m.proc(vmid) != nil {
			l.Printf("stopping the VM for the rollback")
			if err := m.doStop(ctx, vmid, l); err != nil {
				return err
			}
		}
		if _, err := m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error {
			r.Config, r.Pending, r.Current = s.Config, nil, name
			return nil
		}); err != nil {
			return err
		}
		if s.VMState {
			return m.start(ctx, vmid, l, name)
		}
		pools, names, err := m.diskPools(ctx, s.Config)
		if err != nil {
			return err
		}
		for i := range pools {
			if err := pools[i].Rollback(ctx, names[i], name); err != nil {
				return fmt.Errorf("disk %d: %w", i, err)
			}
			l.Printf("disk %d rolled back to %s", i, name)
		}
		return nil
	})
}

// DeleteSnapshot removes a snapshot; its children are re-parented.
func (m *Manager) DeleteSnapshot(ctx context.Context, vmid int, name, user string) (string, error) {
	o, err := m.recs.Get(vmid)
	if err != nil {
		return "", err
	}
	if o.Value.Config.Node != m.node {
		return "", m.recs.NotOwner(vmid, o.Value.Config.Node)
	}
	i := slices.IndexFunc(o.Value.Snapshots, func(s snap) bool { return s.Name == name })
	if i < 0 {
		return "", errs.NotFound("VM %d has no snapshot %s", vmid, name)
	}
	s := o.Value.Snapshots[i]
	return m.recs.LockedTask(ctx, m.tasks, vmid, "snapshot-delete", "qmdelsnapshot", user, func(ctx context.Context, l *task.Log) error {
		if p := m.proc(vmid); p != nil {
			nodes, err := m.blockNodes(ctx, p)
			if err != nil {
				return err
			}
			var devs []string
			for i := range s.Config.Disks {
				if n, ok := nodes["drive-disk"+strconv.Itoa(i)]; ok {
					devs = append(devs, n)
				}
			}
			if err := m.runJob(ctx, p, "snapshot-delete", map[string]any{"tag": name, "devices": devs}, l); err != nil {
				return err
			}
		} else {
			pools, names, err := m.diskPools(ctx, s.Config)
			if err != nil {
				return err
			}
			for i := range pools {
				if err := pools[i].DeleteSnapshot(ctx, names[i], name); err != nil {
					return fmt.Errorf("disk %d: %w", i, err)
				}
			}
		}
		_, err := m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error {
			r.Snapshots = slices.DeleteFunc(r.Snapshots, func(x snap) bool { return x.Name == name })
			for j := range r.Snapshots {
				if r.Snapshots[j].Parent == name {
					r.Snapshots[j].Parent = s.Parent
				}
			}
			if r.Current == name {
				r.Current = s.Parent
			}
			return nil
		})
		l.Printf("snapshot %s deleted", name)
		return err
	})
}
