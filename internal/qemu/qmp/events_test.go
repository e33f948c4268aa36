package qmp

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func eventNames(evs []Event) []string {
	names := make([]string, len(evs))
	for i, e := range evs {
		names[i] = e.Name
	}
	return names
}

// TestDropPolicy pushes into a subscription whose delivery goroutine is not
// running, so the queue contents are exact.
func TestDropPolicy(t *testing.T) {
	tests := []struct {
		name        string
		filter      []string
		push        string // space-separated event names
		wantQueue   string
		wantDropped uint64
	}{
		{"fits", nil, "A STOP B", "A STOP B", 0},
		{"oldest plain event goes", nil, "A B C D", "B C D", 1},
		{"lifecycle events are kept", nil, "STOP A B C", "STOP B C", 1},
		{"incoming plain event dropped when queue is all lifecycle", nil, "STOP RESUME SHUTDOWN X", "STOP RESUME SHUTDOWN", 1},
		{"oldest lifecycle event goes when there is nothing else", nil, "STOP RESUME RESET SHUTDOWN", "RESUME RESET SHUTDOWN", 1},
		{"mixed", nil, "A STOP B RESUME C", "STOP RESUME C", 2},
		{"filter", []string{"STOP", "B"}, "A STOP B RESUME C", "STOP B", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Subscription{m: &Monitor{log: slog.New(slog.DiscardHandler)}, limit: 3, wake: make(chan struct{}, 1)}
			if tc.filter != nil {
				s.names = map[string]bool{}
				for _, n := range tc.filter {
					s.names[n] = true
				}
			}
			for _, n := range strings.Fields(tc.push) {
				s.push(Event{Name: n})
			}
			if got := eventNames(s.queue); !slices.Equal(got, strings.Fields(tc.wantQueue)) {
				t.Errorf("queue = %v, want %v", got, tc.wantQueue)
			}
			if s.Dropped() != tc.wantDropped {
				t.Errorf("Dropped = %d, want %d", s.Dropped(), tc.wantDropped)
			}
		})
	}
}

// TestSlowSubscriber: a subscriber that does not read while 100 events
// arrive must not stop the reply behind them from being delivered, and
// must not lose the SHUTDOWN among them.
func TestSlowSubscriber(t *testing.T) {
	const events = 100
	m, f := startFake(t, WithEventBuffer(4))
	slow := m.Subscribe()
	defer slow.Close()
	// A second subscriber with its own queue still gets SHUTDOWN.
	other := m.Subscribe(EventShutdown)
	defer other.Close()

	go func() {
		c := f.recv()
		for i := range events {
			f.send(fmt.Sprintf(`{"event": "TICK", "data": {"i": %d}}`, i))
			if i == events/2 {
				f.send(`{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}`)
			}
		}
		f.reply(c.ID, "done")
		f.conn.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got string
	if err := m.Execute(ctx, "x", nil, &got); err != nil || got != "done" {
		t.Fatalf("Execute = %q, %v", got, err)
	}
	<-m.Done()
	if ev, ok := <-other.C; !ok || ev.Name != EventShutdown {
		t.Errorf("filtered subscriber got %+v, %v; want SHUTDOWN", ev, ok)
	}

	var names []string
	for ev := range slow.C {
		names = append(names, ev.Name)
	}
	if !slices.Contains(names, EventShutdown) {
		t.Errorf("slow subscriber lost SHUTDOWN; got %v", names)
	}
	// 4 queued plus at most one held by the delivery goroutine.
	if len(names) < 4 || len(names) > 5 || uint64(len(names))+slow.Dropped() != events+1 {
		t.Errorf("slow subscriber got %d events and dropped %d of %d", len(names), slow.Dropped(), events+1)
	}
}

func TestSubscriptionClose(t *testing.T) {
	m, f := startFake(t)
	sub := m.Subscribe()
	go func() {
		c := f.recv()
		f.send(`{"event": "A"}`, `{"event": "B"}`)
		f.reply(c.ID, 0)
	}()
	if err := m.Execute(context.Background(), "x", nil, nil); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	sub.Close() // idempotent
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-sub.C:
			if !ok {
				// Closed (a queued event may or may not have slipped out first).
				m.mu.Lock()
				_, still := m.subs[sub]
				m.mu.Unlock()
				if still {
					t.Fatal("closed subscription still registered")
				}
				if m.Err() != nil {
					t.Fatalf("monitor affected: %v", m.Err())
				}
				return
			}
		case <-deadline:
			t.Fatal("C not closed after Close")
		}
	}
}
