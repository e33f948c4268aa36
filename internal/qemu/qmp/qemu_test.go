package qmp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests drive a real QEMU: paused (-S), no disk, TCG, so they need no
// KVM and no guest image and take well under a second per VM.

func skip(t *testing.T, reason string) {
	t.Helper()
	fmt.Println("SKIP reason: " + reason)
	t.Skip("SKIP reason: " + reason)
}

type qemuVM struct {
	sock    string
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{} // closed when the process has been reaped
	waitErr error
}

// syncBuffer collects QEMU's output; exec writes it from another goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startQEMU starts a paused VM whose QMP socket uses the given command-line
// form ("qmp" or "chardev") and returns once the socket exists.
func startQEMU(t *testing.T, form string) *qemuVM {
	t.Helper()
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		skip(t, "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
	}
	// Not t.TempDir: its long path can exceed the 108-byte sun_path limit.
	dir, err := os.MkdirTemp("", "qmp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "qmp.sock")

	args := []string{"-accel", "tcg", "-machine", "q35", "-m", "64", "-nodefaults",
		"-display", "none", "-S", "-name", "corral-test"}
	switch form {
	case "qmp":
		args = append(args, "-qmp", "unix:"+sock+",server=on,wait=off")
	case "chardev":
		args = append(args, "-chardev", "socket,id=qmp,path="+sock+",server=on,wait=off",
			"-mon", "chardev=qmp,mode=control")
	default:
		t.Fatalf("unknown form %q", form)
	}
	vm := &qemuVM{sock: sock, cmd: exec.Command(bin, args...), log: &syncBuffer{}, exited: make(chan struct{})}
	vm.cmd.Stdout, vm.cmd.Stderr = vm.log, vm.log
	if err := vm.cmd.Start(); err != nil {
		t.Fatalf("starting qemu: %v", err)
	}
	go func() {
		vm.waitErr = vm.cmd.Wait()
		close(vm.exited)
	}()
	t.Cleanup(func() {
		vm.cmd.Process.Kill()
		<-vm.exited
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return vm
		}
		select {
		case <-vm.exited:
			t.Fatalf("qemu exited at start: %v\n%s", vm.waitErr, vm.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu did not create %s\n%s", sock, vm.log)
		}
	}
}

func dialVM(t testing.TB, vm *qemuVM) *Monitor {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		m, err := Dial(ctx, vm.sock)
		if err == nil {
			t.Cleanup(func() { m.Close() })
			return m
		}
		// QEMU binds the socket path a moment before it listens on it.
		if !errors.Is(err, syscall.ECONNREFUSED) || ctx.Err() != nil {
			t.Fatalf("Dial: %v\n%s", err, vm.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitEvent returns the next event named name, failing the test after 10s
// or if the subscription closes first.
func waitEvent(t *testing.T, sub *Subscription, name string) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				t.Fatalf("subscription closed while waiting for %s", name)
			}
			if ev.Name == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within 10s", name)
		}
	}
}

func wantStatus(t *testing.T, m *Monitor, status string, running bool) {
	t.Helper()
	st, err := m.Status(testCtx(t))
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Status != status || st.Running != running {
		t.Fatalf("Status = %+v, want {%s %v}", st, status, running)
	}
}

// TestQEMU walks one VM per QMP command-line form through its life in the
// order the VM driver would.
func TestQEMU(t *testing.T) {
	for _, form := range []string{"qmp", "chardev"} {
		t.Run(form, func(t *testing.T) { testQEMULifecycle(t, form) })
	}
}

func testQEMULifecycle(t *testing.T, form string) {
	top := t // subtests that dial register cleanups here, not on themselves
	vm := startQEMU(t, form)
	m := dialVM(t, vm)
	sub := m.Subscribe()
	defer sub.Close()

	t.Run("greeting version", func(t *testing.T) {
		v := m.Version()
		if !v.AtLeast(2, 12) {
			t.Fatalf("greeting version %v (%q) looks wrong", v, v.Package)
		}
		qv, err := m.QueryVersion(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if qv != v {
			t.Fatalf("query-version %+v != greeting %+v", qv, v)
		}
		t.Logf("QEMU %v (%s), capabilities %v", v, v.Package, m.Capabilities())
	})

	t.Run("prelaunch", func(t *testing.T) { wantStatus(t, m, "prelaunch", false) })

	t.Run("cont emits RESUME", func(t *testing.T) {
		if err := m.Execute(testCtx(t), "cont", nil, nil); err != nil {
			t.Fatal(err)
		}
		ev := waitEvent(t, sub, EventResume)
		if ev.Timestamp.IsZero() || time.Since(ev.Timestamp).Abs() > time.Minute {
			t.Errorf("RESUME timestamp %v is not about now", ev.Timestamp)
		}
		wantStatus(t, m, "running", true)
	})

	t.Run("stop emits STOP", func(t *testing.T) {
		if err := m.Execute(testCtx(t), "stop", nil, nil); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, sub, EventStop)
		wantStatus(t, m, "paused", false)
	})

	t.Run("concurrent callers get their own replies", func(t *testing.T) {
		ctx := testCtx(t)
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Go(func() {
				for range 5 {
					if i%2 == 0 {
						var st StatusInfo
						if err := m.Execute(ctx, "query-status", nil, &st); err != nil {
							errs <- err
							return
						}
						if st.Status != "paused" {
							errs <- fmt.Errorf("goroutine %d: query-status got %+v", i, st)
							return
						}
					} else {
						var name struct {
							Name *string `json:"name"`
						}
						if err := m.Execute(ctx, "query-name", nil, &name); err != nil {
							errs <- err
							return
						}
						if name.Name == nil || *name.Name != "corral-test" {
							errs <- fmt.Errorf("goroutine %d: query-name got %+v", i, name)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name      string
			command   string
			args      any
			wantClass string
		}{
			{"unknown command", "no-such-command", nil, ClassCommandNotFound},
			{"unexpected argument", "query-status", map[string]any{"bogus": 1}, ClassGenericError},
			{"missing argument", "human-monitor-command", nil, ClassGenericError},
			{"no such device", "device_del", map[string]any{"id": "nope"}, ClassDeviceNotFound},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := m.Execute(testCtx(t), tc.command, tc.args, nil)
				var qerr *Error
				if !errors.As(err, &qerr) {
					t.Fatalf("err = %v, want *Error", err)
				}
				if qerr.Class != tc.wantClass || qerr.Desc == "" {
					t.Fatalf("err = %+v, want class %s with a description", qerr, tc.wantClass)
				}
				if !strings.Contains(err.Error(), tc.command) {
					t.Errorf("error %q does not name the command", err)
				}
			})
		}
	})

	t.Run("arguments and result", func(t *testing.T) {
		var out string
		args := map[string]any{"command-line": "info status"}
		if err := m.Execute(testCtx(t), "human-monitor-command", args, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "paused") {
			t.Fatalf("info status = %q", out)
		}
	})

	t.Run("1ns deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
		defer cancel()
		start := time.Now()
		err := m.Execute(ctx, "query-status", nil, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("took %v", d)
		}
		wantStatus(t, m, "paused", false) // the monitor is unaffected
	})

	t.Run("second client waits for the first", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		m2, err := Dial(ctx, vm.sock)
		if err == nil {
			m2.Close()
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second Dial err = %v, want DeadlineExceeded", err)
		}
		wantStatus(t, m, "paused", false) // the first client is unaffected
	})

	t.Run("reconnect keeps the VM", func(t *testing.T) {
		// A daemon restart: the old connection goes away, QEMU keeps running
		// and serves the next client, even with the abandoned connection of
		// the previous subtest queued before it.
		sub.Close()
		m.Close()
		if err := m.Err(); err != ErrClosed {
			t.Fatalf("Err after Close = %v, want ErrClosed", err)
		}
		m = dialVM(top, vm)
		sub = m.Subscribe()
		wantStatus(t, m, "paused", false)
	})

	t.Run("quit", func(t *testing.T) {
		// QEMU answers every command promptly, so calls racing the quit
		// either get their reply or fail with ErrClosed; never anything else
		// and never hang. (A call deterministically left pending is covered
		// by the fake-server tests and TestQEMUKilled.)
		ctx := testCtx(t)
		var wg sync.WaitGroup
		results := make(chan error, 50)
		for range 50 {
			wg.Go(func() { results <- m.Execute(ctx, "query-status", nil, nil) })
		}
		if err := m.Quit(ctx); err != nil {
			t.Fatalf("Quit: %v", err)
		}
		wg.Wait()
		close(results)
		for err := range results {
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("racing Execute: %v, want nil or ErrClosed", err)
			}
		}

		select {
		case <-m.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("Done did not fire")
		}
		if err := m.Err(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Err = %v, want ErrClosed", err)
		}
		err := m.Execute(ctx, "query-status", nil, nil)
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Execute after quit = %v, want ErrClosed", err)
		}

		ev := waitEvent(t, sub, EventShutdown)
		var data struct {
			Guest  bool   `json:"guest"`
			Reason string `json:"reason"`
		}
		if err := ev.DecodeData(&data); err != nil {
			t.Fatal(err)
		}
		if data.Guest || data.Reason != "host-qmp-quit" {
			t.Errorf("SHUTDOWN data = %+v", data)
		}
		if _, ok := <-sub.C; ok {
			t.Error("subscription still open after the monitor ended")
		}
		select {
		case <-vm.exited:
		case <-time.After(10 * time.Second):
			t.Fatal("qemu did not exit")
		}
	})
}

// TestQEMUKilled is the crash case: QEMU dies with SIGKILL while callers are
// busy. Everything must unblock with ErrClosed and Done must fire.
func TestQEMUKilled(t *testing.T) {
	vm := startQEMU(t, "qmp")
	m := dialVM(t, vm)
	sub := m.Subscribe()
	ctx := testCtx(t)

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			for {
				if err := m.Execute(ctx, "query-status", nil, nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // let the callers get going
	if err := vm.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Execute after kill: %v, want ErrClosed", err)
		}
	}
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not fire")
	}
	if err := m.Err(); !errors.Is(err, ErrClosed) || err == ErrClosed {
		t.Fatalf("Err = %v, want ErrClosed wrapping the cause", err)
	}
	t.Logf("Err after kill: %v", m.Err())
	for ev := range sub.C { // no SHUTDOWN: nobody told QEMU to shut down
		t.Errorf("unexpected event %s", ev.Name)
	}
}
