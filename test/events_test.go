package test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

// collector gathers a stream's events in the background.
type collector struct {
	mu   sync.Mutex
	evs  []api.Event
	err  error
	done chan struct{}
}

func collect(ctx context.Context, c *client.Client, o client.EventsOptions) *collector {
	col := &collector{done: make(chan struct{})}
	go func() {
		defer close(col.done)
		_, err := c.Events(ctx, o, func(e api.Event) (bool, error) {
			col.mu.Lock()
			col.evs = append(col.evs, e)
			col.mu.Unlock()
			return false, nil
		})
		col.mu.Lock()
		col.err = err
		col.mu.Unlock()
	}()
	return col
}

func (col *collector) snapshot() []api.Event {
	col.mu.Lock()
	defer col.mu.Unlock()
	return append([]api.Event(nil), col.evs...)
}

// waitFor waits until the stream holds events matching want in order
// (other events may come between them) and returns the events seen.
func (col *collector) waitFor(t *testing.T, within time.Duration, want ...string) []api.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		evs := col.snapshot()
		i := 0
		for _, e := range evs {
			if i < len(want) && describe(e) == want[i] {
				i++
			}
		}
		if i == len(want) {
			return evs
		}
		if time.Now().After(deadline) {
			var got []string
			for _, e := range evs {
				got = append(got, describe(e))
			}
			t.Fatalf("events: want in order %v\ngot %v (stream error: %v)", want, got, col.err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func describe(e api.Event) string {
	s := e.Type
	if e.VMID != 0 {
		s += fmt.Sprintf(" %d", e.VMID)
	}
	if e.Status != "" {
		s += " " + e.Status
	}
	return s
}

// The event stream of a real daemon: starting and stopping real VMs gives
// created/config/task/state events in order; a user with rights on one VM
// only sees that VM's events and her own tasks, never the other VM's; a
// client that reconnects with Last-Event-ID gets exactly what it missed.
func TestEventStreamVMLifecycleACLAndResume(t *testing.T) {
	needQEMU(t)
	n := StartNode(t)
	admin := n.Admin()
	ctx, cancel := context.WithCancel(bg)
	defer cancel()

	if _, err := admin.CreateUser(bg, api.UserCreate{UserID: "alice@corral", Password: "alice-password"}); err != nil {
		t.Fatal(err)
	}
	all := collect(ctx, admin, client.EventsOptions{})
	guestOnly := collect(ctx, admin, client.EventsOptions{Types: []string{"guest"}})

	for _, id := range []int{100, 101} {
		cr, err := createVM(t, admin, api.VMCreate{VMID: id, Name: fmt.Sprintf("ev%d", id), Memory: 64, CDROMs: []api.VMCDROM{{Volume: "none"}}})
		if err != nil {
			t.Fatal(err)
		}
		waitOK(t, admin, cr.Task)
	}
	if _, err := admin.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/vms/101", User: "alice@corral", Role: "VMPowerUser"}}}); err != nil {
		t.Fatal(err)
	}
	alice := n.Login("alice@corral", "alice-password")
	aliceEvs := collect(ctx, alice, client.EventsOptions{})
	time.Sleep(300 * time.Millisecond) // let the stream open before the changes it must see

	upid, err := vmAction(t, admin, 100, "start")
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, admin, upid)
	upid, err = vmAction(t, alice, 101, "start")
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, alice, upid)
	for _, id := range []int{100, 101} {
		upid, _ := vmAction(t, admin, id, "stop")
		waitOK(t, admin, upid)
	}

	evs := all.waitFor(t, 20*time.Second,
		"guest.created 100 stopped", "guest.created 101 stopped",
		"task.started 100 running", "guest.state 100 running", "task.finished 100 ok",
		"task.started 101 running", "guest.state 101 running", "task.finished 101 ok",
		"guest.state 100 stopped", "guest.state 101 stopped")
	for _, e := range evs {
		if e.Type == api.EventReset {
			t.Errorf("a reset in a healthy stream: %+v", e)
		}
	}
	guestOnly.waitFor(t, 5*time.Second, "guest.state 100 running", "guest.state 101 running", "guest.state 100 stopped")
	for _, e := range guestOnly.snapshot() {
		if !strings.HasPrefix(e.Type, "guest.") {
			t.Errorf("type=guest stream delivered %s", e.Type)
		}
	}
	aliceSeen := aliceEvs.waitFor(t, 10*time.Second, "task.started 101 running", "guest.state 101 running", "task.finished 101 ok", "guest.state 101 stopped")
	for _, e := range aliceSeen {
		if e.VMID == 100 || (e.Task != nil && e.Task.User != "alice@corral") || e.Type == api.EventAccess {
			t.Errorf("alice saw an event she has no right to: %+v", e)
		}
	}

	// Resume: a new stream from the ID of the first "running" event
	// replays everything after it, in the same order with the same IDs.
	var from int
	for i, e := range evs {
		if describe(e) == "guest.state 100 running" {
			from = i
			break
		}
	}
	var replay []api.Event
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	admin.Events(rctx, client.EventsOptions{LastEventID: evs[from].ID}, func(e api.Event) (bool, error) {
		replay = append(replay, e)
		return len(replay) == len(evs)-from-1, nil
	})
	if len(replay) != len(evs)-from-1 {
		t.Fatalf("resumed stream gave %d events, want %d", len(replay), len(evs)-from-1)
	}
	for i, e := range replay {
		if e.ID != evs[from+1+i].ID || e.Type != evs[from+1+i].Type {
			t.Fatalf("replay[%d] = %s %s, want %s %s", i, e.ID, e.Type, evs[from+1+i].ID, evs[from+1+i].Type)
		}
	}

	// Disabling alice ends her stream at once, with a reset event saying why.
	if _, err := admin.UpdateUser(bg, "alice@corral", api.UserUpdate{Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-aliceEvs.done:
		evs := aliceEvs.snapshot()
		if last := evs[len(evs)-1]; last.Type != api.EventReset || !strings.Contains(last.Status, "disabled") {
			t.Errorf("alice's stream ended with %+v", last)
		}
	case <-time.After(5 * time.Second):
		t.Error("a disabled user's event stream stayed open")
	}

	// Bad filters and IDs are 422s naming the field.
	for _, q := range []client.EventsOptions{{Types: []string{"bogus"}}, {LastEventID: "abc"}} {
		_, err := admin.Events(ctx, q, func(api.Event) (bool, error) { return true, nil })
		if client.StatusOf(err) != 422 {
			t.Errorf("events %+v: %v, want 422", q, err)
		}
	}
}

// The same stream over a websocket: one JSON event per text message.
func TestEventStreamWebsocket(t *testing.T) {
	n := StartNode(t)
	c := n.Admin()
	tk, _ := c.Ticket()
	u := strings.Replace(n.URL, "https://", "wss://", 1) + "/api/v1/events?type=storage"
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tk}},
	})
	if err != nil {
		t.Fatalf("events websocket: %v", err)
	}
	defer ws.CloseNow()
	time.Sleep(300 * time.Millisecond) // the server subscribes as it accepts
	pool := api.Storage{Storage: "wspool", Type: "dir", Content: []string{"iso"}, Path: t.TempDir()}
	if _, err := c.Do(bg, "POST", "/storage", nil, pool, nil); err != nil {
		t.Fatal(err)
	}
	typ, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var e api.Event
	if typ != websocket.MessageText || json.Unmarshal(b, &e) != nil || e.Type != api.EventStorage || e.Storage != "wspool" || e.ID == "" {
		t.Fatalf("websocket message %s: %s", typ, b)
	}
}
