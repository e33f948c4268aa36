package server

import (
	"context"

	"github.com/danielgtaylor/huma/v2"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/task"
)

type NodeParam struct {
	Node string `path:"node" maxLength:"63"`
}
type nodesOut struct{ Body []api.Node }
type nodeStatusOut struct{ Body api.NodeStatus }
type taskRefOut struct {
	Body api.TaskRef
}
type sleepIn struct {
	NodeParam
	Body api.SleepTask
}

func (s *Server) nodeRoutes() {
	tags := []string{"nodes"}
	register(s, huma.Operation{OperationID: "list-nodes", Method: "GET", Path: "/nodes", Summary: "List cluster nodes", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, _ *struct{}) (*nodesOut, error) {
			c := caller(ctx)
			out := []api.Node{}
			for _, n := range s.Nodes.List() {
				if c.Ev.Has("/nodes/"+n.Node, "Sys.Audit") {
					out = append(out, n)
				}
			}
			return &nodesOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "get-node-status", Method: "GET", Path: "/nodes/{node}/status", Summary: "Node status and virtualization capabilities", Tags: tags},
		Perm{Path: "/nodes/{node}", Privs: []string{"Sys.Audit"}}, func(ctx context.Context, in *NodeParam) (*nodeStatusOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			st, err := s.NodeStatus(ctx)
			if err != nil {
				return nil, err
			}
			return &nodeStatusOut{Body: st}, nil
		})
	register(s, huma.Operation{OperationID: "start-sleep-task", Method: "POST", Path: "/nodes/{node}/tasks/sleep", Summary: "Start a diagnostics task that logs a line per second and then ends", Tags: tags, DefaultStatus: 202},
		Perm{Path: "/nodes/{node}", Privs: []string{"Sys.Modify"}}, func(ctx context.Context, in *sleepIn) (*taskRefOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			n := in.Body.Seconds
			upid, err := s.Tasks.Start(ctx, "sleep", "", caller(ctx).String(), func(ctx context.Context, l *task.Log) error {
				l.Printf("sleeping %d seconds", n)
				for i := 1; i <= n; i++ {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-sleepTick():
					}
					l.Printf("slept %d/%d", i, n)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
}

// local refuses requests for another node's runtime state until
// forwarding to the owner node over the cluster channel exists.
func (s *Server) local(node string) error {
	if node == s.Node {
		return nil
	}
	if _, ok := s.Nodes.Get(node); !ok {
		return errs.NotFound("node %s does not exist", node)
	}
	return &errs.Error{Kind: errs.KindConflict, Msg: "node " + node + " is another cluster member; ask that node directly (forwarding arrives with cluster join)"}
}
