// Command bench measures corral against its performance targets and writes
// the results to a Markdown report (docs/benchmarks.md via `make bench`).
//
// It builds the daemon, runs real daemons on loopback with temporary data
// dirs (as the integration tests in test/ do), seeds 10,000 guest records
// straight into the store, and measures:
//
//  1. GET /api/v1/cluster/resources latency and throughput, next to a
//     minimal HTTPS server that serves the same bytes from memory;
//  2. config write (CAS update) throughput through the API, next to the
//     same update through the store layer in-process;
//  3. the daemon's resident memory, idle and after the read load;
//  4. daemon start time to the first healthy answer;
//  5. storage: upload throughput next to cp, and linked clones of a 10 GiB
//     template on dir (qcow2) and btrfs next to qemu-img and btrfs by hand;
//  6. VM start latency next to the same QEMU command line by hand and to
//     libvirt's virsh create, and the daemon's memory per running VM;
//  7. network: guest-to-guest throughput through a bridge with and without
//     the firewall (1,000 rules), and the time to apply 10,000 rules.
//  8. container create+start latency (busybox and Debian) next to the
//     same done with LXC's own tools (unpack in the user namespace,
//     config, lxc-start) and with LXD, and 100 containers on one node;
//  9. the CPU cost of a metrics sampling round over 200 simulated guests,
//     and the latency of the event stream's fan-out to 1,000 clients.
//
// Every anchor runs in the same invocation on the same machine, so the
// ratios stay meaningful on noisy machines where absolute figures drift.
// With -profile DIR it instead runs the daemon in-process and writes CPU
// and heap profiles, to find where the time and memory go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/corral-project/corral/internal/store"
)

// config holds the command-line knobs; the defaults are what `make bench`
// publishes, so change them only together with the targets' wording.
type config struct {
	out         string
	bin         string
	guests      int
	concurrency []int
	warmup      time.Duration
	duration    time.Duration
	maxRequests int
	http1       bool
	writeRuns   int
	writeDur    time.Duration
	writers     int
	idle        time.Duration
	starts      int
	keep        bool
	profileDir  string

	only        map[string]bool // phases to run; nil means all
	uploadSize  int64
	uploadRuns  int
	cloneRuns   int
	vmStarts    int
	vmLevels    []int
	levelStarts int
	settle      time.Duration
	netSeconds  int
	netRuns     int
	ctStarts    int
	ctFleet     int
}

// phases are the parts -only can pick.
var phases = []string{"api", "storage", "vm", "net", "ct", "metrics"}

// runs reports whether phase is part of this run.
func (c config) runs(phase string) bool { return c.only == nil || c.only[phase] }

func parseFlags() (config, error) {
	var c config
	var conc, only, levels string
	var uploadMiB int64
	flag.StringVar(&c.out, "out", "docs/benchmarks.md", "where to write the Markdown report")
	flag.StringVar(&c.bin, "bin", "", "corral binary to measure (default: build ./cmd/corral into a temp dir)")
	flag.IntVar(&c.guests, "guests", 10000, "guest records to seed")
	flag.StringVar(&conc, "concurrency", "1,4", "comma-separated concurrent workers for the read benchmark")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "read-load warm-up per run (not recorded)")
	flag.DurationVar(&c.duration, "duration", 15*time.Second, "read-load measuring time per run (ends earlier at -requests)")
	flag.IntVar(&c.maxRequests, "requests", 2000, "read-load requests per run at most")
	flag.BoolVar(&c.http1, "http1", false, "use HTTP/1.1 (one keep-alive connection per worker) instead of HTTP/2")
	flag.IntVar(&c.writeRuns, "write-runs", 5, "runs per write benchmark (the median is reported)")
	flag.DurationVar(&c.writeDur, "write-duration", 3*time.Second, "length of one write run")
	flag.IntVar(&c.writers, "writers", 8, "concurrent writers in the concurrent write benchmark")
	flag.DurationVar(&c.idle, "idle", 10*time.Second, "how long a daemon sits idle before its RSS is read")
	flag.IntVar(&c.starts, "starts", 3, "daemon starts per start-time benchmark (the median is reported)")
	flag.BoolVar(&c.keep, "keep", false, "keep the temp dir (data dirs, daemon logs) for inspection")
	flag.StringVar(&c.profileDir, "profile", "", "instead of the report, run the daemon in-process and write CPU/heap profiles to this dir")
	flag.StringVar(&only, "only", "", "comma-separated phases to run ("+strings.Join(phases, ", ")+"); default all. Needs an explicit -out")
	flag.Int64Var(&uploadMiB, "upload-mib", 1024, "size of the uploaded file, MiB")
	flag.IntVar(&c.uploadRuns, "upload-runs", 5, "runs of cp and of the upload (the median is reported)")
	flag.IntVar(&c.cloneRuns, "clone-runs", 10, "linked clones per pool and method (the median is reported)")
	flag.IntVar(&c.vmStarts, "vm-starts", 20, "VM starts through the API, by hand and with virsh (the median is reported)")
	flag.StringVar(&levels, "vm-levels", "0,1,10,50", "comma-separated numbers of running VMs at which to read the daemon's memory and time starts")
	flag.IntVar(&c.levelStarts, "level-starts", 5, "starts timed at each -vm-levels level (the median is reported)")
	flag.IntVar(&c.ctStarts, "ct-starts", 20, "container create+start runs per template (busybox, Debian) through the API, with bare LXC and with LXD (the median is reported)")
	flag.IntVar(&c.ctFleet, "ct-fleet", 100, "containers to start on one node for the total time and daemon memory (0: skip)")
	flag.DurationVar(&c.settle, "settle", 3*time.Second, "wait after reaching a -vm-levels level before reading memory")
	flag.IntVar(&c.netSeconds, "net-seconds", 5, "length of one iperf3 run in the network phase")
	flag.IntVar(&c.netRuns, "net-runs", 5, "iperf3 runs per firewall setup (the median is reported)")
	flag.Parse()
	if flag.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", flag.Args())
	}
	if only != "" {
		outSet := false
		flag.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
		if !outSet {
			return c, errors.New("-only needs -out too: a partial run must not replace the published report")
		}
		c.only = map[string]bool{}
		for _, p := range strings.Split(only, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains(phases, p) {
				return c, fmt.Errorf("-only: unknown phase %q (have %s)", p, strings.Join(phases, ", "))
			}
			c.only[p] = true
		}
	}
	c.uploadSize = uploadMiB << 20
	for _, f := range strings.Split(levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return c, fmt.Errorf("-vm-levels: %q is not a number of VMs", f)
		}
		c.vmLevels = append(c.vmLevels, n)
	}
	slices.Sort(c.vmLevels)
	if c.ctStarts < 1 || c.ctFleet < 0 || c.ctFleet > 100 {
		return c, errors.New("-ct-starts must be positive and -ct-fleet 0 to 100 (container IDs 9400-9499)")
	}
	if uploadMiB < 1 || c.uploadRuns < 1 || c.cloneRuns < 1 || c.vmStarts < 1 || c.levelStarts < 1 {
		return c, errors.New("-upload-mib, -upload-runs, -clone-runs, -vm-starts and -level-starts must be positive")
	}
	for _, f := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return c, fmt.Errorf("-concurrency: %q is not a positive number", f)
		}
		c.concurrency = append(c.concurrency, n)
	}
	if c.guests < 1 || c.writers < 1 || c.writeRuns < 1 || c.starts < 1 || c.maxRequests < 1 {
		return c, errors.New("-guests, -writers, -write-runs, -starts and -requests must be positive")
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	// SIGINT/SIGTERM cancel the context, so every phase unwinds through its
	// defers and the daemons and temp dirs are cleaned up on the way out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if cfg.profileDir != "" {
		err = runProfile(ctx, cfg)
	} else {
		err = run(ctx, cfg)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: FAILED:", err)
		os.Exit(1)
	}
}

// run executes every benchmark against real daemon processes and writes
// the report. Phases that need the store in this process stop the daemon
// first: the embedded etcd member can only be opened by one process.
func run(ctx context.Context, cfg config) error {
	l, err := newLab(ctx, cfg)
	if err != nil {
		return err
	}
	defer l.close()

	r := &report{cfg: cfg, started: time.Now(), machine: describeMachine(l.root)}
	if cfg.runs("api") {
		if err := l.apiPhases(ctx, r); err != nil {
			return err
		}
	}
	if cfg.runs("storage") {
		logf("storage phase: uploads and linked clones")
		s, err := l.storagePhase(ctx)
		if err != nil {
			return fmt.Errorf("storage phase: %w", err)
		}
		r.storage = &s
	}
	if cfg.runs("vm") {
		logf("VM phase: start latency and memory per VM")
		v, err := l.vmPhase(ctx)
		if err != nil {
			return fmt.Errorf("VM phase: %w", err)
		}
		r.vms = &v
	}
	if cfg.runs("ct") {
		logf("container phase: create+start latency against bare LXC and LXD")
		ct, err := l.ctPhase(ctx)
		if err != nil {
			return fmt.Errorf("container phase: %w", err)
		}
		r.cts = &ct
	}

	if cfg.runs("net") {
		logf("network phase: firewall throughput and ruleset apply")
		nr, err := l.netPhase(ctx)
		if err != nil {
			return fmt.Errorf("network phase: %w", err)
		}
		r.net = &nr
	}

	if cfg.runs("metrics") {
		logf("metrics phase: sampling cost and event fan-out")
		m, err := l.metricsPhase(ctx)
		if err != nil {
			return fmt.Errorf("metrics phase: %w", err)
		}
		r.metrics = &m
	}

	r.finished, r.loadEnd = time.Now(), loadAvg()
	if err := r.write(cfg.out); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	logf("wrote %s", cfg.out)
	return nil
}

// apiPhases measures the daemon itself: starts, memory, reads and config
// writes, on a node seeded with cfg.guests guests.
func (l *lab) apiPhases(ctx context.Context, r *report) error {
	var err error
	if r.fresh, err = l.measureFreshStarts(ctx); err != nil {
		return fmt.Errorf("fresh daemon starts: %w", err)
	}

	n, err := l.newNode("main")
	if err != nil {
		return err
	}
	if err := l.prepareUsers(ctx, n); err != nil {
		return fmt.Errorf("prepare users: %w", err)
	}
	if err := withStore(ctx, n, func(st *store.Store) error { return l.seedAndBreakdown(ctx, st, r) }); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := l.apiPhase(ctx, n, r); err != nil {
		return fmt.Errorf("API phase: %w", err)
	}
	if err := n.stop(); err != nil {
		return fmt.Errorf("stop daemon: %w", err)
	}
	// The store-write anchor runs last: its history of write revisions
	// would otherwise inflate the seeded daemon's memory figures.
	if err := withStore(ctx, n, func(st *store.Store) error {
		logf("measuring store-layer writes (Collection.Update)")
		r.storeWrites, err = l.measureStoreWrites(ctx, st)
		return err
	}); err != nil {
		return fmt.Errorf("store writes: %w", err)
	}
	return nil
}

// withStore runs fn with node n's store open in this process. The daemon
// must be stopped: an etcd data dir serves one member process at a time.
func withStore(ctx context.Context, n *node, fn func(*store.Store) error) error {
	st, err := openStore(ctx, n)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

// seedAndBreakdown seeds the guests and times the resources handler's
// steps in-process, while the store is open here anyway.
func (l *lab) seedAndBreakdown(ctx context.Context, st *store.Store, r *report) error {
	logf("seeding %d guest records", l.cfg.guests)
	if err := seedGuests(ctx, st, l.cfg.guests); err != nil {
		return err
	}
	logf("timing the resources handler's steps in-process")
	var err error
	r.breakdown, err = measureBreakdown(ctx, st)
	return err
}

// apiPhase restarts the seeded daemon and measures everything that goes
// through HTTPS. The daemon is left running for the caller to stop.
func (l *lab) apiPhase(ctx context.Context, n *node, r *report) error {
	var err error
	if r.restarts, err = l.measureRestarts(ctx, n); err != nil {
		return err
	}
	logf("daemon idle with %d guests for %s", l.cfg.guests, l.cfg.idle)
	if err := sleep(ctx, l.cfg.idle); err != nil {
		return err
	}
	if r.memSeeded, err = n.mem(); err != nil {
		return err
	}
	r.storeDBBytes = n.storeDBSize()
	ticket, err := n.login(ctx, l.password)
	if err != nil {
		return err
	}
	if r.reads, err = l.measureReads(ctx, n, ticket); err != nil {
		return err
	}
	if r.memAfterLoad, err = n.mem(); err != nil {
		return err
	}
	if r.apiWrites, err = l.measureAPIWrites(ctx, n); err != nil {
		return err
	}
	return nil
}

var t0 = time.Now()

// logf prints progress to stderr, stamped with the time since start.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
}

// sleep waits for d unless ctx is cancelled first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
