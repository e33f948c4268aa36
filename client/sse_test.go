package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
)

func TestReadSSE(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []sseEvent
	}{
		{
			name:   "named events",
			stream: "event: line\ndata: {\"n\":1,\"t\":\"a\"}\n\nevent: end\ndata: {}\n\n",
			want:   []sseEvent{{Event: "line", Data: `{"n":1,"t":"a"}`}, {Event: "end", Data: "{}"}},
		},
		{
			name:   "default event name, id and multi-line data",
			stream: "id: 7\ndata: one\ndata: two\n\n",
			want:   []sseEvent{{Event: "message", Data: "one\ntwo", ID: "7"}},
		},
		{
			name:   "comments, retry and CRLF are tolerated",
			stream: ": keep-alive\r\nretry: 1000\r\nevent: line\r\ndata:no-space\r\n\r\n",
			want:   []sseEvent{{Event: "line", Data: "no-space"}},
		},
		{
			name:   "only the first space after the colon is dropped",
			stream: "data:  two spaces\n\n",
			want:   []sseEvent{{Event: "message", Data: " two spaces"}},
		},
		{
			name:   "event without data is not dispatched",
			stream: "event: ping\n\nevent: line\ndata: x\n\n",
			want:   []sseEvent{{Event: "line", Data: "x"}},
		},
		{
			name:   "final event without blank line still counts",
			stream: "event: end\ndata: {\"status\":\"ok\"}",
			want:   []sseEvent{{Event: "end", Data: `{"status":"ok"}`}},
		},
		{
			name:   "empty stream",
			stream: "",
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []sseEvent
			err := readSSE(strings.NewReader(tt.stream), func(ev sseEvent) (bool, error) {
				got = append(got, ev)
				return false, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("events = %#v\nwant     %#v", got, tt.want)
			}
		})
	}

	t.Run("stops when the callback is done or fails", func(t *testing.T) {
		stream := "data: 1\n\ndata: 2\n\ndata: 3\n\n"
		n := 0
		err := readSSE(strings.NewReader(stream), func(ev sseEvent) (bool, error) {
			n++
			return ev.Data == "2", nil
		})
		if err != nil || n != 2 {
			t.Errorf("done: n=%d err=%v", n, err)
		}
		boom := errors.New("boom")
		n = 0
		err = readSSE(strings.NewReader(stream), func(sseEvent) (bool, error) {
			n++
			return false, boom
		})
		if !errors.Is(err, boom) || n != 1 {
			t.Errorf("fail: n=%d err=%v", n, err)
		}
	})
}

// pauseEvent makes sseServer pause instead of writing an event.
const pauseEvent = "<pause>"

// sseServer serves events as a task log event stream, flushing after every
// event so that the client really reads it incrementally.
func sseServer(t *testing.T, events []string) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("follow") != "true" || r.Header.Get("Accept") != "text/event-stream" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"title":"Bad Request","status":400,"detail":"follow=%s accept=%s"}`,
				r.URL.Query().Get("follow"), r.Header.Get("Accept"))
			return
		}
		if r.URL.Path != "/api/v1/tasks/UPID:n1:1:2:sleep::root@pam:/log" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		for _, e := range events {
			if e == pauseEvent {
				time.Sleep(150 * time.Millisecond)
				continue
			}
			io.WriteString(w, e)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFollowTaskLog(t *testing.T) {
	const upid = "UPID:n1:1:2:sleep::root@pam:"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("lines then end", func(t *testing.T) {
		srv := sseServer(t, []string{
			": hello\n\n",
			"event: line\ndata: {\"n\":1,\"t\":\"starting\"}\n\n",
			"event: line\ndata: {\"n\":2,\"t\":\"sleeping 1s\"}\n\n",
			pauseEvent, // longer than the client's Timeout: streams must not be cut by it
			"event: end\ndata: {\"id\":\"" + upid + "\",\"status\":\"ok\",\"node\":\"n1\",\"type\":\"sleep\",\"user\":\"root@pam\",\"start_time\":\"2025-01-02T03:04:05Z\"}\n\n",
			"event: line\ndata: {\"n\":3,\"t\":\"after end is ignored\"}\n\n",
		})
		c := newTestClient(t, srv, Options{Timeout: 50 * time.Millisecond})
		var lines []api.TaskLogLine
		task, err := c.FollowTaskLog(ctx, upid, func(l api.TaskLogLine) { lines = append(lines, l) })
		if err != nil {
			t.Fatal(err)
		}
		want := []api.TaskLogLine{{N: 1, Text: "starting"}, {N: 2, Text: "sleeping 1s"}}
		if !reflect.DeepEqual(lines, want) {
			t.Errorf("lines = %+v, want %+v", lines, want)
		}
		if task.ID != upid || task.Status != api.TaskOK || task.StartTime.IsZero() {
			t.Errorf("task = %+v", task)
		}
	})

	t.Run("stream closed before end", func(t *testing.T) {
		srv := sseServer(t, []string{"event: line\ndata: {\"n\":1,\"t\":\"x\"}\n\n"})
		c := newTestClient(t, srv, Options{})
		_, err := c.FollowTaskLog(ctx, upid, nil)
		if err == nil || !strings.Contains(err.Error(), "before the task ended") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("malformed line", func(t *testing.T) {
		srv := sseServer(t, []string{"event: line\ndata: not json\n\n"})
		c := newTestClient(t, srv, Options{})
		_, err := c.FollowTaskLog(ctx, upid, nil)
		if err == nil || !strings.Contains(err.Error(), "decode log line") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("error response is a problem", func(t *testing.T) {
		srv := sseServer(t, nil)
		c := newTestClient(t, srv, Options{})
		_, err := c.FollowTaskLog(ctx, "UPID:other", nil)
		if StatusOf(err) != http.StatusNotFound {
			t.Errorf("err = %v, want a 404 problem", err)
		}
	})
}
