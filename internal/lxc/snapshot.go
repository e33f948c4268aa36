package lxc

import (
	"context"
	"time"

	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/task"
)

// snap is one snapshot of a container's volumes.
type snap struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Time        time.Time `json:"time"`
}

// deleteSnapshots removes every snapshot of a container's volumes before
// they are freed.
func (m *Manager) deleteSnapshots(ctx context.Context, r record, l *task.Log) {
	for _, s := range r.Snapshots {
		for _, v := range volumesOf(r.Config) {
			id, err := storage.ParseVolID(v)
			if err != nil {
				continue
			}
			p, err := m.stor.Pool(ctx, id.Storage)
			if err == nil {
				err = p.DeleteSnapshot(ctx, id.Name, s.Name)
			}
			if err != nil {
				l.Printf("delete snapshot %s of %s: %v", s.Name, v, err)
			}
		}
	}
}
