package events

import (
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/store"
)

func enc(t *testing.T, v any) []byte {
	t.Helper()
	b, err := store.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Which store changes become which events, and which become none.
func TestDerive(t *testing.T) {
	p := store.Prefix
	running := api.Task{ID: "UPID:n1:1:1:qmstart:100:u@corral:", Node: "n1", Target: "100", User: "u@corral", Status: api.TaskRunning}
	failed := running
	failed.Status = api.TaskFailed
	g := guestMeta{VMID: 100, Type: api.GuestVM, Node: "n1", Status: "running"}
	renamed := g
	renamed.Name = "new"
	cases := []struct {
		name       string
		ev         store.Event
		typ, path  string
		owner      string
		wantNoEvts bool
	}{
		{name: "secret", ev: store.Event{Key: p + "secret/passwords/a", Value: []byte("x")}, wantNoEvts: true},
		{name: "outside keyspace", ev: store.Event{Key: "/other/x", Value: []byte("x")}, wantNoEvts: true},
		{name: "task started", ev: store.Event{Key: p + "tasks/" + running.ID, Value: enc(t, running)}, typ: api.EventTaskStarted, path: "/nodes/n1", owner: "u@corral"},
		{name: "task rewritten while running", ev: store.Event{Key: p + "tasks/x", Value: enc(t, running), Prev: enc(t, running)}, wantNoEvts: true},
		{name: "task failed", ev: store.Event{Key: p + "tasks/x", Value: enc(t, failed), Prev: enc(t, running)}, typ: api.EventTaskFinished, path: "/nodes/n1", owner: "u@corral"},
		{name: "task pruned", ev: store.Event{Key: p + "tasks/x", Deleted: true, Prev: enc(t, failed)}, wantNoEvts: true},
		{name: "guest renamed", ev: store.Event{Key: p + "guests/000000100", Value: enc(t, renamed), Prev: enc(t, g)}, wantNoEvts: true},
		{name: "vm config", ev: store.Event{Key: p + "vms/000000100", Value: enc(t, guestRecord{})}, typ: api.EventGuestConfig, path: "/vms/100"},
		{name: "container config", ev: store.Event{Key: p + "containers/000000101", Value: enc(t, guestRecord{})}, typ: api.EventGuestConfig, path: "/vms/101"},
		{name: "vm record deleted", ev: store.Event{Key: p + "vms/000000100", Deleted: true}, wantNoEvts: true},
		{name: "node joined", ev: store.Event{Key: p + "cluster/nodes/n2", Value: enc(t, map[string]string{})}, typ: api.EventNodeJoined, path: "/nodes/n2"},
		{name: "node restarted", ev: store.Event{Key: p + "cluster/nodes/n2", Value: enc(t, map[string]string{}), Prev: enc(t, map[string]string{})}, wantNoEvts: true},
		{name: "node left", ev: store.Event{Key: p + "cluster/nodes/n2", Deleted: true}, typ: api.EventNodeLeft, path: "/nodes/n2"},
		{name: "storage", ev: store.Event{Key: p + "storage/local", Value: enc(t, map[string]string{})}, typ: api.EventStorage, path: "/storage/local"},
		{name: "network", ev: store.Event{Key: p + "sdn/zones/z1", Value: enc(t, map[string]string{})}, typ: api.EventNetwork, path: "/sdn"},
		{name: "host interfaces", ev: store.Event{Key: p + "network/nodes/n1", Value: enc(t, map[string]string{})}, typ: api.EventNetwork, path: "/nodes/n1"},
		{name: "firewall", ev: store.Event{Key: p + "firewall/vms/100", Deleted: true}, typ: api.EventNetwork, path: "/sdn"},
		{name: "access", ev: store.Event{Key: p + "access/acl/acl", Value: enc(t, map[string]string{})}, typ: api.EventAccess, path: "/access"},
		{name: "metric servers", ev: store.Event{Key: p + "cluster/metrics/servers/g1", Value: enc(t, map[string]string{})}, wantNoEvts: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			items := Derive(c.ev, time.Unix(0, 0))
			if c.wantNoEvts {
				if len(items) != 0 {
					t.Fatalf("got %+v, want no events", items[0].Event)
				}
				return
			}
			if len(items) != 1 {
				t.Fatalf("got %d events, want 1", len(items))
			}
			it := items[0]
			if it.Event.Type != c.typ || it.Path != c.path || it.Owner != c.owner || it.Priv == "" {
				t.Fatalf("got %s on %s (%s) owner %q, want %s on %s owner %q", it.Event.Type, it.Path, it.Priv, it.Owner, c.typ, c.path, c.owner)
			}
		})
	}
}
