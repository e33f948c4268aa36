package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/store"
)

// aliveTTL is how long a node counts as online after its last keepalive.
const aliveTTL = 15

type nodeRecord struct {
	Node    string    `json:"node"`
	Address string    `json:"address"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
}

type alive struct {
	Seen time.Time `json:"seen"`
}

// Nodes is the cluster's node list and liveness.
type Nodes struct {
	st    *store.Store
	recs  *store.Collection[nodeRecord]
	alive *store.Collection[alive]
}

// NewNodes returns the node registry.
func NewNodes(st *store.Store) *Nodes {
	return &Nodes{st: st, recs: store.NewCollection[nodeRecord](st, "cluster/nodes"), alive: store.NewCollection[alive](st, "cluster/alive")}
}

// Register records this node and keeps its liveness key alive until ctx
// ends. The liveness key is bound to an etcd lease, so a dead node goes
// offline by itself after aliveTTL seconds.
func (n *Nodes) Register(ctx context.Context, log *slog.Logger, name, address, version string) error {
	rec := nodeRecord{Node: name, Address: address, Version: version, Started: time.Now().UTC()}
	op, err := n.recs.PutOp(name, rec, -1)
	if err != nil {
		return err
	}
	if _, err := n.st.Apply(ctx, op); err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	cli := n.st.Client()
	heartbeat := func() (clientv3.LeaseID, error) {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		lease, err := cli.Grant(lctx, aliveTTL)
		if err != nil {
			return 0, err
		}
		raw, _ := store.Encode(alive{Seen: time.Now().UTC()})
		if _, err := n.st.Apply(lctx, store.Op{Key: n.alive.Key(name), Value: raw, Rev: -1, Lease: lease.ID}); err != nil {
			return 0, err
		}
		return lease.ID, nil
	}
	id, err := heartbeat()
	if err != nil {
		return fmt.Errorf("node liveness: %w", err)
	}
	go func() {
		t := time.NewTicker(aliveTTL * time.Second / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				cli.Revoke(rctx, id) // go offline at once on a clean shutdown
				cancel()
				return
			case <-t.C:
				kctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := cli.KeepAliveOnce(kctx, id)
				cancel()
				if err != nil && ctx.Err() == nil {
					log.Warn("node keepalive failed; re-registering", "err", err)
					if nid, err := heartbeat(); err == nil {
						id = nid
					}
				}
			}
		}
	}()
	return nil
}

// List returns every node with its online state.
func (n *Nodes) List() []api.Node {
	var out []api.Node
	for _, o := range n.recs.List() {
		r := o.Value
		node := api.Node{Node: r.Node, Address: r.Address, Version: r.Version}
		if a, err := n.alive.Get(r.Node); err == nil {
			node.Online, node.Seen = true, a.Value.Seen
		}
		out = append(out, node)
	}
	return out
}

// Get returns one node.
func (n *Nodes) Get(name string) (api.Node, bool) {
	for _, x := range n.List() {
		if x.Node == name {
			return x, true
		}
	}
	return api.Node{}, false
}
