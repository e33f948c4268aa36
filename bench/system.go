package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cleanupTimeout bounds each undo step of lab.close; they run on a fresh
// context because the run's own may already be cancelled (Ctrl-C).
const cleanupTimeout = 30 * time.Second

// runCmd runs a command (argument list, no shell) and returns how long it
// took from exec to exit; on failure its output is in the error.
func runCmd(ctx context.Context, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return d, nil
}

// cmdOutput runs a command and returns its standard output, trimmed.
func cmdOutput(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// undo runs a cleanup command on its own context and logs a failure.
func undo(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	_, err := runCmd(ctx, name, args...)
	if err != nil {
		logf("cleanup: %v", err)
	}
	return err
}

// firstLine is the first line of s, for version strings.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// pidAlive reports whether pid runs; a zombie counts as gone (QEMU
// daemonizes, so its exit may wait for a reaper that never comes).
func pidAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

// waitGone waits up to d for pid to exit.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for pidAlive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// qemuFromPidfile returns the pid a QEMU pidfile names, provided that
// process is still the QEMU that wrote it (its command line names the
// pidfile), so a recycled pid is never killed.
func qemuFromPidfile(pidfile string) (int, bool) {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(pidfile)) {
		return 0, false
	}
	return pid, pidAlive(pid)
}

// killQEMUs SIGKILLs every QEMU with a pidfile in dir and waits for them
// to go. It returns the VM IDs (pidfile names) of those it killed.
func killQEMUs(dir string) []int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	var pids, vmids []int
	for _, f := range files {
		pid, ok := qemuFromPidfile(f)
		if !ok {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			logf("cleanup: kill QEMU %d: %v", pid, err)
			continue
		}
		pids = append(pids, pid)
		if id, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), ".pid")); err == nil {
			vmids = append(vmids, id)
		} else {
			vmids = append(vmids, 0)
		}
	}
	for _, pid := range pids {
		if !waitGone(pid, 10*time.Second) {
			logf("cleanup: QEMU %d still there 10s after SIGKILL", pid)
		}
	}
	return vmids
}

// removeCgroups removes the per-VM cgroups a daemon left behind. It
// removes them itself when it sees a VM stop, but that rmdir races with
// the dead QEMU leaving the cgroup and can fail (the daemon then reuses
// the directory at the next start, which a bench never makes). rmdir only
// succeeds on a cgroup with no processes, so nothing live is touched; the
// bench's VM IDs are its own range. It retries for a few seconds.
func removeCgroups(vmids []int) {
	var left []string
	for _, id := range vmids {
		if id == 0 {
			continue
		}
		name := "qemu-" + strconv.Itoa(id)
		for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory"} {
			left = append(left, filepath.Join(root, "corral", name))
		}
	}
	for try := 0; len(left) > 0; try++ {
		left = slices.DeleteFunc(left, func(d string) bool {
			err := os.Remove(d)
			return err == nil || errors.Is(err, fs.ErrNotExist)
		})
		if try == 50 {
			logf("cleanup: cgroups still in use: %s", strings.Join(left, " "))
			return
		}
		if len(left) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// createWatch records when files appear in a directory (inotify
// IN_CREATE): QEMU's pidfile and QMP socket mark how far a launch got,
// without polling that would compete with it for the CPUs.
type createWatch struct {
	f    *os.File
	mu   sync.Mutex
	seen map[string]time.Time
	done chan struct{}
}

func watchCreates(dir string) (*createWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	// A non-blocking descriptor goes through Go's poller, so Close
	// interrupts the pending Read.
	w := &createWatch{f: os.NewFile(uintptr(fd), "inotify"), seen: map[string]time.Time{}, done: make(chan struct{})}
	go w.loop()
	return w, nil
}

func (w *createWatch) loop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		now := time.Now()
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12 : off+16]))
			end := off + unix.SizeofInotifyEvent + nameLen
			if end > n {
				break
			}
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:end], "\x00"))
			w.mu.Lock()
			if _, ok := w.seen[name]; !ok {
				w.seen[name] = now
			}
			w.mu.Unlock()
			off = end
		}
	}
}

// reset forgets what was seen, before the next launch.
func (w *createWatch) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.seen)
}

// when returns when name was created since the last reset.
func (w *createWatch) when(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[name]
	return t, ok
}

func (w *createWatch) close() {
	w.f.Close()
	<-w.done
}

// errSkip marks a comparison this machine cannot run; its message is the
// reason the report gives.
var errSkip = errors.New("skipped")

func skipf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errSkip, fmt.Sprintf(format, args...))
}

// skipReason is err's reason without the errSkip prefix.
func skipReason(err error) string {
	return strings.TrimPrefix(err.Error(), errSkip.Error()+": ")
}
