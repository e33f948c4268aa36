package task

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/store"
)

// Func is the body of a task. It must return promptly when ctx is done.
type Func func(ctx context.Context, log *Log) error

// ErrStopped is the cause used when a task is stopped on request.
var ErrStopped = errors.New("stopped by request")

// errShutdown is the cause used when the daemon shuts down.
var errShutdown = errors.New("daemon shutting down")

// keepRecords bounds how many finished task records a node keeps in the store.
const keepRecords = 2000

// Manager runs this node's tasks.
type Manager struct {
	node string
	dir  string
	coll *store.Collection[api.Task]
	log  *slog.Logger

	mu      sync.Mutex
	running map[string]*run
	closed  bool
	ended   int // tasks finished since the last prune
	wg      sync.WaitGroup
}

type run struct {
	cancel context.CancelCauseFunc
	log    *Log
	done   chan struct{}
}

// NewManager returns the task manager of node, keeping logs under dir.
func NewManager(st *store.Store, node, dir string, log *slog.Logger) (*Manager, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("task log dir: %w", err)
	}
	return &Manager{node: node, dir: dir, coll: store.NewCollection[api.Task](st, "tasks"), log: log, running: map[string]*run{}}, nil
}

// Recover marks this node's tasks that were running when the daemon last
// stopped as failed: a crash must never leave a task "running" forever.
func (m *Manager) Recover(ctx context.Context) error {
	for _, o := range m.coll.List() {
		t := o.Value
		if t.Node != m.node || t.Status != api.TaskRunning {
			continue
		}
		_, err := m.coll.Update(ctx, t.ID, "", func(t *api.Task) error {
			now := time.Now().UTC()
			t.Status, t.ExitMsg, t.EndTime = api.TaskFailed, "interrupted: the daemon stopped while this task was running", &now
			return nil
		})
		if err != nil {
			return fmt.Errorf("recover task %s: %w", t.ID, err)
		}
		m.log.Warn("marked interrupted task failed", "task", t.ID)
	}
	return m.prune(ctx)
}

// prune deletes the oldest finished records of this node beyond keepRecords,
// and their log files.
func (m *Manager) prune(ctx context.Context) error {
	var done []api.Task
	for _, o := range m.coll.List() {
		if o.Value.Node == m.node && o.Value.Status != api.TaskRunning {
			done = append(done, o.Value)
		}
	}
	if len(done) <= keepRecords {
		return nil
	}
	sort.Slice(done, func(i, j int) bool { return done[i].StartTime.Before(done[j].StartTime) })
	for _, t := range done[:len(done)-keepRecords] {
		if err := m.coll.Delete(ctx, t.ID, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("prune task %s: %w", t.ID, err)
		}
		os.Remove(m.logPath(t.ID))
	}
	return nil
}

func (m *Manager) logPath(upid string) string {
	// ParseID has vetted every part, so the ID is a safe file name.
	return filepath.Join(m.dir, strings.ReplaceAll(upid, ":", "_")+".log")
}

// Start records a new task and runs fn in the background. The task keeps
// running after the request that started it ends; only Stop or daemon
// shutdown cancel it.
func (m *Manager) Start(ctx context.Context, typ, target, user string, fn Func) (string, error) {
	id, err := NewID(m.node, typ, target, user, time.Now())
	if err != nil {
		return "", err
	}
	upid := id.String()
	f, err := os.OpenFile(m.logPath(upid), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("task log: %w", err)
	}
	l := &Log{f: f, changed: make(chan struct{})}
	rec := api.Task{ID: upid, Node: m.node, Type: typ, Target: target, User: user, Status: api.TaskRunning, StartTime: id.Start.UTC()}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		f.Close()
		os.Remove(m.logPath(upid))
		return "", errs.Conflict("node is shutting down")
	}
	tctx, cancel := context.WithCancelCause(context.Background())
	r := &run{cancel: cancel, log: l, done: make(chan struct{})}
	m.running[upid] = r
	m.wg.Add(1)
	m.mu.Unlock()

	if _, err := m.coll.Create(ctx, upid, rec); err != nil {
		m.mu.Lock()
		delete(m.running, upid)
		m.mu.Unlock()
		m.wg.Done()
		cancel(nil)
		f.Close()
		os.Remove(m.logPath(upid))
		return "", fmt.Errorf("record task: %w", err)
	}
	go m.execute(tctx, upid, r, fn)
	return upid, nil
}

func (m *Manager) execute(ctx context.Context, upid string, r *run, fn Func) {
	defer m.wg.Done()
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("internal error: %v", p)
				m.log.Error("task panicked", "task", upid, "panic", p)
			}
		}()
		err = fn(ctx, r.log)
	}()
	status, msg := api.TaskOK, "OK"
	switch cause := context.Cause(ctx); {
	case err == nil:
	case errors.Is(cause, ErrStopped):
		status, msg = api.TaskStopped, "stopped by request"
	case errors.Is(cause, errShutdown):
		status, msg = api.TaskFailed, "interrupted: the daemon shut down"
	default:
		status, msg = api.TaskFailed, err.Error()
	}
	if status == api.TaskOK {
		r.log.Printf("TASK OK")
	} else {
		r.log.Printf("TASK ERROR: %s", msg)
	}
	// The record must be finished even while shutting down: use a fresh context.
	wctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, uerr := m.coll.Update(wctx, upid, "", func(t *api.Task) error {
		now := time.Now().UTC()
		t.Status, t.ExitMsg, t.EndTime = status, msg, &now
		return nil
	}); uerr != nil {
		m.log.Error("cannot record task end", "task", upid, "err", uerr)
	}
	m.mu.Lock()
	delete(m.running, upid)
	m.ended++
	pruneNow := m.ended >= 100
	if pruneNow {
		m.ended = 0
	}
	m.mu.Unlock()
	if pruneNow {
		// Keep the store bounded on nodes that run for months.
		if err := m.prune(wctx); err != nil {
			m.log.Warn("pruning old task records failed", "err", err)
		}
	}
	r.log.close()
	close(r.done)
	m.cancelIfDone(r)
}

func (m *Manager) cancelIfDone(r *run) { r.cancel(nil) }

// Stop cancels a running task of this node.
func (m *Manager) Stop(upid string) error {
	m.mu.Lock()
	r, ok := m.running[upid]
	m.mu.Unlock()
	if !ok {
		return errs.Conflict("task %s is not running on this node", upid)
	}
	r.cancel(ErrStopped)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
	}
	return nil
}

// Shutdown fails every running task and waits for them, at most until ctx ends.
func (m *Manager) Shutdown(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	for _, r := range m.running {
		r.cancel(errShutdown)
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		m.log.Warn("tasks still running at shutdown; their records are failed on next start")
	}
}

// Get returns a task record from any node.
func (m *Manager) Get(upid string) (api.Task, error) {
	o, err := m.coll.Get(upid)
	if err != nil {
		return api.Task{}, errs.NotFound("task %s does not exist", upid)
	}
	return o.Value, nil
}

// Filter selects tasks in List.
type Filter struct {
	Node, User, Type, Status string
	Since                    time.Time
	Limit                    int
	Visible                  func(api.Task) bool
}

// List returns matching task records, newest first.
func (m *Manager) List(f Filter) []api.Task {
	var out []api.Task
	for _, o := range m.coll.List() {
		t := o.Value
		if (f.Node != "" && t.Node != f.Node) || (f.User != "" && t.User != f.User) ||
			(f.Type != "" && t.Type != f.Type) || (f.Status != "" && t.Status != f.Status) ||
			(!f.Since.IsZero() && t.StartTime.Before(f.Since)) || (f.Visible != nil && !f.Visible(t)) {
			continue
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartTime.Equal(out[j].StartTime) {
			return out[i].StartTime.After(out[j].StartTime)
		}
		return out[i].ID > out[j].ID
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

// ReadLog returns up to limit lines starting at line start (0-based).
func (m *Manager) ReadLog(upid string, start, limit int) ([]api.TaskLogLine, error) {
	var out []api.TaskLogLine
	_, _, err := m.scan(upid, 0, 0, func(n int, text string) bool {
		if n < start {
			return true
		}
		if limit > 0 && len(out) >= limit {
			return false
		}
		out = append(out, api.TaskLogLine{N: n, Text: text})
		return true
	})
	return out, err
}

// scan reads complete lines from byte offset off (line number n there).
func (m *Manager) scan(upid string, off int64, n int, fn func(int, string) bool) (int64, int, error) {
	if _, err := ParseID(upid); err != nil {
		return off, n, errs.Invalid("upid", "%v", err)
	}
	f, err := os.Open(m.logPath(upid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return off, n, errs.NotFound("no log for task %s on this node", upid)
		}
		return off, n, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return off, n, err
	}
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadString('\n')
		if err != nil { // a partial last line is read again next time
			return off, n, nil
		}
		off += int64(len(line))
		if !fn(n, strings.TrimSuffix(line, "\n")) {
			return off, n + 1, nil
		}
		n++
	}
}

// Follow calls fn for each log line from start on, waiting for new lines
// while the task runs on this node, and returns when it has ended.
func (m *Manager) Follow(ctx context.Context, upid string, start int, fn func(api.TaskLogLine) error) error {
	var off int64
	n := 0
	for {
		m.mu.Lock()
		r := m.running[upid]
		m.mu.Unlock()
		var changed <-chan struct{}
		if r != nil {
			changed = r.log.wait()
		}
		var ferr error
		var err error
		off, n, err = m.scan(upid, off, n, func(i int, text string) bool {
			if i >= start {
				if ferr = fn(api.TaskLogLine{N: i, Text: text}); ferr != nil {
					return false
				}
			}
			return true
		})
		if err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
		if r == nil {
			return nil
		}
		select {
		case <-changed:
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Log is a task's log file. Lines are written whole, so readers never see
// half a line.
type Log struct {
	mu      sync.Mutex
	f       *os.File
	changed chan struct{}
	closed  bool
}

// Printf appends one line.
func (l *Log) Printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	line = strings.ReplaceAll(line, "\n", "\n  ")
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.f.WriteString(line + "\n")
	close(l.changed)
	l.changed = make(chan struct{})
}

// Writer returns an io.Writer that logs each line written to it, for the
// output of child processes.
func (l *Log) Writer() io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l.Printf("%s", sc.Text())
		}
	}()
	return pw
}

func (l *Log) wait() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *Log) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		l.f.Close()
		close(l.changed)
	}
}
