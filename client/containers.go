package client

import (
	"context"
	"encoding/json"
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

// CTActions lists the power actions CTAction accepts.
var CTActions = []string{"start", "shutdown", "stop", "reboot", "suspend", "resume"}

func ctPath(vmid int, rest ...string) string {
	return PathJoin(append([]string{"containers", strconv.Itoa(vmid)}, rest...)...)
}

// Containers lists the containers the caller may audit; node ("" for all)
// filters by the node they belong to.
func (c *Client) Containers(ctx context.Context, node string) ([]api.CT, error) {
	var q url.Values
	if node != "" {
		q = url.Values{"node": {node}}
	}
	var out []api.CT
	if _, err := c.Do(ctx, http.MethodGet, "/containers", q, nil, &out); err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return out, nil
}

// Container returns a container's config, pending changes, lock and status.
func (c *Client) Container(ctx context.Context, vmid int) (*api.CT, error) {
	var out api.CT
	resp, err := c.Do(ctx, http.MethodGet, ctPath(vmid, "config"), nil, nil, &out)
	if err != nil {
		return nil, fmt.Errorf("get container %d: %w", vmid, err)
	}
	if out.Digest == "" {
		out.Digest = unquoteETag(resp.Header.Get("ETag"))
	}
	return &out, nil
}

// CreateContainer creates a container from a template; the template is
// unpacked in a task (the container exists, locked "create", meanwhile).
func (c *Client) CreateContainer(ctx context.Context, in api.CTCreate) (*VMCreated, error) {
	var out VMCreated
	if _, err := c.Do(ctx, http.MethodPost, "/containers", nil, in, &out); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	if out.Task == "" {
		return nil, errors.New("create container: server returned no task ID")
	}
	return &out, nil
}

// UpdateContainer changes the fields set in u. On a running container
// limits apply at once and other changes become pending.
func (c *Client) UpdateContainer(ctx context.Context, vmid int, u api.CTUpdate, opts ...RequestOption) (*api.CT, error) {
	var out api.CT
	if _, err := c.Do(ctx, http.MethodPut, ctPath(vmid, "config"), nil, u, &out, opts...); err != nil {
		return nil, fmt.Errorf("update container %d: %w", vmid, err)
	}
	return &out, nil
}

// DeleteContainer destroys a stopped container and frees its volumes, as
// a task.
func (c *Client) DeleteContainer(ctx context.Context, vmid int, purge bool) (string, error) {
	var q url.Values
	if purge {
		q = url.Values{"purge": {"true"}}
	}
	return c.taskRef(ctx, http.MethodDelete, ctPath(vmid), q, nil, fmt.Sprintf("destroy container %d", vmid))
}

// CTAction runs a power action (one of CTActions) as a task.
func (c *Client) CTAction(ctx context.Context, vmid int, action string, sd *api.CTShutdown) (string, error) {
	var body any
	if sd != nil {
		body = sd
	}
	return c.taskRef(ctx, http.MethodPost, ctPath(vmid, "status", action), nil, body, fmt.Sprintf("%s container %d", action, vmid))
}

// CTStatus returns a container's runtime state.
func (c *Client) CTStatus(ctx context.Context, vmid int) (*api.CTStatus, error) {
	var out api.CTStatus
	if _, err := c.Do(ctx, http.MethodGet, ctPath(vmid, "status"), nil, nil, &out); err != nil {
		return nil, fmt.Errorf("get status of container %d: %w", vmid, err)
	}
	return &out, nil
}

// CTExec runs a command to its end and returns its exit code and output.
func (c *Client) CTExec(ctx context.Context, vmid int, in api.CTExec) (*api.CTExecResult, error) {
	in.Interactive = false
	var out api.CTExecResult
	if _, err := c.Do(ctx, http.MethodPost, ctPath(vmid, "exec"), nil, in, &out); err != nil {
		return nil, fmt.Errorf("exec in container %d: %w", vmid, err)
	}
	return &out, nil
}

// ExecSession is a running interactive exec.
type ExecSession struct {
	ws  *websocket.Conn
	ctx context.Context
}

// CTExecInteractive starts a command with streamed stdin, stdout and
// stderr (or a terminal with in.TTY).
func (c *Client) CTExecInteractive(ctx context.Context, vmid int, in api.CTExec) (*ExecSession, error) {
	in.Interactive = true
	var out api.CTExecResult
	if _, err := c.Do(ctx, http.MethodPost, ctPath(vmid, "exec"), nil, in, &out); err != nil {
		return nil, fmt.Errorf("exec in container %d: %w", vmid, err)
	}
	ws, err := c.dialWS(ctx, ctPath(vmid, "execwebsocket"), url.Values{"session": {out.Session}})
	if err != nil {
		return nil, fmt.Errorf("exec in container %d: %w", vmid, err)
	}
	return &ExecSession{ws: ws, ctx: ctx}, nil
}

func (s *ExecSession) send(ch byte, p []byte) error {
	return s.ws.Write(s.ctx, websocket.MessageBinary, append([]byte{ch}, p...))
}

// Write sends bytes to the command's standard input.
func (s *ExecSession) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := s.send(api.ExecStdin, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseStdin ends the command's standard input.
func (s *ExecSession) CloseStdin() error { return s.send(api.ExecStdin, nil) }

// Resize changes the terminal size of a TTY session.
func (s *ExecSession) Resize(cols, rows int) error {
	b, _ := json.Marshal(map[string]int{"cols": cols, "rows": rows})
	return s.send(api.ExecResize, b)
}

// Wait copies the command's output to stdout and stderr until it exits,
// and returns its exit code.
func (s *ExecSession) Wait(stdout, stderr io.Writer) (int, error) {
	defer s.ws.CloseNow()
	for {
		_, msg, err := s.ws.Read(s.ctx)
		if err != nil {
			return -1, fmt.Errorf("exec session ended without an exit code: %w", err)
		}
		if len(msg) == 0 {
			continue
		}
		switch msg[0] {
		case api.ExecStdout:
			stdout.Write(msg[1:])
		case api.ExecStderr:
			stderr.Write(msg[1:])
		case api.ExecExit:
			var e struct {
				ExitCode int `json:"exit_code"`
			}
			if err := json.Unmarshal(msg[1:], &e); err != nil {
				return -1, fmt.Errorf("exec session: bad exit message: %w", err)
			}
			s.ws.Close(websocket.StatusNormalClosure, "")
			return e.ExitCode, nil
		}
	}
}

// Close abandons the session (the command is ended by the server).
func (s *ExecSession) Close() error { return s.ws.CloseNow() }

// CTTerminal connects to a running container's console (mode "console")
// or a login shell in it (mode "shell"); the connection carries terminal
// bytes both ways.
func (c *Client) CTTerminal(ctx context.Context, vmid int, mode string) (net.Conn, error) {
	conn, err := c.dialWebsocket(ctx, ctPath(vmid, "termwebsocket"), url.Values{"mode": {mode}})
	if err != nil {
		return nil, fmt.Errorf("open %s of container %d: %w", mode, vmid, err)
	}
	return conn, nil
}

// BuildTemplate builds a container template (kind busybox or debian) into
// a pool of a node, as a task.
func (c *Client) BuildTemplate(ctx context.Context, node, storage string, in api.TemplateBuild) (string, error) {
	return c.taskRef(ctx, http.MethodPost, PathJoin("nodes", node, "storage", storage, "build-template"), nil, in, "build template")
}

// CTSnapshots lists a container's snapshots.
func (c *Client) CTSnapshots(ctx context.Context, vmid int) ([]api.CTSnapshot, error) {
	var out []api.CTSnapshot
	if _, err := c.Do(ctx, http.MethodGet, ctPath(vmid, "snapshot"), nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list snapshots of container %d: %w", vmid, err)
	}
	return out, nil
}

// SnapshotCT snapshots a container's volumes, as a task.
func (c *Client) SnapshotCT(ctx context.Context, vmid int, in api.CTSnapshotCreate) (string, error) {
	return c.taskRef(ctx, http.MethodPost, ctPath(vmid, "snapshot"), nil, in, fmt.Sprintf("snapshot container %d", vmid))
}

// RollbackCT returns a stopped container to a snapshot, as a task.
func (c *Client) RollbackCT(ctx context.Context, vmid int, name string) (string, error) {
	return c.taskRef(ctx, http.MethodPost, ctPath(vmid, "snapshot", name, "rollback"), nil, nil, fmt.Sprintf("roll container %d back to %s", vmid, name))
}

// DeleteCTSnapshot deletes a container snapshot, as a task.
func (c *Client) DeleteCTSnapshot(ctx context.Context, vmid int, name string) (string, error) {
	return c.taskRef(ctx, http.MethodDelete, ctPath(vmid, "snapshot", name), nil, nil, fmt.Sprintf("delete snapshot %s of container %d", name, vmid))
}

// TemplateCT turns a stopped container into a template, as a task.
func (c *Client) TemplateCT(ctx context.Context, vmid int) (string, error) {
	return c.taskRef(ctx, http.MethodPost, ctPath(vmid, "template"), nil, nil, fmt.Sprintf("make container %d a template", vmid))
}

// CloneCT clones a stopped container or a template, as a task.
func (c *Client) CloneCT(ctx context.Context, vmid int, in api.CTClone) (*VMCreated, error) {
	var out VMCreated
	if _, err := c.Do(ctx, http.MethodPost, ctPath(vmid, "clone"), nil, in, &out); err != nil {
		return nil, fmt.Errorf("clone container %d: %w", vmid, err)
	}
	return &out, nil
}

// AvailableTemplates lists the images of a simplestreams server ("" for
// the node's configured one).
func (c *Client) AvailableTemplates(ctx context.Context, server string) ([]api.AvailableTemplate, error) {
	var q url.Values
	if server != "" {
		q = url.Values{"server": {server}}
	}
	var out []api.AvailableTemplate
	if _, err := c.Do(ctx, http.MethodGet, "/templates/available", q, nil, &out); err != nil {
		return nil, fmt.Errorf("list available templates: %w", err)
	}
	return out, nil
}

// DownloadTemplate fetches a simplestreams image or a URL into a pool, as
// a task.
func (c *Client) DownloadTemplate(ctx context.Context, node, storage string, in api.TemplateDownload) (string, error) {
	return c.taskRef(ctx, http.MethodPost, PathJoin("nodes", node, "storage", storage, "download-template"), nil, in, "download template")
}
