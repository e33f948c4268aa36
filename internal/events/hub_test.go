package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/store"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Config{Name: "n1", DataDir: t.TempDir(),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), PeerURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func next(t *testing.T, s *Sub) *Item {
	t.Helper()
	select {
	case it, ok := <-s.C:
		if !ok {
			t.Fatal("subscription closed")
		}
		return it
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return nil
}

// The real store's watch drives the hub: a guest's life (created, started,
// config changed, stopped, deleted), a task and a node come out as typed
// events in order, with the ACL path that guards each.
func TestHubDerivesEventsFromStoreWatch(t *testing.T) {
	st := openStore(t)
	h := New(st, nil, Options{})
	defer h.Close()
	_, sub, gap, err := h.Subscribe("")
	if err != nil || gap {
		t.Fatal(err, gap)
	}
	defer sub.Close()
	ctx := context.Background()
	guests := store.NewCollection[guestMeta](st, "guests")
	vms := store.NewCollection[guestRecord](st, "vms")
	tasks := store.NewCollection[api.Task](st, "tasks")
	alive := store.NewCollection[map[string]string](st, "cluster/alive")
	secret := store.NewCollection[map[string]string](st, "secret/x")

	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	setStatus := func(s string) {
		must(guests.Update(ctx, "000000100", "", func(m *guestMeta) error { m.Status = s; return nil }))
	}
	must(guests.Create(ctx, "000000100", guestMeta{VMID: 100, Type: api.GuestVM, Node: "n1", Name: "web", Status: "stopped"}))
	var rec guestRecord
	rec.Config.Node, rec.Config.Name = "n1", "web"
	must(vms.Create(ctx, "000000100", rec))
	must(secret.Create(ctx, "k", map[string]string{"a": "b"})) // never an event
	up := api.Task{ID: "UPID:n1:1:1:qmstart:100:u@corral:", Node: "n1", Type: "qmstart", Target: "100", User: "u@corral", Status: api.TaskRunning}
	must(tasks.Create(ctx, up.ID, up))
	setStatus("running")
	must(tasks.Update(ctx, up.ID, "", func(t *api.Task) error { t.Status = api.TaskOK; return nil }))
	must(guests.Update(ctx, "000000100", "", func(m *guestMeta) error { m.Name = "web2"; return nil })) // not a state change
	setStatus("stopped")
	must(alive.Create(ctx, "n2", map[string]string{}))
	must(nil, alive.Delete(ctx, "n2", ""))
	must(nil, guests.Delete(ctx, "000000100", ""))

	want := []struct{ typ, status, path string }{
		{api.EventGuestCreated, "stopped", "/vms/100"},
		{api.EventGuestConfig, "", "/vms/100"},
		{api.EventTaskStarted, "running", "/nodes/n1"},
		{api.EventGuestState, "running", "/vms/100"},
		{api.EventTaskFinished, "ok", "/nodes/n1"},
		{api.EventGuestState, "stopped", "/vms/100"},
		{api.EventNodeOnline, "", "/nodes/n2"},
		{api.EventNodeOffline, "", "/nodes/n2"},
		{api.EventGuestDeleted, "", "/vms/100"},
	}
	var ids []string
	for i, w := range want {
		it := next(t, sub)
		if it.Event.Type != w.typ || it.Event.Status != w.status || it.Path != w.path {
			t.Fatalf("event %d: got %s status=%q path=%s, want %+v", i, it.Event.Type, it.Event.Status, it.Path, w)
		}
		ids = append(ids, it.Event.ID)
	}
	select {
	case it := <-sub.C:
		t.Fatalf("unexpected event %+v", it.Event)
	case <-time.After(200 * time.Millisecond):
	}

	// Resuming after the third event replays exactly the rest, in order.
	back, sub2, gap, err := h.Subscribe(ids[2])
	if err != nil || gap {
		t.Fatal(err, gap)
	}
	sub2.Close()
	if len(back) != len(ids)-3 {
		t.Fatalf("backlog has %d events, want %d", len(back), len(ids)-3)
	}
	for i, it := range back {
		if it.Event.ID != ids[i+3] {
			t.Fatalf("backlog[%d] = %s, want %s", i, it.Event.ID, ids[i+3])
		}
	}
	// An ID from before the hub started is a gap: the client must reload.
	if _, s3, gap, _ := h.Subscribe("1.0"); !gap {
		t.Error("resuming from revision 1 reported no gap")
	} else {
		s3.Close()
	}
	if _, _, _, err := h.Subscribe("x.1"); err == nil {
		t.Error("malformed Last-Event-ID accepted")
	}
}

type nopSource struct{ ch chan store.Event }

func (s nopSource) Subscribe(int) (<-chan store.Event, func()) { return s.ch, func() { close(s.ch) } }
func (nopSource) Rev() int64                                   { return 10 }

// The window is bounded: resuming from an event that fell out of it is a
// gap; from one still in it, exact. A subscriber that can't keep up is cut
// off (and can resume) instead of blocking the others.
func TestHubWindowAndSlowSubscriber(t *testing.T) {
	h := New(nopSource{ch: make(chan store.Event)}, nil, Options{Window: 5, SubBuffer: 3})
	defer h.Close()
	_, slow, _, _ := h.Subscribe("")
	for i := 0; i < 8; i++ {
		h.Publish(&Item{Rev: int64(11 + i), Event: api.Event{ID: fmt.Sprintf("%d.0", 11+i)}})
	}
	for _, tc := range []struct {
		last    string
		gap     bool
		backlog int
	}{
		{"10", true, 5},    // hub start: but 11..13 were evicted
		{"13.0", false, 5}, // the newest evicted one: nothing missed
		{"12.0", true, 5},
		{"16.0", false, 2},
		{"18.0", false, 0},
	} {
		back, s, gap, err := h.Subscribe(tc.last)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if gap != tc.gap || len(back) != tc.backlog {
			t.Errorf("resume from %s: gap=%v backlog=%d, want %v %d", tc.last, gap, len(back), tc.gap, tc.backlog)
		}
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != 3 || !slow.Lagged() {
		t.Errorf("slow subscriber got %d events, lagged=%v; want 3 and cut off", n, slow.Lagged())
	}

	// Subscriptions are bounded; closing one frees its place.
	h2 := New(nopSource{ch: make(chan store.Event)}, nil, Options{MaxSubs: 1})
	defer h2.Close()
	_, s1, _, err := h2.Subscribe("")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := h2.Subscribe(""); !errors.Is(err, ErrTooMany) {
		t.Errorf("second subscription over the limit: %v", err)
	}
	s1.Close()
	if _, s2, _, err := h2.Subscribe(""); err != nil {
		t.Errorf("subscription after one closed: %v", err)
	} else {
		s2.Close()
	}
}

type chanSource struct {
	ch  chan store.Event
	rev int64
}

func (s chanSource) Subscribe(int) (<-chan store.Event, func()) { return s.ch, func() { close(s.ch) } }
func (s chanSource) Rev() int64                                 { return s.rev }

// A revision missing from the watch means lost changes: live subscribers
// get a reset, and so does a client resuming from before the hole.
func TestHubSkippedRevisionIsAReset(t *testing.T) {
	src := chanSource{ch: make(chan store.Event), rev: 10}
	h := New(src, nil, Options{})
	defer h.Close()
	_, sub, _, _ := h.Subscribe("")
	defer sub.Close()
	ev := func(rev int64) store.Event {
		return store.Event{Key: store.Prefix + "storage/p", Value: []byte(`{"schema":1,"data":{}}`), Rev: rev}
	}
	src.ch <- ev(11)
	src.ch <- ev(12)
	src.ch <- ev(15) // 13 and 14 never arrived
	var got []string
	for len(got) < 4 {
		it := next(t, sub)
		got = append(got, it.Event.ID+" "+it.Event.Type)
	}
	want := []string{"11.0 storage.changed", "12.0 storage.changed", "15.0 reset", "15.1 storage.changed"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	for _, tc := range []struct {
		last string
		gap  bool
	}{{"12.0", true}, {"15.0", false}, {"11.0", true}} {
		_, s, gap, _ := h.Subscribe(tc.last)
		s.Close()
		if gap != tc.gap {
			t.Errorf("resume from %s: gap %v, want %v", tc.last, gap, tc.gap)
		}
	}
}
