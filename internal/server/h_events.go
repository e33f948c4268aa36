package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/events"
)

// eventTypes are the types a client may filter on; a prefix before the dot
// ("guest") selects the whole family.
var eventTypes = []string{
	api.EventGuestCreated, api.EventGuestDeleted, api.EventGuestState, api.EventGuestConfig,
	api.EventTaskStarted, api.EventTaskFinished, api.EventNodeJoined, api.EventNodeLeft,
	api.EventNodeOnline, api.EventNodeOffline, api.EventStorage, api.EventNetwork, api.EventAccess,
}

type eventsIn struct {
	LastEventID string   `header:"Last-Event-ID" maxLength:"40" doc:"resume after this event"`
	After       string   `query:"last_event_id" maxLength:"40" doc:"the same as the Last-Event-ID header, for clients that can't set it"`
	Types       []string `query:"type" doc:"only these types (or families: guest, task, node); repeat or comma-separate"`
	VMID        int      `query:"vmid" minimum:"0" maximum:"999999999" doc:"only events about this guest"`
}

// eventHeartbeat keeps proxies and clients from timing out an idle stream.
var eventHeartbeat = 15 * time.Second

func (s *Server) eventRoutes() {
	register(s, huma.Operation{OperationID: "events", Method: "GET", Path: "/events",
		Summary: "Stream of cluster events (Server-Sent Events, or a websocket of JSON messages)",
		Description: "Typed events derived from the cluster store, filtered to what the caller may see. " +
			"Each SSE event has `id: <revision>.<index>`; reconnect with `Last-Event-ID` (or `?last_event_id=`) to get " +
			"what was missed while it is still in the window. If it is not, the stream starts with a `reset` event: reload state. " +
			"With `Upgrade: websocket` each event is one JSON text message instead.",
		Tags: []string{"events"}},
		Perm{Authenticated: true}, func(ctx context.Context, in *eventsIn) (*huma.StreamResponse, error) {
			if s.Events == nil {
				return nil, errs.Conflict("the event stream is not enabled on this node")
			}
			match, err := typeFilter(in.Types)
			if err != nil {
				return nil, err
			}
			last := in.LastEventID
			if last == "" {
				last = in.After
			}
			backlog, sub, gap, err := s.Events.Subscribe(last)
			if errors.Is(err, events.ErrTooMany) {
				return nil, errs.TooMany("too many event streams open on this node; retry later")
			}
			if err != nil {
				return nil, errs.Invalid("Last-Event-ID", "%v", err)
			}
			c := *caller(ctx) // the stream's own copy: its evaluator is replaced as ACLs change
			_, peerRoot := ctx.Value(peerKey{}).(PeerUID)
			st := &eventStream{s: s, c: &c, match: match, vmid: in.VMID, refresh: !peerRoot}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				defer sub.Close()
				r, w := humago.Unwrap(hctx)
				if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
					st.websocket(r.Context(), w, r, backlog, sub, gap)
					return
				}
				st.sse(r.Context(), w, backlog, sub, gap)
			}}, nil
		})
}

func typeFilter(types []string) (func(string) bool, error) {
	var want []string
	for _, t := range types {
		for _, p := range strings.Split(t, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			ok := slices.Contains(eventTypes, p) || p == api.EventReset
			for _, et := range eventTypes {
				ok = ok || strings.HasPrefix(et, p+".")
			}
			if !ok {
				return nil, errs.Invalid("type", "unknown event type %q (known: %s, or a family such as guest)", p, strings.Join(eventTypes, ", "))
			}
			want = append(want, p)
		}
	}
	return func(typ string) bool {
		if len(want) == 0 || typ == api.EventReset {
			return true
		}
		for _, w := range want {
			if typ == w || strings.HasPrefix(typ, w+".") {
				return true
			}
		}
		return false
	}, nil
}

// eventStream is one client's view of the hub.
type eventStream struct {
	s       *Server
	c       *Caller
	match   func(string) bool
	vmid    int
	refresh bool // rebuild the evaluator when access data changes
	ended   bool // the caller's credentials no longer hold: end the stream
}

// visible applies the caller's filters and the ACL. When users, groups or
// ACLs change the evaluator is rebuilt, so a revoked right stops events at
// once and a granted one starts them.
func (e *eventStream) visible(it *events.Item) bool {
	if it.Event.Type == api.EventAccess && e.refresh {
		e.c.Ev = e.s.Access.Evaluator(e.c.Principal)
		if !e.stillValid() {
			e.ended = true
			return false
		}
	}
	if it.Event.Type == api.EventReset {
		return true // changes were lost: every client must reload
	}
	if !e.match(it.Event.Type) || (e.vmid != 0 && it.Event.VMID != e.vmid) {
		return false
	}
	if it.Owner != "" && (it.Owner == e.c.String() || it.Owner == e.c.User) {
		return true
	}
	return e.c.Ev.Has(it.Path, it.Priv)
}

// stillValid re-checks a ticket caller's credentials: a stream must not
// outlive the ticket it was opened with, nor a disabled or deleted user.
// (Token callers lose their events through the ACL refresh instead.)
func (e *eventStream) stillValid() bool {
	if e.c.Ticket == "" {
		return true
	}
	user, _, err := e.s.Access.Tickets.Verify(e.c.Ticket)
	return err == nil && e.s.Access.CheckUser(user) == nil
}

func resetEvent() api.Event { return api.Event{Type: api.EventReset, Time: now()} }

func expiredEvent() api.Event {
	return api.Event{Type: api.EventReset, Time: now(), Status: "credentials expired or user disabled"}
}

func (e *eventStream) sse(ctx context.Context, w http.ResponseWriter, backlog []*events.Item, sub *events.Sub, gap bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(ev api.Event) error {
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if ev.ID != "" {
			if _, err := fmt.Fprintf(w, "id: %s\n", ev.ID); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data)
		return err
	}
	if gap {
		write(resetEvent())
	}
	for _, it := range backlog {
		if e.visible(it) {
			if write(it.Event) != nil {
				return
			}
		}
	}
	// A comment right away tells the client the stream is open even when
	// nothing happens for a while.
	if _, err := fmt.Fprint(w, ": ok\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(eventHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if !e.stillValid() {
				write(expiredEvent())
				rc.Flush()
				return
			}
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
		case it, ok := <-sub.C:
			if !ok {
				return // cut off as too slow, or shutting down: the client resumes
			}
			if !e.visible(it) {
				if e.ended {
					write(expiredEvent())
					rc.Flush()
					return
				}
				continue
			}
			if write(it.Event) != nil {
				return
			}
			// Drain what is already queued before flushing once.
			for more := true; more; {
				select {
				case it, ok := <-sub.C:
					if !ok {
						rc.Flush()
						return
					}
					if e.visible(it) && write(it.Event) != nil {
						return
					}
					if e.ended {
						write(expiredEvent())
						rc.Flush()
						return
					}
				default:
					more = false
				}
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func (e *eventStream) websocket(ctx context.Context, w http.ResponseWriter, r *http.Request, backlog []*events.Item, sub *events.Sub, gap bool) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ctx = ws.CloseRead(ctx) // we never read; this notices the client closing
	write := func(ev api.Event) error {
		data, _ := json.Marshal(ev)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return ws.Write(wctx, websocket.MessageText, data)
	}
	if gap {
		write(resetEvent())
	}
	for _, it := range backlog {
		if e.visible(it) && write(it.Event) != nil {
			return
		}
	}
	tick := time.NewTicker(eventHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if !e.stillValid() {
				ws.Close(websocket.StatusPolicyViolation, "credentials expired")
				return
			}
		case it, ok := <-sub.C:
			if !ok {
				ws.Close(websocket.StatusTryAgainLater, "too slow or shutting down; resume with last_event_id")
				return
			}
			if e.visible(it) && write(it.Event) != nil {
				return
			}
			if e.ended {
				ws.Close(websocket.StatusPolicyViolation, "credentials expired or user disabled")
				return
			}
		}
	}
}
