package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
)

type vmCreateIn struct{ Body api.VMCreate }
type vmStatusOut struct{ Body api.VMStatus }

func (s *Server) vmRoutes() {
	tags := []string{"vms"}
	vp := "/vms/{vmid}"
	guestRoutes(s, guestKind[api.VM, api.VMUpdate, api.VMShutdown]{id: "vm", plural: "vms", title: "VM",
		actions: []string{"start", "shutdown", "stop", "reboot", "reset", "suspend", "resume"},
		list:    s.VMs.List, get: s.VMs.Get,
		ident: func(v api.VM) (int, string) { return v.Config.VMID, v.Digest },
		update: func(ctx context.Context, c *Caller, vmid int, ifMatch string, u api.VMUpdate) (api.VM, error) {
			return s.VMs.Update(ctx, vmid, ifMatch, u, c)
		},
		del: s.VMs.Delete, action: s.VMs.Action}, tags)
	register(s, huma.Operation{OperationID: "create-vm", Method: "POST", Path: "/vms", Summary: "Create a VM (allocates its disks in a task)", Tags: tags, DefaultStatus: 202},
		Perm{Path: "/vms", Privs: []string{"VM.Allocate"}}, func(ctx context.Context, in *vmCreateIn) (*guestCreatedOut, error) {
			c := caller(ctx)
			for i, d := range in.Body.Disks {
				if d.Storage != "" && !c.Ev.Has("/storage/"+d.Storage, "Datastore.AllocateSpace") {
					return nil, errs.Forbidden("permission denied: Datastore.AllocateSpace required on /storage/%s (disks[%d])", d.Storage, i)
				}
			}
			vmid, upid, err := s.VMs.Create(ctx, in.Body, c.String(), c)
			if err != nil {
				return nil, err
			}
			return createdOut(upid, vmid), nil
		})
	register(s, huma.Operation{OperationID: "get-vm-status", Method: "GET", Path: vp + "/status", Summary: "A VM's runtime status", Tags: tags},
		Perm{Path: vp, Privs: []string{"VM.Audit"}}, func(ctx context.Context, in *GuestIDParam) (*vmStatusOut, error) {
			st, err := s.VMs.Status(ctx, in.VMID)
			if err != nil {
				return nil, err
			}
			return &vmStatusOut{Body: st}, nil
		})
	register(s, huma.Operation{OperationID: "vm-serial-websocket", Method: "GET", Path: vp + "/termwebsocket", Summary: "The VM's first serial port as a websocket byte stream", Tags: tags},
		Perm{Path: vp, Privs: []string{"VM.Console"}}, func(ctx context.Context, in *GuestIDParam) (*huma.StreamResponse, error) {
			sock, err := s.VMs.SerialPath(in.VMID)
			if err != nil {
				return nil, err
			}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				r, w := humago.Unwrap(hctx)
				bridgeUnix(r.Context(), w, r, sock, s)
			}}, nil
		})
}

// bridgeUnix copies bytes both ways between a websocket and a unix socket
// (a QEMU serial port) until either side closes.
func bridgeUnix(ctx context.Context, w http.ResponseWriter, r *http.Request, sock string, s *Server) {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		s.Log.Warn("console: connect", "socket", sock, "err", err)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadGateway)
		json.NewEncoder(w).Encode(api.Problem{Status: 502, Title: "Bad Gateway", Detail: "the VM's console socket does not answer"})
		return
	}
	defer conn.Close()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	go func() {
		io.Copy(conn, nc)
		// The client is gone: release QEMU's console (it takes one
		// connection at a time) so the next client gets it.
		conn.Close()
		cancel()
	}()
	io.Copy(nc, conn)
	// QEMU closed the console (the VM stopped): say so properly.
	ws.Close(websocket.StatusNormalClosure, "console closed")
}

type vmCloneIn struct {
	GuestIDParam
	Body api.VMClone
}

func (s *Server) vmTemplateRoutes() {
	tags := []string{"vms"}
	vp := "/vms/{vmid}"
	register(s, huma.Operation{OperationID: "vm-template", Method: "POST", Path: vp + "/template", Summary: "Turn a stopped VM into a template", Tags: tags, DefaultStatus: 202},
		Perm{Path: vp, Privs: []string{"VM.Allocate"}}, func(ctx context.Context, in *GuestIDParam) (*taskRefOut, error) {
			upid, err := s.VMs.Template(ctx, in.VMID, caller(ctx).String())
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
	register(s, huma.Operation{OperationID: "vm-clone", Method: "POST", Path: vp + "/clone", Summary: "Clone a VM or template into a new VM", Tags: tags, DefaultStatus: 202},
		Perm{Path: vp, Privs: []string{"VM.Clone"}}, func(ctx context.Context, in *vmCloneIn) (*guestCreatedOut, error) {
			if !caller(ctx).Ev.Has("/vms", "VM.Allocate") && (in.Body.NewID == 0 || !caller(ctx).Ev.Has("/vms/"+strconv.Itoa(in.Body.NewID), "VM.Allocate")) {
				return nil, errs.Forbidden("permission denied: VM.Allocate required on /vms to create the clone")
			}
			newid, upid, err := s.VMs.Clone(ctx, in.VMID, in.Body, caller(ctx).String())
			if err != nil {
				return nil, err
			}
			return createdOut(upid, newid), nil
		})
}

type vmSnapIn struct {
	GuestIDParam
	Body api.VMSnapshotCreate
}
type vmSnapNameIn struct {
	GuestIDParam
	Name string `path:"name" maxLength:"40"`
}
type vmSnapsOut struct{ Body []api.VMSnapshot }

func (s *Server) vmSnapshotRoutes() {
	tags := []string{"vms"}
	vp := "/vms/{vmid}"
	register(s, huma.Operation{OperationID: "list-vm-snapshots", Method: "GET", Path: vp + "/snapshot", Summary: "A VM's snapshot tree", Tags: tags},
		Perm{Path: vp, Privs: []string{"VM.Audit"}}, func(ctx context.Context, in *GuestIDParam) (*vmSnapsOut, error) {
			out, err := s.VMs.Snapshots(in.VMID)
			if err != nil {
				return nil, err
			}
			return &vmSnapsOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "create-vm-snapshot", Method: "POST", Path: vp + "/snapshot", Summary: "Take a snapshot (with RAM when running)", Tags: tags, DefaultStatus: 202},
		Perm{Path: vp, Privs: []string{"VM.Snapshot"}}, func(ctx context.Context, in *vmSnapIn) (*taskRefOut, error) {
			upid, err := s.VMs.Snapshot(ctx, in.VMID, in.Body, caller(ctx).String())
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
	register(s, huma.Operation{OperationID: "rollback-vm-snapshot", Method: "POST", Path: vp + "/snapshot/{name}/rollback", Summary: "Return to a snapshot", Tags: tags, DefaultStatus: 202},
		Perm{Path: vp, Privs: []string{"VM.Snapshot.Rollback"}}, func(ctx context.Context, in *vmSnapNameIn) (*taskRefOut, error) {
			upid, err := s.VMs.Rollback(ctx, in.VMID, in.Name, caller(ctx).String())
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
	register(s, huma.Operation{OperationID: "delete-vm-snapshot", Method: "DELETE", Path: vp + "/snapshot/{name}", Summary: "Delete a snapshot", Tags: tags, DefaultStatus: 202},
		Perm{Path: vp, Privs: []string{"VM.Snapshot"}}, func(ctx context.Context, in *vmSnapNameIn) (*taskRefOut, error) {
			upid, err := s.VMs.DeleteSnapshot(ctx, in.VMID, in.Name, caller(ctx).String())
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
}

type vncTicket struct {
	vmid    int
	user    string
	socket  string
	expires time.Time
}

type vncProxyOut struct {
	Body struct {
		Ticket   string `json:"ticket" doc:"one-time; pass as ?vncticket= to vncwebsocket within 60 s"`
		Password string `json:"password" doc:"the RFB (VNC) password for this session"`
	}
}
type vncWSIn struct {
	GuestIDParam
	Ticket string `query:"vncticket" required:"true" maxLength:"128"`
}

func (s *Server) vncRoutes() {
	tags := []string{"vms"}
	vp := "/vms/{vmid}"
	register(s, huma.Operation{OperationID: "vm-vncproxy", Method: "POST", Path: vp + "/vncproxy", Summary: "Open a VNC session: a one-time ticket for vncwebsocket and the RFB password", Tags: tags},
		Perm{Path: vp, Privs: []string{"VM.Console"}}, func(ctx context.Context, in *GuestIDParam) (*vncProxyOut, error) {
			sock, pw, err := s.VMs.VNC(ctx, in.VMID)
			if err != nil {
				return nil, err
			}
			b := make([]byte, 24)
			rand.Read(b)
			t := hex.EncodeToString(b)
			s.vncMu.Lock()
			if s.vncTickets == nil {
				s.vncTickets = map[string]vncTicket{}
			}
			for k, v := range s.vncTickets {
				if time.Now().After(v.expires) {
					delete(s.vncTickets, k)
				}
			}
			s.vncTickets[t] = vncTicket{vmid: in.VMID, user: caller(ctx).String(), socket: sock, expires: time.Now().Add(60 * time.Second)}
			s.vncMu.Unlock()
			out := &vncProxyOut{}
			out.Body.Ticket, out.Body.Password = t, pw
			return out, nil
		})
	register(s, huma.Operation{OperationID: "vm-vnc-websocket", Method: "GET", Path: vp + "/vncwebsocket", Summary: "The VM's screen as RFB over a websocket (for noVNC)", Tags: tags},
		Perm{Path: vp, Privs: []string{"VM.Console"}}, func(ctx context.Context, in *vncWSIn) (*huma.StreamResponse, error) {
			s.vncMu.Lock()
			t, ok := s.vncTickets[in.Ticket]
			delete(s.vncTickets, in.Ticket) // one use only
			s.vncMu.Unlock()
			if !ok || time.Now().After(t.expires) || t.vmid != in.VMID || t.user != caller(ctx).String() {
				return nil, errs.Forbidden("invalid or expired VNC ticket")
			}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				r, w := humago.Unwrap(hctx)
				bridgeUnix(r.Context(), w, r, t.socket, s)
			}}, nil
		})
}

type vmResizeIn struct {
	VMDiskParam
	Body api.VMDiskResize
}
type vmMoveIn struct {
	VMDiskParam
	Body api.VMDiskMove
}

// VMDiskParam names one disk of a VM.
type VMDiskParam struct {
	GuestIDParam
	Disk int `path:"disk" minimum:"0" maximum:"29" doc:"disk index (disk0 = 0)"`
}

func (s *Server) vmDiskRoutes() {
	tags := []string{"vms"}
	dp := "/vms/{vmid}/disks/{disk}"
	register(s, huma.Operation{OperationID: "vm-disk-resize", Method: "POST", Path: dp + "/resize", Summary: "Grow a VM disk (live when running)", Tags: tags, DefaultStatus: 202},
		Perm{Path: "/vms/{vmid}", Privs: []string{"VM.Config.Disk"}}, func(ctx context.Context, in *vmResizeIn) (*taskRefOut, error) {
			upid, err := s.VMs.ResizeDisk(ctx, in.VMID, in.Disk, in.Body.Size, caller(ctx).String())
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
	register(s, huma.Operation{OperationID: "vm-disk-move", Method: "POST", Path: dp + "/move", Summary: "Move a VM's disk to another pool (live through drive-mirror when running)", Tags: tags, DefaultStatus: 202},
		Perm{Path: "/vms/{vmid}", Privs: []string{"VM.Config.Disk"}}, func(ctx context.Context, in *vmMoveIn) (*taskRefOut, error) {
			if !caller(ctx).Ev.Has("/storage/"+in.Body.Storage, "Datastore.AllocateSpace") {
				return nil, errs.Forbidden("permission denied: Datastore.AllocateSpace required on /storage/%s", in.Body.Storage)
			}
			upid, err := s.VMs.MoveDisk(ctx, in.VMID, in.Disk, in.Body, caller(ctx).String(), caller(ctx))
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
}

type vmAttachIn struct {
	GuestIDParam
	Body api.VMDiskAttach
}
type vmDetachIn struct {
	VMDiskParam
	Free bool `query:"free" doc:"also free the volume"`
}

func (s *Server) vmAttachRoutes() {
	tags := []string{"vms"}
	register(s, huma.Operation{OperationID: "vm-disk-attach", Method: "POST", Path: "/vms/{vmid}/disks", Summary: "Add a disk to a stopped VM (new, existing or imported)", Tags: tags, DefaultStatus: 202},
		Perm{Path: "/vms/{vmid}", Privs: []string{"VM.Config.Disk"}}, func(ctx context.Context, in *vmAttachIn) (*taskRefOut, error) {
			c := caller(ctx)
			if in.Body.Storage != "" && !c.Ev.Has("/storage/"+in.Body.Storage, "Datastore.AllocateSpace") {
				return nil, errs.Forbidden("permission denied: Datastore.AllocateSpace required on /storage/%s", in.Body.Storage)
			}
			upid, err := s.VMs.AttachDisk(ctx, in.VMID, in.Body, c.String(), isRootPAM(c), c)
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
	register(s, huma.Operation{OperationID: "vm-disk-detach", Method: "DELETE", Path: "/vms/{vmid}/disks/{disk}", Summary: "Remove a disk from a VM (the last virtio disk can go live)", Tags: tags, DefaultStatus: 202},
		Perm{Path: "/vms/{vmid}", Privs: []string{"VM.Config.Disk"}}, func(ctx context.Context, in *vmDetachIn) (*taskRefOut, error) {
			upid, err := s.VMs.DetachDisk(ctx, in.VMID, in.Disk, in.Free, caller(ctx).String(), caller(ctx))
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
}
