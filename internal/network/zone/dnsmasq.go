package zone

import (
	"context"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/corral-project/corral/internal/network"
)

// dnsmasq supervises one dnsmasq: restarted a second after it dies, until
// stopped.
type dnsmasq struct {
	args   []string
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	cmd    *exec.Cmd
}

func startDNS(ns *network.NS, vnet string, args []string, log *slog.Logger) *dnsmasq {
	ctx, cancel := context.WithCancel(context.Background())
	d := &dnsmasq{args: args, cancel: cancel, done: make(chan struct{})}
	argv := append([]string{"dnsmasq"}, args...)
	if ns.Name != "" { // a test's namespace; the daemon's own needs no wrapper
		argv = append([]string{"ip", "netns", "exec", ns.Name}, argv...)
	}
	go func() {
		defer close(d.done)
		for {
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			cmd.WaitDelay = 5 * time.Second
			out := &tail{}
			cmd.Stdout, cmd.Stderr = out, out
			err := cmd.Start()
			if err == nil {
				d.mu.Lock()
				d.cmd = cmd
				d.mu.Unlock()
				err = cmd.Wait()
				d.mu.Lock()
				d.cmd = nil
				d.mu.Unlock()
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn("dnsmasq exited; restarting", "vnet", vnet, "err", err, "output", out.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return d
}

func (d *dnsmasq) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// reload makes dnsmasq re-read its hosts file.
func (d *dnsmasq) reload() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Signal(syscall.SIGHUP)
	}
}

func (d *dnsmasq) stop() {
	d.cancel()
	<-d.done
}

// tail keeps the last 2 KiB of a process's output for the log.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = t.b[len(t.b)-2048:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
