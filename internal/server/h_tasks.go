package server

import (
	"context"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/sse"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/task"
)

type tasksIn struct {
	Node   string    `query:"node" maxLength:"63"`
	User   string    `query:"user" maxLength:"192"`
	Type   string    `query:"type" maxLength:"32"`
	Status string    `query:"status" enum:"running,ok,failed,stopped,"`
	Since  time.Time `query:"since" doc:"RFC 3339; only tasks started at or after"`
	Limit  int       `query:"limit" minimum:"0" maximum:"10000" default:"50"`
}
type tasksOut struct{ Body []api.Task }
type UPIDParam struct {
	UPID string `path:"upid" maxLength:"512"`
}
type taskOut struct{ Body api.Task }
type logIn struct {
	UPIDParam
	Start int `query:"start" minimum:"0"`
	Limit int `query:"limit" minimum:"0" maximum:"100000" default:"1000"`
}
type logOut struct{ Body []api.TaskLogLine }
type followIn struct {
	UPIDParam
	Start int `query:"start" minimum:"0"`
}

// canSeeTask: own tasks, or Sys.Audit on the executing node.
func canSeeTask(c *Caller, t api.Task) bool {
	return t.User == c.String() || t.User == c.User || c.Ev.Has("/nodes/"+t.Node, "Sys.Audit")
}

func (s *Server) visibleTask(ctx context.Context, upid string) (api.Task, error) {
	if _, err := task.ParseID(upid); err != nil {
		return api.Task{}, errs.Invalid("upid", "%v", err)
	}
	t, err := s.Tasks.Get(upid)
	if err != nil {
		return api.Task{}, err
	}
	if !canSeeTask(caller(ctx), t) {
		return api.Task{}, errs.NotFound("task %s does not exist", upid) // don't confirm others' tasks exist
	}
	return t, nil
}

func (s *Server) taskRoutes() {
	tags := []string{"tasks"}
	register(s, huma.Operation{OperationID: "list-tasks", Method: "GET", Path: "/tasks", Summary: "List tasks, newest first", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *tasksIn) (*tasksOut, error) {
			c := caller(ctx)
			out := s.Tasks.List(task.Filter{Node: in.Node, User: in.User, Type: in.Type, Status: in.Status, Since: in.Since, Limit: in.Limit,
				Visible: func(t api.Task) bool { return canSeeTask(c, t) }})
			if out == nil {
				out = []api.Task{}
			}
			return &tasksOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "get-task", Method: "GET", Path: "/tasks/{upid}", Summary: "Task status", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *UPIDParam) (*taskOut, error) {
			t, err := s.visibleTask(ctx, in.UPID)
			if err != nil {
				return nil, err
			}
			return &taskOut{Body: t}, nil
		})
	register(s, huma.Operation{OperationID: "get-task-log", Method: "GET", Path: "/tasks/{upid}/log", Summary: "Task log lines (add follow=1 to stream)", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *logIn) (*logOut, error) {
			t, err := s.visibleTask(ctx, in.UPID)
			if err != nil {
				return nil, err
			}
			if err := s.local(t.Node); err != nil {
				return nil, err
			}
			lines, err := s.Tasks.ReadLog(in.UPID, in.Start, in.Limit)
			if err != nil {
				return nil, err
			}
			if lines == nil {
				lines = []api.TaskLogLine{}
			}
			return &logOut{Body: lines}, nil
		})
	register(s, huma.Operation{OperationID: "stop-task", Method: "DELETE", Path: "/tasks/{upid}", Summary: "Stop a running task", Tags: tags, DefaultStatus: 204},
		Perm{Authenticated: true}, func(ctx context.Context, in *UPIDParam) (*struct{}, error) {
			t, err := s.visibleTask(ctx, in.UPID)
			if err != nil {
				return nil, err
			}
			c := caller(ctx)
			if t.User != c.String() && !c.Ev.Has("/nodes/"+t.Node, "Sys.Modify") {
				return nil, errs.Forbidden("permission denied: Sys.Modify required on /nodes/%s to stop another user's task", t.Node)
			}
			if t.Status != api.TaskRunning {
				return nil, errs.Conflict("task has already ended (%s)", t.Status)
			}
			if err := s.local(t.Node); err != nil {
				return nil, err
			}
			return nil, s.Tasks.Stop(in.UPID)
		})

	// The follow stream is its own operation so the OpenAPI document can
	// describe its events; GET .../log?follow=1 is routed here too.
	op := huma.Operation{OperationID: "follow-task-log", Method: "GET", Path: "/api/v1/tasks/{upid}/log/follow",
		Summary: "Stream a task's log as Server-Sent Events until the task ends", Tags: tags,
		Metadata: map[string]any{permKey: Perm{Authenticated: true}}, Extensions: map[string]any{"x-corral-access": Perm{Authenticated: true}.doc()}}
	sse.Register(s.api, op, map[string]any{"line": api.TaskLogLine{}, "end": api.Task{}, "error": api.Problem{}},
		func(ctx context.Context, in *followIn, send sse.Sender) {
			t, err := s.visibleTask(ctx, in.UPID)
			if err == nil {
				err = s.local(t.Node)
			}
			if err == nil {
				err = s.Tasks.Follow(ctx, in.UPID, in.Start, func(l api.TaskLogLine) error {
					return send.Data(l)
				})
			}
			if err != nil {
				if pe, ok := s.problem(err).(*api.Problem); ok {
					send.Data(*pe)
				}
				return
			}
			if t, err := s.Tasks.Get(in.UPID); err == nil {
				send.Data(t)
			}
		})
}
