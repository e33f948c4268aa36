package server

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
)

// VMs and containers share the guest ID space and the ACL paths
// (/vms/{id}), as on Proxmox, so one ACL entry covers a guest whatever its
// kind; the handlers that are the same for both kinds live here once.

// GuestIDParam is the {vmid} of a guest of either kind.
type GuestIDParam struct {
	VMID int `path:"vmid" minimum:"100" maximum:"999999999"`
}

type guestsIn struct {
	Node string `query:"node" maxLength:"63"`
}
type guestsOut[T any] struct{ Body []T }
type guestOut[T any] struct {
	ETag string `header:"ETag"`
	Body T
}
type guestUpdateIn[U any] struct {
	GuestIDParam
	IfMatchParam
	Body U
}
type guestDeleteIn struct {
	GuestIDParam
	Purge bool `query:"purge" doc:"also remove the guest's ACL entries"`
}
type guestActionIn[SD any] struct {
	GuestIDParam
	Action string `path:"action" maxLength:"16"`
	Body   *SD
}

// guestCreatedOut answers a create or clone: the task and the new ID.
type guestCreatedOut struct {
	Body struct {
		Task string `json:"task"`
		VMID int    `json:"vmid"`
	}
}

func createdOut(upid string, vmid int) *guestCreatedOut {
	out := &guestCreatedOut{}
	out.Body.Task, out.Body.VMID = upid, vmid
	return out
}

// guestKind is one guest kind as the handlers see it: its types (T the
// guest, U its update, SD its shutdown parameters) and its driver's calls.
type guestKind[T, U, SD any] struct {
	id      string // in operation IDs: "vm", "container"
	plural  string // "vms", "containers" (path and operation IDs)
	title   string // "VM", "container"
	actions []string
	list    func(node string) []T
	get     func(vmid int) (T, error)
	ident   func(T) (vmid int, digest string)
	update  func(ctx context.Context, c *Caller, vmid int, ifMatch string, u U) (T, error)
	del     func(ctx context.Context, vmid int, user string, purge func(context.Context, int) error) (string, error)
	action  func(ctx context.Context, vmid int, action, user string, sd SD) (string, error)
}

// guestRoutes registers list, config get/update, delete and power actions
// of one guest kind.
func guestRoutes[T, U, SD any](s *Server, k guestKind[T, U, SD], tags []string) {
	base := "/" + k.plural
	gp := base + "/{vmid}"
	acl := "/vms/{vmid}"
	register(s, huma.Operation{OperationID: "list-" + k.plural, Method: "GET", Path: base, Summary: "List " + k.title + "s", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *guestsIn) (*guestsOut[T], error) {
			c := caller(ctx)
			out := []T{}
			for _, g := range k.list(in.Node) {
				if id, _ := k.ident(g); c.Ev.Has("/vms/"+strconv.Itoa(id), "VM.Audit") {
					out = append(out, g)
				}
			}
			return &guestsOut[T]{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "get-" + k.id + "-config", Method: "GET", Path: gp + "/config", Summary: "A " + k.title + "'s config, pending changes and lock", Tags: tags},
		Perm{Path: acl, Privs: []string{"VM.Audit"}}, func(ctx context.Context, in *GuestIDParam) (*guestOut[T], error) {
			g, err := k.get(in.VMID)
			if err != nil {
				return nil, err
			}
			_, digest := k.ident(g)
			return &guestOut[T]{ETag: etag(digest), Body: g}, nil
		})
	register(s, huma.Operation{OperationID: "update-" + k.id + "-config", Method: "PUT", Path: gp + "/config", Summary: "Change a " + k.title + "'s config (pending while running where a restart is needed)",
		Description: "Each field needs the privilege named by its x-corral-privilege on /vms/{vmid}.", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *guestUpdateIn[U]) (*guestOut[T], error) {
			c := caller(ctx)
			path := "/vms/" + strconv.Itoa(in.VMID)
			privs := fieldPrivs(in.Body)
			if len(privs) == 0 {
				return nil, errs.Invalid("body", "nothing to change")
			}
			if !c.Ev.Has(path, privs...) {
				return nil, errs.Forbidden("permission denied: %v required on %s", privs, path)
			}
			g, err := k.update(ctx, c, in.VMID, ifMatch(in.IfMatch), in.Body)
			if err != nil {
				return nil, err
			}
			_, digest := k.ident(g)
			return &guestOut[T]{ETag: etag(digest), Body: g}, nil
		})
	register(s, huma.Operation{OperationID: "delete-" + k.id, Method: "DELETE", Path: gp, Summary: "Destroy a stopped " + k.title + " and free its volumes", Tags: tags, DefaultStatus: 202},
		Perm{Path: acl, Privs: []string{"VM.Allocate"}}, func(ctx context.Context, in *guestDeleteIn) (*taskRefOut, error) {
			var purge func(context.Context, int) error
			if in.Purge {
				purge = func(ctx context.Context, vmid int) error {
					return s.Access.RemovePath(ctx, "/vms/"+strconv.Itoa(vmid))
				}
			}
			upid, err := k.del(ctx, in.VMID, caller(ctx).String(), purge)
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
	op := huma.Operation{OperationID: k.id + "-action", Method: "POST", Path: gp + "/status/{action}",
		Summary: "Power actions of a " + k.title + ": " + strings.Join(k.actions, ", "), Tags: tags, DefaultStatus: 202}
	register(s, op, Perm{Path: acl, Privs: []string{"VM.PowerMgmt"}}, func(ctx context.Context, in *guestActionIn[SD]) (*taskRefOut, error) {
		if !slices.Contains(k.actions, in.Action) {
			return nil, errs.Invalid("action", "a %s's actions are %s", k.title, strings.Join(k.actions, ", "))
		}
		var sd SD
		if in.Body != nil {
			if in.Action != "shutdown" && in.Action != "reboot" {
				return nil, errs.Invalid("body", "only shutdown and reboot take parameters")
			}
			sd = *in.Body
		}
		upid, err := k.action(ctx, in.VMID, in.Action, caller(ctx).String(), sd)
		if err != nil {
			return nil, err
		}
		return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
	})
	// The enum is per kind, which a generic input type's tag can't say:
	// the document gets it here, the handler enforces it above.
	if item := s.api.OpenAPI().Paths["/api/v1"+op.Path]; item != nil && item.Post != nil {
		for _, p := range item.Post.Parameters {
			if p.Name == "action" && p.Schema != nil {
				sch := *p.Schema
				sch.Enum = nil
				for _, a := range k.actions {
					sch.Enum = append(sch.Enum, a)
				}
				p.Schema = &sch
			}
		}
	}
}
