package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
	"github.com/corral-project/corral/internal/metrics"
	"github.com/corral-project/corral/internal/metrics/simsource"
)

// Targets of the metrics and events issue.
const (
	targetSampleShare = 0.02 // of one core, 200 guests, 10 s interval
	targetFanoutP99   = 100 * time.Millisecond
	sampleGuests      = 200
	sampleRounds      = 30
	sampleInterval    = 10 * time.Second
	fanoutClients     = 1000
	fanoutChanges     = 20
)

type metricsResult struct {
	cpu     []time.Duration // CPU time (user+system) of each sampling round
	wall    []time.Duration
	fanout  sample // request issued -> event received, every client, every change
	hub     sample // the hub saw the change -> event received
	connect time.Duration
}

func (m metricsResult) share() float64 {
	return median(m.cpu).Seconds() / sampleInterval.Seconds()
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// metricsPhase measures a sampling round over 200 simulated guests
// in-process (real file reads, real QMP client over a pipe, real archive
// writes), and the event fan-out of a real daemon to 1,000 SSE clients.
func (l *lab) metricsPhase(ctx context.Context) (metricsResult, error) {
	var r metricsResult
	logf("metrics: sampling %d simulated guests, %d rounds", sampleGuests, sampleRounds)
	dir := filepath.Join(l.root, "metrics")
	src, err := simsource.New(ctx, filepath.Join(dir, "cgroups"), sampleGuests)
	if err != nil {
		return r, err
	}
	defer src.Close()
	// A fake clock 10 s apart per round: the archives see the real
	// interval, so rows are finished and written as in production.
	now := time.Now()
	svc, err := metrics.New(metrics.Config{Node: "bench", Dir: filepath.Join(dir, "rrd"), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return now }})
	if err != nil {
		return r, err
	}
	defer svc.Close()
	svc.AddGuestSource(src)
	for i := 0; i < sampleRounds+2; i++ {
		if err := src.Advance(); err != nil {
			return r, err
		}
		now = now.Add(sampleInterval)
		c0, w0 := cpuTime(), time.Now()
		if err := svc.Sample(ctx); err != nil {
			return r, err
		}
		if i >= 2 { // the first rounds create the archive files
			r.cpu = append(r.cpu, cpuTime()-c0)
			r.wall = append(r.wall, time.Since(w0))
		}
	}
	if len(svc.Current().Guests) != sampleGuests {
		return r, fmt.Errorf("sampled %d guests, want %d", len(svc.Current().Guests), sampleGuests)
	}

	logf("events: %d SSE clients, %d changes", fanoutClients, fanoutChanges)
	n, err := l.newNode("events")
	if err != nil {
		return r, err
	}
	if _, err := n.start(ctx); err != nil {
		return r, err
	}
	defer n.stop()
	r.fanout, r.hub, r.connect, err = measureFanout(ctx, n)
	return r, err
}

// measureFanout subscribes fanoutClients streams, then starts a task (a
// zero-second sleep) fanoutChanges times; each client records when the
// task.started event of each reached it.
func measureFanout(ctx context.Context, n *node) (fan, hub sample, connect time.Duration, err error) {
	c, err := n.client()
	if err != nil {
		return
	}
	defer c.Close()
	if _, err = c.Login(ctx, "admin@corral", n.password); err != nil {
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type recv struct{ at, hub time.Time }
	type clientLog struct {
		mu  sync.Mutex
		got map[string]recv // task ID -> arrival
	}
	logs := make([]*clientLog, fanoutClients)
	var done sync.WaitGroup
	errc := make(chan error, fanoutClients)
	t0 := time.Now()
	for i := range logs {
		cl := &clientLog{got: map[string]recv{}}
		logs[i] = cl
		done.Add(1)
		go func() {
			defer done.Done()
			_, err := c.Events(sctx, client.EventsOptions{Types: []string{api.EventTaskStarted}}, func(e api.Event) (bool, error) {
				if e.Task != nil {
					cl.mu.Lock()
					cl.got[e.Task.ID] = recv{time.Now(), e.Time}
					cl.mu.Unlock()
				}
				return false, nil
			})
			if err != nil && sctx.Err() == nil {
				errc <- err
			}
		}()
	}
	// everyone reports whether every client has seen every task in ids.
	everyone := func(ids []string) bool {
		for _, cl := range logs {
			cl.mu.Lock()
			for _, id := range ids {
				if _, ok := cl.got[id]; !ok {
					cl.mu.Unlock()
					return false
				}
			}
			cl.mu.Unlock()
		}
		return true
	}
	start := func() (string, error) {
		var ref api.TaskRef
		_, err := c.Do(ctx, "POST", "/nodes/n1/tasks/sleep", nil, api.SleepTask{Seconds: 0}, &ref)
		return ref.Task, err
	}
	waitAll := func(ids []string, within time.Duration) error {
		deadline := time.Now().Add(within)
		for !everyone(ids) {
			select {
			case err := <-errc:
				return err
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("not every client got %d events within %s", len(ids), within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	// Marker tasks until every stream is open (a stream is open once its
	// client received something); markers are not measured.
	for {
		var id string
		if id, err = start(); err != nil {
			return
		}
		if waitAll([]string{id}, 3*time.Second) == nil {
			break
		}
		if time.Since(t0) > 2*time.Minute {
			err = fmt.Errorf("%d event streams did not all open within 2 minutes", fanoutClients)
			return
		}
	}
	connect = time.Since(t0)
	sent := map[string]time.Time{}
	var ids []string
	for k := 0; k < fanoutChanges; k++ {
		time.Sleep(200 * time.Millisecond)
		at := time.Now()
		var id string
		if id, err = start(); err != nil {
			return
		}
		sent[id] = at
		ids = append(ids, id)
	}
	if err = waitAll(ids, 30*time.Second); err != nil {
		return
	}
	cancel()
	done.Wait()
	for _, cl := range logs {
		for id, at := range sent {
			r := cl.got[id]
			fan.lat = append(fan.lat, r.at.Sub(at))
			hub.lat = append(hub.lat, r.at.Sub(r.hub))
		}
	}
	slices.Sort(fan.lat)
	slices.Sort(hub.lat)
	return
}

func (r *report) metricsSection(b *strings.Builder) {
	m := r.metrics
	r.heading(b, "Metrics sampling and event fan-out")
	fmt.Fprintf(b, "**Sampling.** One round over the node and %d simulated running VMs (`internal/metrics/simsource`: cgroup v2 counter files "+
		"that grow each round, and a real QMP client per VM asking `query-blockstats` and `query-balloon` of an in-process responder), "+
		"updating %d round-robin archives on disk. CPU time is this process's user+system time around each round, so it includes the "+
		"simulated QMP servers' side too: an upper bound. Median of %d rounds.\n\n", sampleGuests, sampleGuests+1, len(m.cpu))
	fmt.Fprintf(b, "| | CPU per round | wall per round | share of one core at a %s interval |\n|---|---:|---:|---:|\n", sampleInterval)
	fmt.Fprintf(b, "| median | %s | %s | %.3f %% |\n", ms(median(m.cpu)), ms(median(m.wall)), 100*m.share())
	fmt.Fprintf(b, "| max | %s | %s | %.3f %% |\n\n", ms(slices.Max(m.cpu)), ms(slices.Max(m.wall)), 100*slices.Max(m.cpu).Seconds()/sampleInterval.Seconds())
	fmt.Fprintf(b, "**Event fan-out.** %s subscribed to `GET /api/v1/events` (SSE over HTTPS, HTTP/2, one ticket) on a real daemon; "+
		"%d times a task is started through the API and every client records when its `task.started` event arrives. "+
		"Opening all streams took %s. Latency from the start request being sent (includes the API call and the etcd commit), "+
		"and from the moment the daemon's event hub saw the change:\n\n", plural(fanoutClients, "client"), fanoutChanges, ms(m.connect))
	fmt.Fprintf(b, "| | deliveries | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n")
	fmt.Fprintf(b, "| request → client | %d | %s | %s | %s |\n", len(m.fanout.lat), ms(m.fanout.pct(50)), ms(m.fanout.pct(99)), ms(m.fanout.pct(100)))
	fmt.Fprintf(b, "| hub → client | %d | %s | %s | %s |\n\n", len(m.hub.lat), ms(m.hub.pct(50)), ms(m.hub.pct(99)), ms(m.hub.pct(100)))
}
