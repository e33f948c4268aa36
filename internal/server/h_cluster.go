package server

import (
	"context"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/corral-project/corral/api"
)

type resourcesIn struct {
	Type string `query:"type" enum:"node,qemu,lxc,storage," doc:"only resources of this type"`
}
type resourcesOut struct{ Body []api.Resource }
type nextIDOut struct{ Body api.NextID }

func sleepTick() <-chan time.Time { return time.After(time.Second) }

func (s *Server) clusterRoutes() {
	tags := []string{"cluster"}
	register(s, huma.Operation{OperationID: "list-resources", Method: "GET", Path: "/cluster/resources", Summary: "Every node, guest and storage the caller may see, with status", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *resourcesIn) (*resourcesOut, error) {
			c := caller(ctx)
			out := []api.Resource{}
			if in.Type == "" || in.Type == "node" {
				for _, n := range s.Nodes.List() {
					if !c.Ev.Has("/nodes/"+n.Node, "Sys.Audit") {
						continue
					}
					st := "offline"
					if n.Online {
						st = "online"
					}
					out = append(out, api.Resource{ID: "node/" + n.Node, Type: "node", Node: n.Node, Name: n.Node, Status: st})
				}
			}
			if in.Type == "" || in.Type == api.GuestVM || in.Type == api.GuestContainer {
				for _, g := range s.Guests.List() {
					if in.Type != "" && g.Type != in.Type {
						continue
					}
					id := strconv.Itoa(g.VMID)
					if !c.Ev.Has("/vms/"+id, "VM.Audit") {
						continue
					}
					out = append(out, api.Resource{ID: g.Type + "/" + id, Type: g.Type, Node: g.Node, VMID: g.VMID, Name: g.Name,
						Status: g.Status, Template: g.Template, Tags: g.Tags, Pool: g.Pool})
				}
			}
			if (in.Type == "" || in.Type == "storage") && s.Storage != nil {
				// This node's view of each pool; other nodes' views arrive
				// with forwarding between nodes.
				for _, p := range s.Storage.List() {
					if !c.Ev.Any("/storage/"+p.Storage, "Datastore.Audit", "Datastore.Allocate", "Datastore.AllocateSpace") {
						continue
					}
					st := s.Storage.CachedStatus(ctx, p)
					status := "unavailable"
					if st.Active {
						status = "available"
					}
					out = append(out, api.Resource{ID: "storage/" + s.Node + "/" + p.Storage, Type: "storage", Node: s.Node, Storage: p.Storage, Name: p.Storage, Status: status})
				}
			}
			return &resourcesOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "get-next-id", Method: "GET", Path: "/cluster/nextid", Summary: "Reserve a free guest ID", Description: "The ID is reserved for five minutes so concurrent callers never get the same one.", Tags: tags},
		Perm{Path: "/vms", Privs: []string{"VM.Allocate"}}, func(ctx context.Context, _ *struct{}) (*nextIDOut, error) {
			id, err := s.Guests.NextID(ctx, caller(ctx).String())
			if err != nil {
				return nil, err
			}
			return &nextIDOut{Body: id}, nil
		})
}
