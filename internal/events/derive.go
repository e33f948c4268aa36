package events

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/store"
)

// guestMeta is the part of the guest index record (internal/guest.Meta)
// events need; decoded here so this package depends on the store only.
type guestMeta struct {
	VMID   int    `json:"vmid"`
	Type   string `json:"type"`
	Node   string `json:"node"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

// guestRecord is the common part of a driver's config record
// (vms/<id>, and containers/<id> once the container driver writes them).
type guestRecord struct {
	Config struct {
		Node string `json:"node"`
		Name string `json:"name"`
	} `json:"config"`
}

// configCollections maps a driver's record collection to its guest type.
var configCollections = map[string]string{"vms": api.GuestVM, "containers": api.GuestContainer, "lxc": api.GuestContainer}

// networkCollections are the network layer's definitions.
var networkCollections = []string{"network/", "sdn/", "firewall/"}

// decode unwraps a store envelope ({"schema":1,"data":...}); a value that
// doesn't decode gives the zero value, so one bad record can't stop events.
func decode[T any](raw []byte) (T, bool) {
	var v T
	if raw == nil {
		return v, false
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(raw, &env) != nil || json.Unmarshal(env.Data, &v) != nil {
		return v, false
	}
	return v, true
}

func guestPath(vmid int) string { return "/vms/" + strconv.Itoa(vmid) }

// Derive maps one store change to zero or more events. IDs are assigned by
// the hub. Secrets and bookkeeping keys produce nothing.
func Derive(ev store.Event, now time.Time) []*Item {
	rel, ok := strings.CutPrefix(ev.Key, store.Prefix)
	if !ok || strings.HasPrefix(ev.Key, store.SecretPrefix) {
		return nil
	}
	coll, id, _ := strings.Cut(rel, "/")
	if i := strings.LastIndexByte(rel, '/'); i > 0 {
		id = rel[i+1:]
	}
	base := api.Event{Time: now.UTC()}
	one := func(e api.Event, path, priv, owner string) []*Item {
		return []*Item{{Event: e, Path: path, Priv: priv, Owner: owner}}
	}
	switch {
	case coll == "guests":
		return deriveGuest(ev, base, id)
	case configCollections[coll] != "":
		vmid, err := strconv.Atoi(id)
		if err != nil || ev.Deleted {
			return nil // a deleted guest is reported from the index
		}
		r, _ := decode[guestRecord](ev.Value)
		e := base
		e.Type, e.VMID, e.GuestType, e.Node, e.Name, e.Digest = api.EventGuestConfig, vmid, configCollections[coll], r.Config.Node, r.Config.Name, store.Digest(ev.Value)
		return one(e, guestPath(vmid), "VM.Audit", "")
	case coll == "tasks":
		t, ok := decode[api.Task](ev.Value)
		if ev.Deleted || !ok {
			return nil // pruning old records is not news
		}
		prev, hadPrev := decode[api.Task](ev.Prev)
		e := base
		switch {
		case t.Status == api.TaskRunning && !hadPrev:
			e.Type = api.EventTaskStarted
		case t.Status != api.TaskRunning && (!hadPrev || prev.Status == api.TaskRunning):
			e.Type = api.EventTaskFinished
		default:
			return nil
		}
		e.Node, e.Status, e.Task = t.Node, t.Status, &t
		if n, err := strconv.Atoi(t.Target); err == nil {
			e.VMID = n
		}
		return one(e, "/nodes/"+t.Node, "Sys.Audit", t.User)
	case strings.HasPrefix(rel, "cluster/nodes/"), strings.HasPrefix(rel, "cluster/alive/"):
		if ev.Prev != nil && !ev.Deleted {
			return nil // a restart or a renewed lease, not a change of state
		}
		e := base
		e.Node = id
		alive := strings.HasPrefix(rel, "cluster/alive/")
		switch {
		case alive && ev.Deleted:
			e.Type = api.EventNodeOffline
		case alive:
			e.Type = api.EventNodeOnline
		case ev.Deleted:
			e.Type = api.EventNodeLeft
		default:
			e.Type = api.EventNodeJoined
		}
		return one(e, "/nodes/"+id, "Sys.Audit", "")
	case coll == "storage":
		e := base
		e.Type, e.Storage, e.Deleted, e.Digest = api.EventStorage, id, ev.Deleted, digestOf(ev)
		return one(e, "/storage/"+id, "Datastore.Audit", "")
	case coll == "access":
		e := base
		e.Type, e.Object, e.Deleted = api.EventAccess, rel, ev.Deleted
		return one(e, "/access", "Sys.Audit", "")
	}
	for _, p := range networkCollections {
		if strings.HasPrefix(rel, p) {
			e := base
			e.Type, e.Object, e.Deleted, e.Digest = api.EventNetwork, rel, ev.Deleted, digestOf(ev)
			if strings.HasPrefix(rel, "network/nodes/") { // a node's host interfaces
				e.Node = id
				return one(e, "/nodes/"+id, "Sys.Audit", "")
			}
			return one(e, "/sdn", "SDN.Audit", "")
		}
	}
	return nil
}

func digestOf(ev store.Event) string {
	if ev.Deleted {
		return ""
	}
	return store.Digest(ev.Value)
}

func deriveGuest(ev store.Event, base api.Event, id string) []*Item {
	vmid, err := strconv.Atoi(id)
	if err != nil {
		return nil
	}
	cur, _ := decode[guestMeta](ev.Value)
	prev, hadPrev := decode[guestMeta](ev.Prev)
	e := base
	e.VMID = vmid
	fill := func(m guestMeta) { e.GuestType, e.Node, e.Name = m.Type, m.Node, m.Name }
	var out []*Item
	add := func(e api.Event) { out = append(out, &Item{Event: e, Path: guestPath(vmid), Priv: "VM.Audit"}) }
	switch {
	case ev.Deleted:
		fill(prev)
		e.Type, e.Previous, e.Deleted = api.EventGuestDeleted, prev.Status, true
		add(e)
	case !hadPrev:
		fill(cur)
		e.Type, e.Status = api.EventGuestCreated, cur.Status
		add(e)
	case cur.Status != prev.Status:
		fill(cur)
		e.Type, e.Status, e.Previous = api.EventGuestState, cur.Status, prev.Status
		add(e)
	}
	return out
}
