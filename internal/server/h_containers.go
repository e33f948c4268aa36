package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/coder/websocket"
	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/lxc"
)

type ctCreateIn struct{ Body api.CTCreate }
type ctStatusOut struct{ Body api.CTStatus }
type ctExecIn struct {
	GuestIDParam
	Body api.CTExec
}
type ctExecOut struct{ Body api.CTExecResult }
type ctExecWSIn struct {
	GuestIDParam
	Session string `query:"session" required:"true" maxLength:"128"`
}
type ctTermIn struct {
	GuestIDParam
	Mode string `query:"mode" enum:"console,shell" default:"console" doc:"console: the container's /dev/console; shell: a login shell (like pct enter)"`
}
type templateBuildIn struct {
	NodeStorageParam
	Body api.TemplateBuild
}

// isRootPAM is the host's administrator, the only one who may bind-mount
// host paths into containers (as for VM disks imported from host paths).
func isRootPAM(c *Caller) bool { return c.User == "root@pam" && c.Token == "" }

func (s *Server) containerRoutes() {
	if s.CTs == nil {
		return
	}
	tags := []string{"containers"}
	cp := "/containers/{vmid}"
	vp := "/vms/{vmid}"
	guestRoutes(s, guestKind[api.CT, api.CTUpdate, api.CTShutdown]{id: "container", plural: "containers", title: "container",
		actions: []string{"start", "shutdown", "stop", "reboot", "suspend", "resume"},
		list:    s.CTs.List, get: s.CTs.Get,
		ident: func(ct api.CT) (int, string) { return ct.Config.VMID, ct.Digest },
		update: func(ctx context.Context, c *Caller, vmid int, ifMatch string, u api.CTUpdate) (api.CT, error) {
			return s.CTs.Update(ctx, vmid, ifMatch, u, isRootPAM(c), c)
		},
		del: s.CTs.Delete, action: s.CTs.Action}, tags)
	register(s, huma.Operation{OperationID: "create-container", Method: "POST", Path: "/containers", Summary: "Create a container from a template (unpacks it in a task)", Tags: tags, DefaultStatus: 202,
		Description: "Needs Datastore.AllocateSpace on the pools of new volumes and Datastore.Audit on the template's pool. Privileged containers (unprivileged: false) need Sys.Modify on /; host bind mounts are for root@pam only."},
		Perm{Path: "/vms", Privs: []string{"VM.Allocate"}}, func(ctx context.Context, in *ctCreateIn) (*guestCreatedOut, error) {
			c := caller(ctx)
			b := in.Body
			need := func(path, priv, what string) error {
				if !c.Ev.Has(path, priv) {
					return errs.Forbidden("permission denied: %s required on %s (%s)", priv, path, what)
				}
				return nil
			}
			pool := b.RootFS.Storage
			if pool == "" {
				pool = "local"
			}
			if err := need("/storage/"+pool, "Datastore.AllocateSpace", "rootfs"); err != nil {
				return nil, err
			}
			for i, mp := range b.Mountpoints {
				if mp.Storage != "" {
					if err := need("/storage/"+mp.Storage, "Datastore.AllocateSpace", "mountpoints["+strconv.Itoa(i)+"]"); err != nil {
						return nil, err
					}
				}
			}
			if tp, _, ok := strings.Cut(b.OSTemplate, ":"); ok {
				if err := need("/storage/"+tp, "Datastore.Audit", "ostemplate"); err != nil {
					return nil, err
				}
			}
			if b.Unprivileged != nil && !*b.Unprivileged {
				if err := need("/", "Sys.Modify", "a privileged container"); err != nil {
					return nil, err
				}
			}
			vmid, upid, err := s.CTs.Create(ctx, b, lxc.CreateOptions{User: c.String(), Admin: isRootPAM(c), Auth: c})
			if err != nil {
				return nil, err
			}
			return createdOut(upid, vmid), nil
		})
	register(s, huma.Operation{OperationID: "get-container-status", Method: "GET", Path: cp + "/status", Summary: "A container's runtime status (cgroup CPU and memory, disk, network)", Tags: tags},
		Perm{Path: vp, Privs: []string{"VM.Audit"}}, func(ctx context.Context, in *GuestIDParam) (*ctStatusOut, error) {
			st, err := s.CTs.Status(ctx, in.VMID)
			if err != nil {
				return nil, err
			}
			return &ctStatusOut{Body: st}, nil
		})
	register(s, huma.Operation{OperationID: "container-exec", Method: "POST", Path: cp + "/exec", Summary: "Run a command in a running container",
		Description: "Non-interactive: waits and returns exit code, stdout and stderr. Interactive: returns a one-time session for execwebsocket.", Tags: tags},
		Perm{Path: vp, Privs: []string{"VM.Console"}}, func(ctx context.Context, in *ctExecIn) (*ctExecOut, error) {
			res, err := s.CTs.Exec(ctx, in.VMID, in.Body, caller(ctx).String())
			if err != nil {
				return nil, err
			}
			return &ctExecOut{Body: res}, nil
		})
	register(s, huma.Operation{OperationID: "container-exec-websocket", Method: "GET", Path: cp + "/execwebsocket", Summary: "An interactive exec session's stdin, stdout, stderr and exit code over a websocket",
		Description: "Binary messages start with a channel byte: 0 stdin (empty: end of input), 4 resize {cols,rows} from the client; 1 stdout, 2 stderr, 3 exit {exit_code} from the server.", Tags: tags},
		Perm{Path: vp, Privs: []string{"VM.Console"}}, func(ctx context.Context, in *ctExecWSIn) (*huma.StreamResponse, error) {
			req, err := s.CTs.TakeSession(in.Session, in.VMID, caller(ctx).String())
			if err != nil {
				return nil, err
			}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				r, w := humago.Unwrap(hctx)
				ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
				if err != nil {
					return
				}
				defer ws.CloseNow()
				s.execOverWebsocket(r.Context(), ws, in.VMID, req)
			}}, nil
		})
	register(s, huma.Operation{OperationID: "container-term-websocket", Method: "GET", Path: cp + "/termwebsocket", Summary: "The container's console, or a shell in it, as a websocket byte stream",
		Description: "Binary messages carry terminal bytes both ways; a text message {\"cols\":N,\"rows\":N} resizes the terminal.", Tags: tags},
		Perm{Path: vp, Privs: []string{"VM.Console"}}, func(ctx context.Context, in *ctTermIn) (*huma.StreamResponse, error) {
			if err := s.CTs.CheckRunning(in.VMID); err != nil {
				return nil, err // answered before the upgrade
			}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				r, w := humago.Unwrap(hctx)
				ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
				if err != nil {
					return
				}
				defer ws.CloseNow()
				s.termOverWebsocket(r.Context(), ws, in.VMID, in.Mode)
			}}, nil
		})
	register(s, huma.Operation{OperationID: "build-template", Method: "POST", Path: "/nodes/{node}/storage/{storage}/build-template", Summary: "Build a container template (busybox or Debian 12) into a pool, as a task", Tags: tags, DefaultStatus: 202},
		Perm{Path: "/storage/{storage}", Privs: []string{"Datastore.AllocateTemplate"}}, func(ctx context.Context, in *templateBuildIn) (*taskRefOut, error) {
			if in.Node != s.Node {
				return nil, errs.Conflict("templates are built by the node that stores them; send the request to %s", in.Node)
			}
			if in.Body.Kind == "debian" && !caller(ctx).Ev.Has("/nodes/"+in.Node, "Sys.Modify") {
				return nil, errs.Forbidden("permission denied: Sys.Modify required on /nodes/%s to make the node fetch packages", in.Node)
			}
			upid, err := s.CTs.BuildTemplate(ctx, in.Storage, in.Body, caller(ctx).String())
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
}

type ctSnapIn struct {
	GuestIDParam
	Body api.CTSnapshotCreate
}
type ctSnapsOut struct{ Body []api.CTSnapshot }
type ctCloneIn struct {
	GuestIDParam
	Body api.CTClone
}

func (s *Server) containerSnapshotRoutes() {
	if s.CTs == nil {
		return
	}
	tags := []string{"containers"}
	cp := "/containers/{vmid}"
	vp := "/vms/{vmid}"
	register(s, huma.Operation{OperationID: "list-container-snapshots", Method: "GET", Path: cp + "/snapshot", Summary: "A container's snapshots", Tags: tags},
		Perm{Path: vp, Privs: []string{"VM.Audit"}}, func(ctx context.Context, in *GuestIDParam) (*ctSnapsOut, error) {
			out, err := s.CTs.Snapshots(in.VMID)
			if err != nil {
				return nil, err
			}
			return &ctSnapsOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "create-container-snapshot", Method: "POST", Path: cp + "/snapshot", Summary: "Snapshot a container's volumes (frozen meanwhile when running)", Tags: tags, DefaultStatus: 202},
		Perm{Path: vp, Privs: []string{"VM.Snapshot"}}, func(ctx context.Context, in *ctSnapIn) (*taskRefOut, error) {
			return taskRef(s.CTs.Snapshot(ctx, in.VMID, in.Body, caller(ctx).String()))
		})
	register(s, huma.Operation{OperationID: "rollback-container-snapshot", Method: "POST", Path: cp + "/snapshot/{name}/rollback", Summary: "Return a stopped container to a snapshot", Tags: tags, DefaultStatus: 202},
		Perm{Path: vp, Privs: []string{"VM.Snapshot.Rollback"}}, func(ctx context.Context, in *vmSnapNameIn) (*taskRefOut, error) {
			return taskRef(s.CTs.Rollback(ctx, in.VMID, in.Name, caller(ctx).String()))
		})
	register(s, huma.Operation{OperationID: "delete-container-snapshot", Method: "DELETE", Path: cp + "/snapshot/{name}", Summary: "Delete a container snapshot", Tags: tags, DefaultStatus: 202},
		Perm{Path: vp, Privs: []string{"VM.Snapshot"}}, func(ctx context.Context, in *vmSnapNameIn) (*taskRefOut, error) {
			return taskRef(s.CTs.DeleteSnapshot(ctx, in.VMID, in.Name, caller(ctx).String()))
		})
	register(s, huma.Operation{OperationID: "container-template", Method: "POST", Path: cp + "/template", Summary: "Turn a stopped container into a template", Tags: tags, DefaultStatus: 202},
		Perm{Path: vp, Privs: []string{"VM.Allocate"}}, func(ctx context.Context, in *GuestIDParam) (*taskRefOut, error) {
			return taskRef(s.CTs.Template(ctx, in.VMID, caller(ctx).String()))
		})
	register(s, huma.Operation{OperationID: "container-clone", Method: "POST", Path: cp + "/clone", Summary: "Clone a stopped container or a template (linked where the storage can)", Tags: tags, DefaultStatus: 202},
		Perm{Path: vp, Privs: []string{"VM.Clone"}}, func(ctx context.Context, in *ctCloneIn) (*guestCreatedOut, error) {
			c := caller(ctx)
			if !c.Ev.Has("/vms", "VM.Allocate") && (in.Body.NewID == 0 || !c.Ev.Has("/vms/"+strconv.Itoa(in.Body.NewID), "VM.Allocate")) {
				return nil, errs.Forbidden("permission denied: VM.Allocate required on /vms to create the clone")
			}
			newid, upid, err := s.CTs.Clone(ctx, in.VMID, in.Body, c.String())
			if err != nil {
				return nil, err
			}
			return createdOut(upid, newid), nil
		})
}

type availableIn struct {
	Server string `query:"server" maxLength:"2048" doc:"simplestreams server (default: the node's image_server)"`
}
type availableOut struct{ Body []api.AvailableTemplate }
type templateDownloadIn struct {
	NodeStorageParam
	Body api.TemplateDownload
}

func (s *Server) templateRoutes() {
	if s.CTs == nil {
		return
	}
	tags := []string{"containers"}
	register(s, huma.Operation{OperationID: "list-available-templates", Method: "GET", Path: "/templates/available", Summary: "Container images a simplestreams server offers",
		Description: "Any authenticated user may list the node's configured server; another server needs Sys.Modify on /nodes/{node}, since the node fetches it.", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *availableIn) (*availableOut, error) {
			if in.Server != "" && !caller(ctx).Ev.Has("/nodes/"+s.Node, "Sys.Modify") {
				return nil, errs.Forbidden("permission denied: Sys.Modify required on /nodes/%s to make the node fetch another server", s.Node)
			}
			out, err := s.CTs.Available(ctx, in.Server)
			if err != nil {
				var e *errs.Error
				if !errors.As(err, &e) {
					err = errs.Conflict("%v", err) // the server is unreachable or answers garbage
				}
				return nil, err
			}
			return &availableOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "download-template", Method: "POST", Path: "/nodes/{node}/storage/{storage}/download-template", Summary: "Fetch a container template (simplestreams image or URL) into a pool, as a task",
		Description: "Also needs Sys.Modify on /nodes/{node}: the node opens the connections.", Tags: tags, DefaultStatus: 202},
		Perm{Path: "/storage/{storage}", Privs: []string{"Datastore.AllocateTemplate"}}, func(ctx context.Context, in *templateDownloadIn) (*taskRefOut, error) {
			if in.Node != s.Node {
				return nil, errs.Conflict("templates are fetched by the node that stores them; send the request to %s", in.Node)
			}
			if !caller(ctx).Ev.Has("/nodes/"+in.Node, "Sys.Modify") {
				return nil, errs.Forbidden("permission denied: Sys.Modify required on /nodes/%s to make the node fetch a template", in.Node)
			}
			return taskRef(s.CTs.DownloadTemplate(ctx, in.Storage, in.Body, caller(ctx).String()))
		})
}

// taskRef answers an operation that started a task.
func taskRef(upid string, err error) (*taskRefOut, error) {
	if err != nil {
		return nil, err
	}
	return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
}

// wsWriter sends each write as one binary message with a channel byte.
type wsWriter struct {
	ctx context.Context
	ws  *websocket.Conn
	ch  byte
}

func (w wsWriter) Write(p []byte) (int, error) {
	msg := make([]byte, 1+len(p))
	msg[0] = w.ch
	copy(msg[1:], p)
	if err := w.ws.Write(w.ctx, websocket.MessageBinary, msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

// wsInput turns a client's websocket messages into a process's input and
// terminal resizes until the client leaves (then it cancels the session).
// Framed (exec): binary messages carry a channel byte, stdin or resize.
// Raw (terminal): binary messages are input, text messages resizes.
func wsInput(ctx context.Context, cancel func(), ws *websocket.Conn, framed bool) (io.Reader, chan lxc.Winsize) {
	pr, pw := io.Pipe()
	resize := make(chan lxc.Winsize, 4)
	sendSize := func(b []byte) {
		var sz struct{ Cols, Rows uint16 }
		if json.Unmarshal(b, &sz) == nil {
			select {
			case resize <- lxc.Winsize{Cols: sz.Cols, Rows: sz.Rows}:
			default:
			}
		}
	}
	go func() {
		defer pw.Close()
		defer close(resize)
		for {
			typ, msg, err := ws.Read(ctx)
			if err != nil {
				cancel() // the client left: end the process
				return
			}
			switch {
			case !framed && typ == websocket.MessageText:
				sendSize(msg)
			case !framed:
				pw.Write(msg)
			case typ != websocket.MessageBinary || len(msg) == 0:
			case msg[0] == api.ExecStdin && len(msg) == 1:
				pw.Close()
			case msg[0] == api.ExecStdin:
				pw.Write(msg[1:])
			case msg[0] == api.ExecResize:
				sendSize(msg[1:])
			}
		}
	}()
	return pr, resize
}

// execOverWebsocket runs an interactive exec session: client frames feed
// stdin and resizes; the command's output goes out framed by channel, and
// the exit code ends the session.
func (s *Server) execOverWebsocket(ctx context.Context, ws *websocket.Conn, vmid int, req api.CTExec) {
	ws.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stdin, resize := wsInput(ctx, cancel, ws, true)
	code, err := s.CTs.ExecStream(ctx, vmid, req, lxc.Stream{Stdin: stdin, Stdout: wsWriter{ctx, ws, api.ExecStdout}, Stderr: wsWriter{ctx, ws, api.ExecStderr}, Resize: resize})
	if err != nil {
		s.Log.Warn("exec session", "vmid", vmid, "err", err)
		ws.Close(websocket.StatusInternalError, "exec failed")
		return
	}
	b, _ := json.Marshal(map[string]int{"exit_code": code})
	ws.Write(ctx, websocket.MessageBinary, append([]byte{api.ExecExit}, b...))
	ws.Close(websocket.StatusNormalClosure, "exited")
}

// termOverWebsocket bridges a terminal (the console, or a login shell) to
// a websocket: binary messages are terminal bytes, text messages resizes.
func (s *Server) termOverWebsocket(ctx context.Context, ws *websocket.Conn, vmid int, mode string) {
	ws.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stdin, resize := wsInput(ctx, cancel, ws, false)
	out := rawWSWriter{ctx, ws}
	var err error
	if mode == "shell" {
		_, err = s.CTs.ExecStream(ctx, vmid, api.CTExec{Command: []string{"/bin/sh", "-l"}, TTY: true}, lxc.Stream{Stdin: stdin, Stdout: out, Resize: resize})
	} else {
		err = s.CTs.Console(ctx, vmid, lxc.Stream{Stdin: stdin, Stdout: out, Resize: resize})
	}
	if err != nil && ctx.Err() == nil {
		s.Log.Warn("container terminal", "vmid", vmid, "err", err)
	}
	ws.Close(websocket.StatusNormalClosure, "terminal closed")
}

type rawWSWriter struct {
	ctx context.Context
	ws  *websocket.Conn
}

func (w rawWSWriter) Write(p []byte) (int, error) {
	if err := w.ws.Write(w.ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
