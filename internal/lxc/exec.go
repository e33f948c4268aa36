package lxc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
)

// execSession is an interactive exec waiting for its websocket.
type execSession struct {
	vmid    int
	user    string
	req     api.CTExec
	expires time.Time
}

var envKeyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxOutput caps what a non-interactive exec returns per stream.
const maxOutput = 1 << 20

// CheckRunning refuses exec and console on containers that can't take them.
func (m *Manager) CheckRunning(vmid int) error {
	o, err := m.recs.Get(vmid)
	if err != nil {
		return err
	}
	if o.Value.Config.Node != m.node {
		return m.recs.NotOwner(vmid, o.Value.Config.Node)
	}
	switch st := m.state(vmid); st {
	case "running":
		return nil
	case "frozen":
		return errs.Conflict("container %d is suspended; resume it first", vmid)
	default:
		return errs.Conflict("container %d is not running", vmid)
	}
}

// attachArgs builds the lxc-attach argument list: a clean environment
// with PATH, HOME and the caller's variables, then the command as given.
func (m *Manager) attachArgs(vmid int, req api.CTExec) ([]string, error) {
	for i, a := range req.Command {
		if strings.ContainsRune(a, 0) || (i == 0 && a == "") {
			return nil, errs.Invalid(fmt.Sprintf("command[%d]", i), "empty program or NUL byte")
		}
	}
	args := []string{"-P", m.lxcPath, "-n", m.name(vmid), "--clear-env", "-v", "PATH=" + defaultPath, "-v", "HOME=/root"}
	if req.TTY {
		args = append(args, "-v", "TERM=xterm-256color")
	}
	for k, v := range req.Env {
		if !envKeyRe.MatchString(k) || len(k) > 128 {
			return nil, errs.Invalid("env", "invalid variable name %q", k)
		}
		if strings.ContainsRune(v, 0) || len(v) > 32768 {
			return nil, errs.Invalid("env."+k, "NUL byte or longer than 32 KiB")
		}
		args = append(args, "-v", k+"="+v)
	}
	return append(append(args, "--"), req.Command...), nil
}

// capped keeps the first maxOutput bytes written and notes the rest.
type capped struct {
	buf       bytes.Buffer
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := maxOutput - c.buf.Len(); room < len(p) {
		c.truncated = true
		c.buf.Write(p[:max(0, room)])
		return len(p), nil
	}
	return c.buf.Write(p)
}

// Exec runs a command in a running container. Non-interactive: waits and
// returns the exit code and output; the command's own failure (a missing
// binary, exit 1) is a result, not an error. Interactive: returns a
// one-time session for the exec websocket.
func (m *Manager) Exec(ctx context.Context, vmid int, req api.CTExec, user string) (api.CTExecResult, error) {
	if err := m.CheckRunning(vmid); err != nil {
		return api.CTExecResult{}, err
	}
	args, err := m.attachArgs(vmid, req)
	if err != nil {
		return api.CTExecResult{}, err
	}
	if req.Interactive {
		b := make([]byte, 24)
		rand.Read(b)
		tok := hex.EncodeToString(b)
		m.execMu.Lock()
		for k, s := range m.sessions {
			if time.Now().After(s.expires) {
				delete(m.sessions, k)
			}
		}
		m.sessions[tok] = execSession{vmid: vmid, user: user, req: req, expires: time.Now().Add(60 * time.Second)}
		m.execMu.Unlock()
		return api.CTExecResult{Session: tok}, nil
	}
	if req.TTY {
		return api.CTExecResult{}, errs.Invalid("tty", "a terminal needs interactive")
	}
	timeout := time.Duration(req.Timeout) * time.Second
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ectx, "lxc-attach", args...)
	var stdout, stderr capped
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(req.Stdin), &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	res := api.CTExecResult{Stdout: stdout.buf.String(), Stderr: stderr.buf.String(), Truncated: stdout.truncated || stderr.truncated}
	var ee *exec.ExitError
	switch {
	case ectx.Err() != nil && ctx.Err() == nil:
		return res, fmt.Errorf("command did not finish within %s: %w", timeout, context.DeadlineExceeded)
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = 128 + int(ws.Signal())
		}
	case err != nil:
		return res, fmt.Errorf("exec in container %d: %w", vmid, err)
	}
	return res, nil
}

// TakeSession returns (and forgets) an interactive exec session.
func (m *Manager) TakeSession(token string, vmid int, user string) (api.CTExec, error) {
	m.execMu.Lock()
	s, ok := m.sessions[token]
	delete(m.sessions, token)
	m.execMu.Unlock()
	if !ok || time.Now().After(s.expires) || s.vmid != vmid || s.user != user {
		return api.CTExec{}, errs.Forbidden("invalid or expired exec session")
	}
	return s.req, nil
}

// Winsize is a terminal size.
type Winsize struct{ Cols, Rows uint16 }

// Stream is the caller's end of an interactive process.
type Stream struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Resize         <-chan Winsize
}

// ExecStream runs an interactive exec session to its end and returns the
// command's exit code. With a TTY, stdout carries the terminal and stderr
// is unused.
func (m *Manager) ExecStream(ctx context.Context, vmid int, req api.CTExec, s Stream) (int, error) {
	if err := m.CheckRunning(vmid); err != nil {
		return 0, err
	}
	args, err := m.attachArgs(vmid, req)
	if err != nil {
		return 0, err
	}
	return runAttached(ctx, exec.CommandContext(ctx, "lxc-attach", args...), req.TTY, s)
}

// Console attaches to the container's console (/dev/console) with
// lxc-console on a pseudo-terminal, until the caller leaves or the
// container stops.
func (m *Manager) Console(ctx context.Context, vmid int, s Stream) error {
	if err := m.CheckRunning(vmid); err != nil {
		return err
	}
	o, _ := m.recs.Get(vmid)
	if !o.Value.Config.Console {
		return errs.Conflict("container %d has no console (console: false)", vmid)
	}
	cmd := exec.CommandContext(ctx, "lxc-console", "-P", m.lxcPath, "-n", m.name(vmid), "-t", "0", "-e", "q")
	_, err := runAttached(ctx, cmd, true, s)
	return err
}

// runAttached runs cmd with the stream on pipes or on a new pty.
func runAttached(ctx context.Context, cmd *exec.Cmd, tty bool, s Stream) (int, error) {
	var wg sync.WaitGroup
	if tty {
		ptm, pts, err := openPTY()
		if err != nil {
			return 0, err
		}
		defer ptm.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		setWinsize(ptm, Winsize{Cols: 80, Rows: 24})
		if err := cmd.Start(); err != nil {
			pts.Close()
			return 0, fmt.Errorf("start %s: %w", cmd.Path, err)
		}
		pts.Close()
		// lxc-attach and lxc-console put the terminal in raw mode with
		// TCSAFLUSH, discarding input that arrived before: hold the
		// caller's input until the other side has said something (its
		// banner or prompt), or a moment has passed.
		ready := make(chan struct{})
		go func() {
			select {
			case <-ready:
			case <-time.After(2 * time.Second):
			case <-ctx.Done():
				return
			}
			io.Copy(ptm, s.Stdin)
		}()
		if s.Resize != nil {
			go func() {
				for w := range s.Resize {
					setWinsize(ptm, w)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for first := true; ; first = false {
				n, err := ptm.Read(buf)
				if n > 0 {
					if _, werr := s.Stdout.Write(buf[:n]); werr != nil {
						return
					}
				}
				if first {
					close(ready)
				}
				if err != nil {
					return // EIO once the last holder of the pty exits
				}
			}
		}()
	} else {
		cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return 0, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return 0, fmt.Errorf("start %s: %w", cmd.Path, err)
		}
		go func() {
			io.Copy(in, s.Stdin)
			in.Close()
		}()
	}
	err := cmd.Wait()
	wg.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil && ctx.Err() == nil {
		return 0, err
	}
	return 0, nil
}

// openPTY allocates a pseudo-terminal pair.
func openPTY() (ptm, pts *os.File, err error) {
	ptm, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	fd := int(ptm.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	return ptm, pts, nil
}

func setWinsize(f *os.File, w Winsize) {
	if w.Cols == 0 || w.Rows == 0 {
		return
	}
	unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: w.Rows, Col: w.Cols})
}
