package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/corral-project/corral/api"
)

// TaskFilter narrows a task listing; zero fields do not filter.
type TaskFilter struct {
	Node   string
	User   string
	Type   string
	Status string    // running, ok, failed or stopped
	Since  time.Time // only tasks started at or after this time (sent as RFC 3339)
	Limit  int
}

func (f TaskFilter) query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("node", f.Node)
	set("user", f.User)
	set("type", f.Type)
	set("status", f.Status)
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// Tasks lists tasks matching f.
func (c *Client) Tasks(ctx context.Context, f TaskFilter) ([]api.Task, error) {
	var out []api.Task
	if _, err := c.Do(ctx, http.MethodGet, "/tasks", f.query(), nil, &out); err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	return out, nil
}

// Task returns one task record.
func (c *Client) Task(ctx context.Context, upid string) (*api.Task, error) {
	var t api.Task
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("tasks", upid), nil, nil, &t); err != nil {
		return nil, fmt.Errorf("get task %s: %w", upid, err)
	}
	return &t, nil
}

// TaskLog returns up to limit lines of a task's log starting at line start;
// limit <= 0 leaves the page size to the server.
func (c *Client) TaskLog(ctx context.Context, upid string, start, limit int) ([]api.TaskLogLine, error) {
	q := url.Values{"start": {strconv.Itoa(start)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []api.TaskLogLine
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("tasks", upid, "log"), q, nil, &out); err != nil {
		return nil, fmt.Errorf("get log of task %s: %w", upid, err)
	}
	return out, nil
}

// FollowTaskLog streams a task's log: fn receives every line, from the
// first, as the server emits it, and the call returns the final task
// record once the task has ended. It is bounded only by ctx.
func (c *Client) FollowTaskLog(ctx context.Context, upid string, fn func(api.TaskLogLine)) (api.Task, error) {
	var task api.Task
	resp, err := c.stream(ctx, http.MethodGet, PathJoin("tasks", upid, "log"),
		url.Values{"follow": {"true"}}, WithHeader("Accept", "text/event-stream"))
	if err != nil {
		return task, fmt.Errorf("follow log of task %s: %w", upid, err)
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return task, fmt.Errorf("follow log of task %s: server answered %q, not an event stream", upid, mt)
	}
	ended := false
	err = readSSE(resp.Body, func(ev sseEvent) (bool, error) {
		switch ev.Event {
		case "line":
			var l api.TaskLogLine
			if err := json.Unmarshal([]byte(ev.Data), &l); err != nil {
				return false, fmt.Errorf("decode log line: %w", err)
			}
			if fn != nil {
				fn(l)
			}
		case "end":
			if err := json.Unmarshal([]byte(ev.Data), &task); err != nil {
				return false, fmt.Errorf("decode end event: %w", err)
			}
			ended = true
			return true, nil
		case "error":
			// Not in the documented protocol, but a server that fails
			// mid-stream can only report it this way.
			return false, decodeProblem(http.StatusInternalServerError, "application/json", []byte(ev.Data))
		}
		return false, nil
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return task, fmt.Errorf("follow log of task %s: %w", upid, err)
	}
	if !ended {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return task, fmt.Errorf("follow log of task %s: %w", upid, ctxErr)
		}
		return task, fmt.Errorf("follow log of task %s: stream closed before the task ended", upid)
	}
	return task, nil
}

// StopTask asks the server to stop a running task.
func (c *Client) StopTask(ctx context.Context, upid string) error {
	if _, err := c.Do(ctx, http.MethodDelete, PathJoin("tasks", upid), nil, nil, nil); err != nil {
		return fmt.Errorf("stop task %s: %w", upid, err)
	}
	return nil
}

// StartSleepTask starts the diagnostics task that just sleeps on node and
// returns its UPID.
func (c *Client) StartSleepTask(ctx context.Context, node string, seconds int) (string, error) {
	return c.taskRef(ctx, http.MethodPost, PathJoin("nodes", node, "tasks", "sleep"), nil, api.SleepTask{Seconds: seconds}, fmt.Sprintf("start sleep task on %s", node))
}

// WaitTask polls a task until it is no longer running and returns its final
// record. The polling interval grows from 200ms to 2s so short tasks return
// quickly without hammering the server for long ones.
func (c *Client) WaitTask(ctx context.Context, upid string) (api.Task, error) {
	const maxInterval = 2 * time.Second
	interval := 200 * time.Millisecond
	for {
		t, err := c.Task(ctx, upid)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
				return api.Task{}, fmt.Errorf("wait for task %s: %w", upid, ctxErr)
			}
			return api.Task{}, fmt.Errorf("wait for task: %w", err)
		}
		if t.Status != api.TaskRunning {
			return *t, nil
		}
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return *t, fmt.Errorf("wait for task %s: %w", upid, ctx.Err())
		case <-timer.C:
		}
		interval = min(interval*3/2, maxInterval)
	}
}

// taskRef sends a request that starts a task and returns the task's UPID;
// what names the operation in errors.
func (c *Client) taskRef(ctx context.Context, method, path string, q url.Values, body any, what string) (string, error) {
	var ref api.TaskRef
	if _, err := c.Do(ctx, method, path, q, body, &ref); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if ref.Task == "" {
		return "", fmt.Errorf("%s: server returned no task ID", what)
	}
	return ref.Task, nil
}
