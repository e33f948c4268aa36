package client

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"

	"github.com/corral-project/corral/api"
)

// EventsOptions select what GET /events streams.
type EventsOptions struct {
	Types       []string // event types or families ("guest", "task.finished")
	VMID        int      // only this guest's events
	LastEventID string   // resume after this event
}

// Events streams cluster events to fn until ctx ends, fn returns done or
// an error, or the server ends the stream (it does when the client is too
// slow, or shuts down). It returns the ID of the last event received, so a
// caller can resume with LastEventID and miss nothing still in the
// server's window. A "reset" event means events were missed: reload state.
func (c *Client) Events(ctx context.Context, o EventsOptions, fn func(api.Event) (done bool, err error)) (string, error) {
	q := url.Values{}
	for _, t := range o.Types {
		q.Add("type", t)
	}
	if o.VMID != 0 {
		q.Set("vmid", strconv.Itoa(o.VMID))
	}
	opts := []RequestOption{WithHeader("Accept", "text/event-stream")}
	if o.LastEventID != "" {
		opts = append(opts, WithHeader("Last-Event-ID", o.LastEventID))
	}
	last := o.LastEventID
	resp, err := c.stream(ctx, http.MethodGet, "/events", q, opts...)
	if err != nil {
		return last, fmt.Errorf("events: %w", err)
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return last, fmt.Errorf("events: server answered %q, not an event stream", mt)
	}
	err = readSSE(resp.Body, func(ev sseEvent) (bool, error) {
		var e api.Event
		if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
			return false, fmt.Errorf("decode event: %w", err)
		}
		if e.ID != "" {
			last = e.ID
		}
		return fn(e)
	})
	if err != nil && ctx.Err() != nil {
		return last, ctx.Err()
	}
	return last, err
}
