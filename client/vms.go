package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/coder/websocket"

	"github.com/corral-project/corral/api"
)

// Power actions of VMAction.
const (
	VMStart    = "start"
	VMShutdown = "shutdown"
	VMStop     = "stop"
	VMReboot   = "reboot"
	VMReset    = "reset"
	VMSuspend  = "suspend"
	VMResume   = "resume"
)

// VMActions lists the power actions VMAction accepts.
var VMActions = []string{VMStart, VMShutdown, VMStop, VMReboot, VMReset, VMSuspend, VMResume}

// VMCreated answers CreateVM: the ID the VM got and the task that
// allocates its disks (and starts it, when asked).
type VMCreated struct {
	Task string `json:"task"`
	VMID int    `json:"vmid"`
}

func vmPath(vmid int, rest ...string) string {
	return PathJoin(append([]string{"vms", strconv.Itoa(vmid)}, rest...)...)
}

// VMs lists the VMs the caller may audit; node ("" for all) filters by
// the node they belong to.
func (c *Client) VMs(ctx context.Context, node string) ([]api.VM, error) {
	var q url.Values
	if node != "" {
		q = url.Values{"node": {node}}
	}
	var out []api.VM
	if _, err := c.Do(ctx, http.MethodGet, "/vms", q, nil, &out); err != nil {
		return nil, fmt.Errorf("list VMs: %w", err)
	}
	return out, nil
}

// VM returns a VM's config, its pending changes, lock and status. Its
// Digest can be passed to WithIfMatch.
func (c *Client) VM(ctx context.Context, vmid int) (*api.VM, error) {
	var out api.VM
	resp, err := c.Do(ctx, http.MethodGet, vmPath(vmid, "config"), nil, nil, &out)
	if err != nil {
		return nil, fmt.Errorf("get VM %d: %w", vmid, err)
	}
	if out.Digest == "" {
		out.Digest = unquoteETag(resp.Header.Get("ETag"))
	}
	return &out, nil
}

// unquoteETag turns a strong ETag header into the bare digest.
func unquoteETag(s string) string {
	if n := len(s); n >= 2 && s[0] == '"' && s[n-1] == '"' {
		return s[1 : n-1]
	}
	return s
}

// CreateVM creates a VM. Its disks are allocated in a task: the VM exists
// (locked "create") once this returns, and is usable when the task ends
// ok. Follow the task with WaitTask or FollowTaskLog.
func (c *Client) CreateVM(ctx context.Context, in api.VMCreate) (*VMCreated, error) {
	var out VMCreated
	if _, err := c.Do(ctx, http.MethodPost, "/vms", nil, in, &out); err != nil {
		if in.VMID != 0 {
			return nil, fmt.Errorf("create VM %d: %w", in.VMID, err)
		}
		return nil, fmt.Errorf("create VM: %w", err)
	}
	if out.Task == "" {
		return nil, errors.New("create VM: server returned no task ID")
	}
	return &out, nil
}

// UpdateVM changes the fields set in u and returns the VM as it is now. On a
// running VM, changes that need a restart are kept as pending (VM.Pending).
// Pass WithIfMatch to make the change conditional on the VM's digest.
func (c *Client) UpdateVM(ctx context.Context, vmid int, u api.VMUpdate, opts ...RequestOption) (*api.VM, error) {
	var out api.VM
	if _, err := c.Do(ctx, http.MethodPut, vmPath(vmid, "config"), nil, u, &out, opts...); err != nil {
		return nil, fmt.Errorf("update VM %d: %w", vmid, err)
	}
	return &out, nil
}

// DeleteVM destroys a stopped, unprotected VM and frees its disks, as a
// task whose UPID it returns. purge also removes the ACL entries on the
// VM's path.
func (c *Client) DeleteVM(ctx context.Context, vmid int, purge bool) (string, error) {
	var q url.Values
	if purge {
		q = url.Values{"purge": {"true"}}
	}
	return c.taskRef(ctx, http.MethodDelete, vmPath(vmid), q, nil, fmt.Sprintf("destroy VM %d", vmid))
}

// VMAction runs a power action (one of VMActions) as a task and returns
// its UPID. sd only matters to shutdown and reboot; nil leaves both to the
// server (wait 60 seconds for the guest, then stop it).
func (c *Client) VMAction(ctx context.Context, vmid int, action string, sd *api.VMShutdown) (string, error) {
	var body any
	if sd != nil {
		body = sd
	}
	return c.taskRef(ctx, http.MethodPost, vmPath(vmid, "status", action), nil, body, fmt.Sprintf("%s VM %d", action, vmid))
}

// StartVM starts a stopped VM, as a task.
func (c *Client) StartVM(ctx context.Context, vmid int) (string, error) {
	return c.VMAction(ctx, vmid, VMStart, nil)
}

// StopVM stops a VM at once (like pulling the plug), as a task.
func (c *Client) StopVM(ctx context.Context, vmid int) (string, error) {
	return c.VMAction(ctx, vmid, VMStop, nil)
}

// ShutdownVM presses the VM's ACPI power button and waits for the guest to
// power off, as a task; see VMAction for sd.
func (c *Client) ShutdownVM(ctx context.Context, vmid int, sd *api.VMShutdown) (string, error) {
	return c.VMAction(ctx, vmid, VMShutdown, sd)
}

// VMStatus returns a VM's runtime state on its node.
func (c *Client) VMStatus(ctx context.Context, vmid int) (*api.VMStatus, error) {
	var out api.VMStatus
	if _, err := c.Do(ctx, http.MethodGet, vmPath(vmid, "status"), nil, nil, &out); err != nil {
		return nil, fmt.Errorf("get status of VM %d: %w", vmid, err)
	}
	return &out, nil
}

// ---- templates and clones ----

// TemplateVM turns a stopped VM into a template, as a task: its disks
// become read-only base volumes that linked clones share.
func (c *Client) TemplateVM(ctx context.Context, vmid int) (string, error) {
	return c.taskRef(ctx, http.MethodPost, vmPath(vmid, "template"), nil, nil, fmt.Sprintf("make VM %d a template", vmid))
}

// CloneVM clones a stopped VM or a template into a new VM on the same
// node, as a task; the answer names the new VM's ID.
func (c *Client) CloneVM(ctx context.Context, vmid int, in api.VMClone) (*VMCreated, error) {
	var out VMCreated
	if _, err := c.Do(ctx, http.MethodPost, vmPath(vmid, "clone"), nil, in, &out); err != nil {
		return nil, fmt.Errorf("clone VM %d: %w", vmid, err)
	}
	if out.Task == "" {
		return nil, fmt.Errorf("clone VM %d: server returned no task ID", vmid)
	}
	return &out, nil
}

// ---- snapshots ----

// VMSnapshots lists a VM's snapshots; Parent links them into a tree and
// Current marks the one the VM's state derives from.
func (c *Client) VMSnapshots(ctx context.Context, vmid int) ([]api.VMSnapshot, error) {
	var out []api.VMSnapshot
	if _, err := c.Do(ctx, http.MethodGet, vmPath(vmid, "snapshot"), nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list snapshots of VM %d: %w", vmid, err)
	}
	return out, nil
}

// SnapshotVM takes a snapshot, as a task: of the disks when the VM is
// stopped, of the disks and its RAM when it runs.
func (c *Client) SnapshotVM(ctx context.Context, vmid int, in api.VMSnapshotCreate) (string, error) {
	return c.taskRef(ctx, http.MethodPost, vmPath(vmid, "snapshot"), nil, in, fmt.Sprintf("snapshot VM %d", vmid))
}

// RollbackVM returns a VM to a snapshot, as a task.
func (c *Client) RollbackVM(ctx context.Context, vmid int, name string) (string, error) {
	return c.taskRef(ctx, http.MethodPost, vmPath(vmid, "snapshot", name, "rollback"), nil, nil, fmt.Sprintf("roll VM %d back to %s", vmid, name))
}

// DeleteVMSnapshot deletes a snapshot, as a task.
func (c *Client) DeleteVMSnapshot(ctx context.Context, vmid int, name string) (string, error) {
	return c.taskRef(ctx, http.MethodDelete, vmPath(vmid, "snapshot", name), nil, nil, fmt.Sprintf("delete snapshot %s of VM %d", name, vmid))
}

// ---- disks ----

// ResizeVMDisk grows disk (0 for disk0) to size ("20G"), or by size when
// it starts with "+" ("+5G"), as a task; live when the VM runs.
func (c *Client) ResizeVMDisk(ctx context.Context, vmid, disk int, size string) (string, error) {
	return c.taskRef(ctx, http.MethodPost, vmPath(vmid, "disks", strconv.Itoa(disk), "resize"), nil, api.VMDiskResize{Size: size},
		fmt.Sprintf("resize disk%d of VM %d", disk, vmid))
}

// MoveVMDisk moves a stopped VM's disk to another pool, as a task.
func (c *Client) MoveVMDisk(ctx context.Context, vmid, disk int, in api.VMDiskMove) (string, error) {
	return c.taskRef(ctx, http.MethodPost, vmPath(vmid, "disks", strconv.Itoa(disk), "move"), nil, in,
		fmt.Sprintf("move disk%d of VM %d to %s", disk, vmid, in.Storage))
}

// ---- consoles ----

// SerialConsole connects to the first serial port of a running VM through
// the console websocket. The connection carries the port's raw bytes both
// ways; closing it detaches (the VM keeps running). It lives until ctx
// ends or either side closes it; only the handshake is bounded by the
// client's Timeout. Errors the server answers with instead of a websocket
// (a stopped VM, no permission) are *api.Problem values as usual.
func (c *Client) SerialConsole(ctx context.Context, vmid int) (net.Conn, error) {
	conn, err := c.dialWebsocket(ctx, vmPath(vmid, "termwebsocket"), nil)
	if err != nil {
		return nil, fmt.Errorf("open console of VM %d: %w", vmid, err)
	}
	return conn, nil
}

// VNCTicket answers VNCProxy.
type VNCTicket struct {
	Ticket   string `json:"ticket"`
	Password string `json:"password"`
}

// VNCProxy opens a VNC session on a running VM's display: a one-time
// ticket for VNCConsole, valid for 60 seconds, and the RFB (VNC) password
// the viewer must give. Each call sets a new password.
func (c *Client) VNCProxy(ctx context.Context, vmid int) (*VNCTicket, error) {
	var out VNCTicket
	if _, err := c.Do(ctx, http.MethodPost, vmPath(vmid, "vncproxy"), nil, nil, &out); err != nil {
		return nil, fmt.Errorf("open VNC session on VM %d: %w", vmid, err)
	}
	return &out, nil
}

// VNCConsole connects to a VM's display with a ticket from VNCProxy. The
// connection carries RFB, as a VNC viewer speaks it; like SerialConsole it
// lives until ctx ends or either side closes it.
func (c *Client) VNCConsole(ctx context.Context, vmid int, ticket string) (net.Conn, error) {
	conn, err := c.dialWebsocket(ctx, vmPath(vmid, "vncwebsocket"), url.Values{"vncticket": {ticket}})
	if err != nil {
		return nil, fmt.Errorf("open VNC display of VM %d: %w", vmid, err)
	}
	return conn, nil
}

// dialWebsocket opens one of the server's byte-stream websockets (binary
// frames) with the client's credentials and transport.
func (c *Client) dialWebsocket(ctx context.Context, path string, query url.Values) (net.Conn, error) {
	ws, err := c.dialWS(ctx, path, query)
	if err != nil {
		return nil, err
	}
	return consoleConn{websocket.NetConn(ctx, ws, websocket.MessageBinary)}, nil
}

// dialWS opens a websocket with the client's credentials and transport;
// the caller reads and writes whole messages.
func (c *Client) dialWS(ctx context.Context, path string, query url.Values) (*websocket.Conn, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, query, nil, nil)
	if err != nil {
		return nil, err
	}
	hc, err := c.websocketClient()
	if err != nil {
		return nil, err
	}
	dctx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	ws, resp, err := websocket.Dial(dctx, req.URL.String(), &websocket.DialOptions{
		HTTPClient:   hc,
		HTTPHeader:   req.Header,
		Subprotocols: []string{"binary"},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var data []byte
			if resp.Body != nil {
				data, _ = io.ReadAll(io.LimitReader(resp.Body, 1024))
			}
			return nil, decodeProblem(resp.StatusCode, resp.Header.Get("Content-Type"), data)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, c.transportError(http.MethodGet, path, err)
	}
	// A guest may write a burst (a boot log, a screen update) larger than
	// the library's default frame limit.
	ws.SetReadLimit(1 << 20)
	return ws, nil
}

// consoleConn reads the end of the stream as io.EOF however the server
// ended it: when a VM stops, the server drops the connection without a
// websocket close frame, which the websocket library reports as an error.
type consoleConn struct{ net.Conn }

func (c consoleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && err != io.EOF && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		err = io.EOF
	}
	return n, err
}

// websocketClient returns an HTTP client for a websocket handshake: the
// client's own transport (TLS trust, unix socket) limited to HTTP/1.1,
// since the upgrade does not exist in HTTP/2.
func (c *Client) websocketClient() (*http.Client, error) {
	t, ok := c.hc.Transport.(*http.Transport)
	if !ok {
		return nil, errors.New("websocket needs an *http.Transport")
	}
	t = t.Clone()
	var p http.Protocols
	p.SetHTTP1(true)
	t.Protocols = &p
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	if t.TLSClientConfig != nil {
		t.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	return &http.Client{Transport: t}, nil
}
