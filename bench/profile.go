package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/daemon"
	"github.com/corral-project/corral/internal/store"
)

// runProfile runs the daemon in this process, exactly as cmd/corral does
// (daemon.Run), over a store seeded with the guests, and writes to
// cfg.profileDir:
//
//	heap-idle.pprof      after idling: what the idle heap is made of
//	cpu-resources.pprof  during GET /cluster/resources load (1 worker)
//	cpu-writes.pprof     during sequential PUT /access/users/{id}
//	heap-load.pprof      after both loads (-sample_index=alloc_space
//	                     shows what the requests allocated)
//
// The load generator shares the process, so focus on the daemon's frames,
// e.g. `go tool pprof -top -focus 'server\.' cpu-resources.pprof`.
func runProfile(ctx context.Context, cfg config) error {
	if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
		return fmt.Errorf("profile dir: %w", err)
	}
	root, err := os.MkdirTemp("", "corral-bench-profile-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	l := &lab{cfg: cfg, root: root, password: "bench-admin-password"}
	defer l.close()
	n, err := l.newNode("inproc")
	if err != nil {
		return err
	}
	// The daemon's log (etcd's included) goes to a file, keeping the
	// progress output readable.
	logFile, err := os.Create(n.logPath)
	if err != nil {
		return fmt.Errorf("daemon log: %w", err)
	}
	defer logFile.Close()

	if err := seedOnly(ctx, n, cfg.guests); err != nil {
		return err
	}
	stop, err := runInProcess(ctx, n, logFile)
	if err != nil {
		return err
	}
	defer func() {
		if err := stop(); err != nil {
			logf("in-process daemon: %v", err)
		}
	}()
	return profileLoads(ctx, l, n)
}

// seedOnly opens n's (new) store, seeds the guests and closes it.
func seedOnly(ctx context.Context, n *node, guests int) error {
	logf("seeding %d guest records", guests)
	return withStore(ctx, n, func(st *store.Store) error { return seedGuests(ctx, st, guests) })
}

// runInProcess starts daemon.Run in a goroutine and waits until it serves.
// The returned stop cancels it and waits for its orderly shutdown.
func runInProcess(ctx context.Context, n *node, logw io.Writer) (stop func() error, err error) {
	c := daemon.Defaults()
	c.Node, c.DataDir, c.Listen, c.Socket, c.StorePeerURL = nodeName, n.dataDir, n.listen, "", n.peerURL
	c.AdminPassword = n.password
	if err := c.Validate(); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithCancel(ctx)
	ready, done := make(chan struct{}), make(chan error, 1)
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { done <- daemon.Run(dctx, c, log, io.Discard, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("in-process daemon did not start: %w (log: %s)", err, n.logPath)
	case <-ctx.Done():
		cancel()
		<-done
		return nil, ctx.Err()
	}
	logf("in-process daemon serving on %s", n.url)
	return func() error { cancel(); return <-done }, nil
}

// profileLoads idles, then profiles the read and write loads.
func profileLoads(ctx context.Context, l *lab, n *node) error {
	dir := l.cfg.profileDir
	logf("idling %s", l.cfg.idle)
	if err := sleep(ctx, l.cfg.idle); err != nil {
		return err
	}
	if err := writeHeap(filepath.Join(dir, "heap-idle.pprof")); err != nil {
		return err
	}
	ticket, err := n.login(ctx, l.password)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: newTransport(l.cfg.http1, 1), Timeout: 30 * time.Second}
	read := func(ctx context.Context, _, _ int) error {
		_, err := get(ctx, hc, n.url+resourcesPath, "Bearer "+ticket, false)
		return err
	}
	if err := profileCPU(ctx, filepath.Join(dir, "cpu-resources.pprof"), "GET /cluster/resources", l.cfg.duration, l.cfg.maxRequests, read); err != nil {
		return err
	}

	c, err := n.client()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTicket(ticket, "")
	if _, err := c.CreateUser(ctx, api.UserCreate{UserID: benchUser(0), Password: "bench-user-password"}); err != nil {
		return err
	}
	write := func(ctx context.Context, _, seq int) error {
		comment := fmt.Sprintf("profile %d", seq)
		_, err := c.UpdateUser(ctx, benchUser(0), api.UserUpdate{Comment: &comment})
		return err
	}
	if err := profileCPU(ctx, filepath.Join(dir, "cpu-writes.pprof"), "PUT /access/users/{id}", l.cfg.writeDur*2, math.MaxInt, write); err != nil {
		return err
	}
	if err := writeHeap(filepath.Join(dir, "heap-load.pprof")); err != nil {
		return err
	}
	logf("profiles in %s; e.g. go tool pprof -top -focus 'server\\.' %s", dir, filepath.Join(dir, "cpu-resources.pprof"))
	return nil
}

// profileCPU records a CPU profile while one worker runs op.
func profileCPU(ctx context.Context, path, what string, d time.Duration, limit int, op func(context.Context, int, int) error) error {
	if _, err := drive(ctx, 1, time.Second, math.MaxInt, op); err != nil {
		return fmt.Errorf("%s warm-up: %w", what, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	s, err := drive(ctx, 1, d, limit, op)
	pprof.StopCPUProfile()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	logf("%s in-process: %d calls, p50 %s, p99 %s -> %s", what, len(s.lat), ms(s.pct(50)), ms(s.pct(99)), path)
	return nil
}

// writeHeap writes a heap profile after a GC and logs the runtime's and
// the kernel's view of this process's memory.
func writeHeap(path string) error {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m, err := readMem(os.Getpid())
	if err != nil {
		return err
	}
	logf("process VmRSS %.1f MB (anon %.1f, file %.1f); Go heap in use %.1f MB, heap idle-not-released %.1f MB, stacks %.1f MB, runtime Sys %.1f MB",
		float64(m.RSS)*1024/1e6, float64(m.Anon)*1024/1e6, float64(m.File)*1024/1e6,
		float64(ms.HeapInuse)/1e6, float64(ms.HeapIdle-ms.HeapReleased)/1e6, float64(ms.StackInuse)/1e6, float64(ms.Sys)/1e6)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.WriteHeapProfile(f)
}
