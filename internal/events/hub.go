// Package events turns the cluster store's watch into a stream of typed
// events (guest state and config, tasks, nodes, storage, network, access)
// and fans it out to subscribers. Every node runs its own Hub over the same
// replicated store, so every node sees every event in the same order, and
// event IDs (store revision + index) mean the same on every node.
//
// The Hub keeps a bounded window of recent events so a client that
// reconnects with its Last-Event-ID gets what it missed. Access filtering
// is the caller's business: each Item says what privilege on which ACL path
// (or which owning user) makes it visible.
package events

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/store"
)

// Item is one event plus who may see it. A reset event (Path empty) is
// for everyone.
type Item struct {
	Event api.Event
	Rev   int64 // store revision
	Idx   int   // index among the events of that revision
	// Visible to callers holding Priv on Path, or to Owner (task owners).
	Path  string
	Priv  string
	Owner string
}

// After reports whether it comes after the position (rev, idx).
func (it *Item) After(rev int64, idx int) bool {
	return it.Rev > rev || (it.Rev == rev && it.Idx > idx)
}

// ParseID splits an event ID "<rev>.<idx>" (a bare "<rev>" means after all
// of that revision's events).
func ParseID(id string) (rev int64, idx int, err error) {
	r, i, found := strings.Cut(strings.TrimSpace(id), ".")
	rev, err = strconv.ParseInt(r, 10, 64)
	if err != nil || rev < 0 {
		return 0, 0, fmt.Errorf("event id %q: want <revision>.<index>", id)
	}
	if !found {
		return rev, 1 << 30, nil
	}
	idx, err = strconv.Atoi(i)
	if err != nil || idx < 0 {
		return 0, 0, fmt.Errorf("event id %q: want <revision>.<index>", id)
	}
	return rev, idx, nil
}

// Source is what the Hub reads: the store's watch fan-out and its revision.
type Source interface {
	Subscribe(buffer int) (<-chan store.Event, func())
	Rev() int64
}

// Options tune a Hub; zero values take the defaults.
type Options struct {
	Window    int // events kept for resumption (default 10,000)
	SubBuffer int // per-subscriber queue before it is cut off as too slow (default 1,024)
	MaxSubs   int // subscriptions at once (default 20,000): each holds a goroutine and a queue
	Now       func() time.Time
}

// Hub derives events from the store and fans them out.
type Hub struct {
	log  *slog.Logger
	opts Options

	mu     sync.Mutex
	ring   []*Item // circular window, oldest at head
	head   int
	n      int
	start  int64 // the revision the hub started at: nothing before it is known
	lost   Item  // position of the newest event no longer in the window
	subs   map[*Sub]struct{}
	closed bool

	unsub     func()
	done      chan struct{}
	closeOnce sync.Once
}

// Sub is one subscriber. C is closed when the subscriber fell too far
// behind (Lagged reports true) or the hub closed; a client then reconnects
// with its last ID and gets the rest from the window.
type Sub struct {
	C      <-chan *Item
	c      chan *Item
	h      *Hub
	lagged bool
}

// Lagged reports whether the hub cut this subscriber off for being slow.
func (s *Sub) Lagged() bool {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.lagged
}

// Close unsubscribes.
func (s *Sub) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if _, ok := s.h.subs[s]; ok {
		delete(s.h.subs, s)
		close(s.c)
	}
}

// New starts a hub over src.
func New(src Source, log *slog.Logger, opts Options) *Hub {
	if opts.Window <= 0 {
		opts.Window = 10000
	}
	if opts.SubBuffer <= 0 {
		opts.SubBuffer = 1024
	}
	if opts.MaxSubs <= 0 {
		opts.MaxSubs = 20000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	// Subscribe before reading the revision: nothing falls in between.
	ch, unsub := src.Subscribe(65536)
	start := src.Rev()
	h := &Hub{log: log, opts: opts, ring: make([]*Item, opts.Window), start: start, lost: Item{Rev: start, Idx: 1 << 30},
		subs: map[*Sub]struct{}{}, unsub: unsub, done: make(chan struct{})}
	go h.run(ch)
	return h
}

// Close stops the hub and ends every subscription (so long-lived streams
// don't hold up an HTTP server's shutdown). It may be called twice.
func (h *Hub) Close() {
	h.closeOnce.Do(h.unsub)
	<-h.done
}

func (h *Hub) run(ch <-chan store.Event) {
	defer close(h.done)
	var (
		rev   int64
		idx   int
		batch []*Item
	)
	flush := func() {
		if len(batch) > 0 {
			h.Publish(batch...)
			batch = batch[:0]
		}
	}
	for {
		var ev store.Event
		var ok bool
		if len(batch) == 0 {
			ev, ok = <-ch
		} else {
			// Publish a revision's events together, but never hold them
			// back waiting for the next change.
			select {
			case ev, ok = <-ch:
			default:
				flush()
				continue
			}
		}
		if !ok {
			flush()
			h.mu.Lock()
			h.closed = true
			for s := range h.subs {
				delete(h.subs, s)
				close(s.c)
			}
			h.mu.Unlock()
			return
		}
		if ev.Rev <= h.start {
			continue
		}
		if ev.Rev != rev {
			// Every store write is one revision and all of them are under
			// the watched prefix, so a revision skipped means changes were
			// lost (the store dropped them or resynced after a broken
			// watch): tell subscribers to reload, and resuming clients too.
			if seen := max(rev, h.start); ev.Rev > seen+1 {
				flush()
				h.markLost(ev.Rev - 1)
				h.Publish(&Item{Rev: ev.Rev, Idx: 0, Event: api.Event{ID: fmt.Sprintf("%d.0", ev.Rev), Type: api.EventReset, Time: h.opts.Now().UTC()}})
				rev, idx = ev.Rev, 1
			} else {
				rev, idx = ev.Rev, 0
			}
		}
		for _, it := range Derive(ev, h.opts.Now()) {
			it.Rev, it.Idx = ev.Rev, idx
			it.Event.ID = fmt.Sprintf("%d.%d", ev.Rev, idx)
			idx++
			batch = append(batch, it)
		}
	}
}

// markLost records that events up to revision rev may be missing.
func (h *Hub) markLost(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.raiseLost(Item{Rev: rev, Idx: 1 << 30})
}

// raiseLost moves the lost position forward, never back.
func (h *Hub) raiseLost(it Item) {
	if it.After(h.lost.Rev, h.lost.Idx) {
		h.lost = Item{Rev: it.Rev, Idx: it.Idx}
	}
}

// Publish appends items to the window and delivers them to subscribers.
// Items must come in increasing (Rev, Idx) order. A subscriber whose queue
// is full is cut off rather than slowing everyone else down.
func (h *Hub) Publish(items ...*Item) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, it := range items {
		if h.n < len(h.ring) {
			h.ring[(h.head+h.n)%len(h.ring)] = it
			h.n++
		} else {
			h.raiseLost(*h.ring[h.head])
			h.ring[h.head] = it
			h.head = (h.head + 1) % len(h.ring)
		}
	}
	for s := range h.subs {
		for _, it := range items {
			select {
			case s.c <- it:
			default:
				s.lagged = true
				delete(h.subs, s)
				close(s.c)
			}
			if s.lagged {
				break
			}
		}
	}
}

// ErrTooMany means the hub has MaxSubs subscriptions already.
var ErrTooMany = errors.New("events: too many subscribers")

// Subscribe returns the events after the position lastID (empty: none, only
// new events) still in the window, and a subscription for what follows,
// with nothing lost or repeated in between. gap is true when lastID is
// older than the window: events were missed and the client must reload.
func (h *Hub) Subscribe(lastID string) (backlog []*Item, sub *Sub, gap bool, err error) {
	var rev int64
	var idx int
	if lastID != "" {
		if rev, idx, err = ParseID(lastID); err != nil {
			return nil, nil, false, err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= h.opts.MaxSubs {
		return nil, nil, false, ErrTooMany
	}
	if lastID != "" {
		// The client missed something if the newest event no longer
		// available comes after its position.
		gap = h.lost.After(rev, idx)
		for i := 0; i < h.n; i++ {
			it := h.ring[(h.head+i)%len(h.ring)]
			if it.After(rev, idx) {
				backlog = append(backlog, it)
			}
		}
	}
	c := make(chan *Item, h.opts.SubBuffer)
	sub = &Sub{C: c, c: c, h: h}
	if h.closed {
		close(c)
	} else {
		h.subs[sub] = struct{}{}
	}
	return backlog, sub, gap, nil
}

// Subscribers is the number of live subscriptions.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
