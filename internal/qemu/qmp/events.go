package qmp

import (
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Event is an asynchronous QMP event such as {"event": "STOP", ...}.
type Event struct {
	Name string
	// Data is the event's "data" member, nil if it has none.
	Data json.RawMessage
	// Timestamp is when QEMU emitted the event (zero if QEMU did not say).
	Timestamp time.Time
}

// DecodeData unmarshals Data into v.
func (e Event) DecodeData(v any) error {
	if e.Data == nil {
		return nil
	}
	return json.Unmarshal(e.Data, v)
}

// Run-state events. A VM driver derives the VM's state from these, so the
// subscription queue keeps them in preference to all other events.
const (
	EventShutdown         = "SHUTDOWN"
	EventPowerdown        = "POWERDOWN"
	EventReset            = "RESET"
	EventStop             = "STOP"
	EventResume           = "RESUME"
	EventSuspend          = "SUSPEND"
	EventSuspendDisk      = "SUSPEND_DISK"
	EventWakeup           = "WAKEUP"
	EventGuestPanicked    = "GUEST_PANICKED"
	EventGuestCrashloaded = "GUEST_CRASHLOADED"
)

// IsLifecycleEvent reports whether name is one of the run-state events above.
func IsLifecycleEvent(name string) bool {
	switch name {
	case EventShutdown, EventPowerdown, EventReset, EventStop, EventResume,
		EventSuspend, EventSuspendDisk, EventWakeup, EventGuestPanicked, EventGuestCrashloaded:
		return true
	}
	return false
}

// Subscription receives events from a Monitor on C.
//
// Delivery never blocks the monitor's reader: each subscription has its own
// queue of WithEventBuffer entries (default 256), fed by the reader and
// drained into C by a goroutine. When the queue is full the oldest
// non-lifecycle event (queued or incoming) is dropped; lifecycle events
// (IsLifecycleEvent) are dropped, oldest first, only if the queue holds
// nothing else. We chose this over never dropping because an abandoned
// subscriber must not grow memory without bound, and over plain drop-oldest
// because losing a SHUTDOWN or STOP to a burst of e.g. BLOCK_JOB events
// would leave the driver with a wrong VM state. Dropped counts losses; a
// consumer that sees it grow should re-read the state (Monitor.Status).
//
// Events arrive on C in the order QEMU sent them (less any dropped). C is
// closed after the last queued event once the monitor has ended (so a
// SHUTDOWN sent just before QEMU exits is still delivered), or promptly
// after Close. Callers must Close subscriptions they stop reading, or the
// delivery goroutine lingers until the monitor ends.
type Subscription struct {
	C <-chan Event

	c       chan Event
	m       *Monitor
	names   map[string]bool // nil: all events
	limit   int
	dropped atomic.Uint64

	mu    sync.Mutex
	queue []Event
	ended bool
	wake  chan struct{} // capacity 1: "queue or ended changed"

	closeOnce sync.Once
	closed    chan struct{}
}

// Subscribe returns a subscription to the events named (all events if none
// are named). Events emitted before Subscribe are not replayed. On a monitor
// that has already ended, C is closed at once.
func (m *Monitor) Subscribe(names ...string) *Subscription {
	c := make(chan Event)
	s := &Subscription{
		C:      c,
		c:      c,
		m:      m,
		limit:  m.eventBuf,
		wake:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	if len(names) > 0 {
		s.names = make(map[string]bool, len(names))
		for _, n := range names {
			s.names[n] = true
		}
	}
	m.mu.Lock()
	if m.subs == nil {
		s.ended = true
	} else {
		m.subs[s] = struct{}{}
	}
	m.mu.Unlock()
	go s.run()
	return s
}

// Dropped is the number of events this subscription has discarded because
// its queue was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close stops delivery and closes C; queued events are discarded.
// It is idempotent.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() {
		s.m.mu.Lock()
		delete(s.m.subs, s) // no-op once the monitor ended (subs is nil)
		s.m.mu.Unlock()
		close(s.closed)
	})
}

// push is called by the reader with the monitor's mu held; it must not block.
func (s *Subscription) push(ev Event) {
	if s.names != nil && !s.names[ev.Name] {
		return
	}
	s.mu.Lock()
	if len(s.queue) >= s.limit {
		s.dropped.Add(1)
		victim := slices.IndexFunc(s.queue, func(q Event) bool { return !IsLifecycleEvent(q.Name) })
		if victim < 0 && !IsLifecycleEvent(ev.Name) {
			s.mu.Unlock() // the incoming event is the oldest non-lifecycle one
			s.m.log.Debug("qmp: subscriber queue full, dropping event", "event", ev.Name)
			return
		}
		victim = max(victim, 0) // all queued events are lifecycle ones: drop the oldest
		s.m.log.Debug("qmp: subscriber queue full, dropping event", "event", s.queue[victim].Name)
		s.queue = slices.Delete(s.queue, victim, victim+1)
	}
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	s.signal()
}

// end marks the monitor as gone: run drains what is queued, then closes C.
func (s *Subscription) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (s *Subscription) run() {
	defer close(s.c)
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			ended := s.ended
			s.mu.Unlock()
			if ended {
				return
			}
			select {
			case <-s.wake:
				continue
			case <-s.closed:
				return
			}
		}
		ev := s.queue[0]
		s.queue[0] = Event{} // release Data for the GC
		s.queue = s.queue[1:]
		s.mu.Unlock()
		select {
		case s.c <- ev:
		case <-s.closed:
			return
		}
	}
}
