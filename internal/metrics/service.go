// Package metrics samples this node, its running guests and its storage
// pools every interval, keeps each series' history in round-robin archives
// (internal/metrics/rrd) under the data dir, serves the latest values to
// the API and Prometheus, and pushes them to external metric servers.
//
// Guests come from GuestSources the drivers implement: the sampler reads
// CPU, memory, block I/O and network counters itself from /proc, cgroups
// and /sys/class/net, and asks the driver only for what it alone knows
// (QMP block statistics and balloon size for VMs).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/metrics/rrd"
)

// Series of each kind of archive, in file order.
var (
	NodeSeries = []string{"cpu", "maxcpu", "loadavg", "memused", "memtotal", "swapused", "swaptotal",
		"rootused", "roottotal", "netin", "netout", "psi_cpu", "psi_memory", "psi_io"}
	GuestSeries = []string{"cpu", "maxcpu", "mem", "maxmem", "balloon", "diskread", "diskwrite",
		"diskreadops", "diskwriteops", "netin", "netout"}
	StorageSeries = []string{"used", "total"}
)

// Timeframes map the API's timeframe to an archive and a number of rows.
var Timeframes = map[string]struct{ Archive, Rows int }{
	"hour": {0, 360}, "day": {1, 1440}, "week": {2, 336}, "month": {2, 1440}, "year": {3, 1460},
}

// Config sets up a Service.
type Config struct {
	Node     string
	Dir      string        // archives live here (<data_dir>/rrd)
	Interval time.Duration // default 10 s
	Log      *slog.Logger
	Storage  func(ctx context.Context) []StorageUsage // this node's active pools; may be nil
	Now      func() time.Time
	Archives []rrd.Archive // default rrd.Default
	// GuestWorkers bounds concurrent reads of guests (a hung QMP socket
	// must not stall the round); default 4.
	GuestWorkers int
}

// Service is one node's sampler and archive keeper.
type Service struct {
	cfg Config
	log *slog.Logger

	srcMu   sync.Mutex
	sources []GuestSource

	mu       sync.Mutex
	dbs      map[string]*rrd.DB
	node     *nodeState
	guests   map[int]*guestState
	storage  map[string]api.StorageMetrics
	prevNode *nodeCounters
	prevAt   time.Time

	sinks    sinkSet
	sampleNs atomicDuration // last round's duration, for the benchmark and the log
}

type nodeState struct {
	api.NodeMetrics
	c nodeCounters
}

type guestState struct {
	api.GuestMetrics
	c   counters
	pid int
}

// New returns a Service; it samples once Run is called.
func New(cfg Config) (*Service, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Archives == nil {
		cfg.Archives = rrd.Default
	}
	if cfg.GuestWorkers <= 0 {
		cfg.GuestWorkers = 4
	}
	for _, d := range []string{"node", "guest", "storage"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return &Service{cfg: cfg, log: cfg.Log, dbs: map[string]*rrd.DB{}, guests: map[int]*guestState{}, storage: map[string]api.StorageMetrics{}}, nil
}

// AddGuestSource registers a driver's guests for sampling.
func (s *Service) AddGuestSource(src GuestSource) {
	s.srcMu.Lock()
	s.sources = append(s.sources, src)
	s.srcMu.Unlock()
}

// Interval is the sampling period.
func (s *Service) Interval() time.Duration { return s.cfg.Interval }

// Run samples every interval until ctx ends, then closes the archives.
func (s *Service) Run(ctx context.Context) {
	defer s.Close()
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.Sample(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("metrics sample failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close closes every archive and stops the exporters.
func (s *Service) Close() {
	s.sinks.closeAll()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, db := range s.dbs {
		db.Close()
		delete(s.dbs, k)
	}
}

// LastSampleDuration is how long the last round took.
func (s *Service) LastSampleDuration() time.Duration { return s.sampleNs.load() }

// Sample takes one round: node, guests, storage; updates the archives and
// hands the points to the exporters.
func (s *Service) Sample(ctx context.Context) error {
	start := time.Now()
	now := s.cfg.Now()
	var errsSeen []error
	nc, err := readNode()
	if err != nil {
		errsSeen = append(errsSeen, fmt.Errorf("node: %w", err))
	}
	refs := s.guestRefs()
	read := s.readGuests(ctx, refs)
	var pools []StorageUsage
	if s.cfg.Storage != nil {
		pools = s.cfg.Storage(ctx)
	}

	s.mu.Lock()
	ns := s.nodeSample(now, nc)
	seen := map[int]bool{}
	var gs []*guestState
	for i, ref := range refs {
		g := s.guestSample(now, ref, read[i])
		seen[ref.VMID] = true
		s.guests[ref.VMID] = g
		gs = append(gs, g)
	}
	for id := range s.guests {
		if !seen[id] {
			delete(s.guests, id)
			if db := s.dbs[guestDB(id)]; db != nil {
				db.Close()
				delete(s.dbs, guestDB(id))
			}
		}
	}
	clear(s.storage)
	for _, p := range pools {
		s.storage[p.Storage] = api.StorageMetrics{Storage: p.Storage, Node: s.cfg.Node, Total: p.Total, Used: p.Used}
	}
	s.mu.Unlock()

	// Archives: one small in-place write per series set.
	if err := s.update("node/"+s.cfg.Node, NodeSeries, now, nodeValues(ns.NodeMetrics)); err != nil {
		errsSeen = append(errsSeen, err)
	}
	for _, g := range gs {
		if err := s.update(guestDB(g.VMID), GuestSeries, now, guestValues(g.GuestMetrics)); err != nil {
			errsSeen = append(errsSeen, err)
		}
	}
	for _, p := range pools {
		if err := s.update("storage/"+p.Storage, StorageSeries, now, []float64{float64(p.Used), float64(p.Total)}); err != nil {
			errsSeen = append(errsSeen, err)
		}
	}
	s.export(now, ns.NodeMetrics, gs, pools)
	s.sampleNs.store(time.Since(start))
	return errors.Join(errsSeen...)
}

func guestDB(vmid int) string { return "guest/" + strconv.Itoa(vmid) }

func (s *Service) guestRefs() []GuestRef {
	s.srcMu.Lock()
	srcs := slices.Clone(s.sources)
	s.srcMu.Unlock()
	var refs []GuestRef
	for _, src := range srcs {
		refs = append(refs, src.SampleGuests()...)
	}
	return refs
}

type guestRead struct {
	c     counters
	mem   uint64
	drv   DriverStats
	valid bool
}

// readGuests reads every guest's counters with a few workers, so one
// guest whose driver is slow to answer doesn't hold up the others.
func (s *Service) readGuests(ctx context.Context, refs []GuestRef) []guestRead {
	out := make([]guestRead, len(refs))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(s.cfg.GuestWorkers, len(refs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = readGuest(ctx, refs[i])
			}
		}()
	}
	for i := range refs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func readGuest(ctx context.Context, ref GuestRef) guestRead {
	var r guestRead
	var err error
	if ref.PID > 0 {
		r.c.cpuSec, err = procCPU(ref.PID)
		if err == nil {
			r.mem, err = procRSS(ref.PID)
		}
	} else {
		r.c.cpuSec, err = cgroupCPU(ref.Cgroup)
		if err == nil {
			r.mem, err = cgroupMem(ref.Cgroup)
		}
	}
	if err != nil {
		return r // gone between listing and reading
	}
	r.valid = true
	cgroupIO(ref.Cgroup, &r.c)
	for _, ifc := range ref.Ifaces {
		if rx, tx, err := ifaceBytes(ifc); err == nil {
			r.c.netIn += tx // the host sends what the guest receives
			r.c.netOut += rx
		}
	}
	if ref.Stats != nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		d, err := ref.Stats(sctx)
		cancel()
		if err == nil {
			r.drv = d
			if d.HaveDisk {
				r.c.rdBytes, r.c.wrBytes, r.c.rdOps, r.c.wrOps, r.c.haveDisk, r.c.noOps = d.ReadBytes, d.WriteByte, d.ReadOps, d.WriteOps, true, false
			}
		}
	}
	return r
}

// rate is the per-second change of a counter; NaN when it went backwards
// (a restarted guest) or there is no earlier reading.
func rate(cur, prev uint64, dt float64) float64 {
	if dt <= 0 || cur < prev {
		return math.NaN()
	}
	return float64(cur-prev) / dt
}

func (s *Service) nodeSample(now time.Time, nc nodeCounters) *nodeState {
	ns := &nodeState{c: nc}
	m := &ns.NodeMetrics
	m.Node, m.Time, m.CPUs, m.Load = s.cfg.Node, now.UTC(), nc.cpus, nc.load
	m.MemTotal, m.MemUsed, m.SwapTotal, m.SwapUsed = nc.memTotal, nc.memUsed, nc.swapTotal, nc.swapUs
	m.RootTotal, m.RootUsed = nc.rootTotal, nc.rootUs
	if len(nc.psi) > 0 {
		m.PSI = nc.psi
	}
	m.CPU, m.NetIn, m.NetOut = math.NaN(), math.NaN(), math.NaN()
	if p := s.prevNode; p != nil {
		dt := now.Sub(s.prevAt).Seconds()
		if nc.cpuTotal > p.cpuTotal && nc.cpuBusy >= p.cpuBusy {
			m.CPU = float64(nc.cpuBusy-p.cpuBusy) / float64(nc.cpuTotal-p.cpuTotal)
		}
		var in, out float64
		for name, c := range nc.ifaces {
			if pc, ok := p.ifaces[name]; ok && !guestIface(name) {
				if r := rate(c[0], pc[0], dt); !math.IsNaN(r) {
					in += r
				}
				if r := rate(c[1], pc[1], dt); !math.IsNaN(r) {
					out += r
				}
			}
		}
		m.NetIn, m.NetOut = in, out
	}
	s.prevNode, s.prevAt = &nc, now
	s.node = ns
	return ns
}

func (s *Service) guestSample(now time.Time, ref GuestRef, r guestRead) *guestState {
	g := &guestState{c: r.c, pid: ref.PID}
	m := &g.GuestMetrics
	m.VMID, m.Type, m.Name, m.Node, m.Time = ref.VMID, ref.Type, ref.Name, s.cfg.Node, now.UTC()
	m.CPUs, m.MaxMem, m.Mem, m.Balloon = ref.CPUs, ref.MaxMem, r.mem, r.drv.Balloon
	nan := math.NaN()
	m.CPU, m.DiskRead, m.DiskWrite, m.ReadOps, m.WriteOps, m.NetIn, m.NetOut = nan, nan, nan, nan, nan, nan, nan
	if !r.valid {
		m.Mem = 0
	}
	prev := s.guests[ref.VMID]
	if prev == nil || !r.valid || prev.pid != ref.PID {
		return g
	}
	dt := now.Sub(prev.Time).Seconds()
	if dt <= 0 {
		return g
	}
	if d := r.c.cpuSec - prev.c.cpuSec; d >= 0 && ref.CPUs > 0 {
		m.CPU = d / dt / ref.CPUs
	}
	if r.c.haveDisk && prev.c.haveDisk {
		m.DiskRead, m.DiskWrite = rate(r.c.rdBytes, prev.c.rdBytes, dt), rate(r.c.wrBytes, prev.c.wrBytes, dt)
		if !r.c.noOps {
			m.ReadOps, m.WriteOps = rate(r.c.rdOps, prev.c.rdOps, dt), rate(r.c.wrOps, prev.c.wrOps, dt)
		}
	}
	if len(ref.Ifaces) > 0 {
		m.NetIn, m.NetOut = rate(r.c.netIn, prev.c.netIn, dt), rate(r.c.netOut, prev.c.netOut, dt)
	}
	return g
}

func nodeValues(m api.NodeMetrics) []float64 {
	psi := func(k string) float64 {
		if v, ok := m.PSI[k]; ok {
			return v
		}
		return math.NaN()
	}
	return []float64{m.CPU, float64(m.CPUs), m.Load[0], float64(m.MemUsed), float64(m.MemTotal), float64(m.SwapUsed), float64(m.SwapTotal),
		float64(m.RootUsed), float64(m.RootTotal), m.NetIn, m.NetOut, psi("cpu"), psi("memory"), psi("io")}
}

func guestValues(m api.GuestMetrics) []float64 {
	return []float64{m.CPU, m.CPUs, float64(m.Mem), float64(m.MaxMem), float64(m.Balloon), m.DiskRead, m.DiskWrite,
		m.ReadOps, m.WriteOps, m.NetIn, m.NetOut}
}

// update writes one sample to an archive, opening (or creating) it first.
// An archive of another layout (series added by an upgrade) is moved
// aside and started afresh rather than misread.
func (s *Service) update(name string, series []string, now time.Time, vals []float64) error {
	db, err := s.db(name, series, true)
	if err != nil {
		return err
	}
	if err := db.Update(now, vals); err != nil && !errors.Is(err, rrd.ErrOld) {
		return fmt.Errorf("metrics: archive %s: %w", name, err)
	}
	return nil
}

func (s *Service) db(name string, series []string, create bool) (*rrd.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if db := s.dbs[name]; db != nil {
		return db, nil
	}
	path := filepath.Join(s.cfg.Dir, name+".rrd")
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, nil
		}
	}
	db, err := rrd.Open(path, series, s.cfg.Archives)
	if errors.Is(err, rrd.ErrLayout) {
		s.log.Warn("metrics archive has an old layout; starting a new one", "file", path)
		os.Rename(path, path+".old")
		db, err = rrd.Open(path, series, s.cfg.Archives)
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s.dbs[name] = db
	return db, nil
}

// ForgetGuest removes a destroyed guest's archive, so a new guest that
// gets the same ID starts with an empty history rather than another's.
func (s *Service) ForgetGuest(vmid int) error {
	name := guestDB(vmid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if db := s.dbs[name]; db != nil {
		db.Close()
		delete(s.dbs, name)
	}
	delete(s.guests, vmid)
	err := os.Remove(filepath.Join(s.cfg.Dir, name+".rrd"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// RRD kinds.
const (
	KindNode    = "node"
	KindGuest   = "guest"
	KindStorage = "storage"
)

// RRD returns the history of one entity of this node. An entity never
// sampled has no points.
func (s *Service) RRD(kind, id, timeframe, cf string) (api.RRDData, error) {
	tf, ok := Timeframes[timeframe]
	if !ok {
		return api.RRDData{}, errs.Invalid("timeframe", "must be hour, day, week, month or year")
	}
	if cf != rrd.Average && cf != rrd.Max {
		return api.RRDData{}, errs.Invalid("cf", "must be AVERAGE or MAX")
	}
	series := map[string][]string{KindNode: NodeSeries, KindGuest: GuestSeries, KindStorage: StorageSeries}[kind]
	if series == nil {
		return api.RRDData{}, fmt.Errorf("metrics: unknown kind %q", kind)
	}
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return api.RRDData{}, errs.Invalid("id", "invalid name %q", id)
	}
	out := api.RRDData{Timeframe: timeframe, CF: cf, Step: int(s.cfg.Archives[tf.Archive].Step / time.Second), Series: series, Points: []api.RRDPoint{}}
	db, err := s.db(kind+"/"+id, series, false)
	if err != nil || db == nil {
		return out, err
	}
	pts, err := db.Fetch(tf.Archive, cf, tf.Rows)
	if err != nil {
		return out, fmt.Errorf("metrics: %w", err)
	}
	for _, p := range pts {
		rp := api.RRDPoint{Time: p.Time.Unix(), Values: make([]*float64, len(p.Values))}
		for i, v := range p.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				rp.Values[i] = &v
			}
		}
		out.Points = append(out.Points, rp)
	}
	return out, nil
}

// Current is the latest sample of the node, its running guests and pools.
// JSON can't carry NaN: unknown rates are reported as 0 here.
func (s *Service) Current() api.MetricsCurrent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := api.MetricsCurrent{Nodes: []api.NodeMetrics{}, Guests: []api.GuestMetrics{}, Storage: []api.StorageMetrics{}}
	if s.node != nil {
		n := s.node.NodeMetrics
		n.CPU, n.NetIn, n.NetOut = zeroNaN(n.CPU), zeroNaN(n.NetIn), zeroNaN(n.NetOut)
		out.Nodes = append(out.Nodes, n)
	}
	for _, g := range s.guests {
		m := g.GuestMetrics
		for _, p := range []*float64{&m.CPU, &m.DiskRead, &m.DiskWrite, &m.ReadOps, &m.WriteOps, &m.NetIn, &m.NetOut} {
			*p = zeroNaN(*p)
		}
		out.Guests = append(out.Guests, m)
	}
	slices.SortFunc(out.Guests, func(a, b api.GuestMetrics) int { return a.VMID - b.VMID })
	for _, p := range s.storage {
		out.Storage = append(out.Storage, p)
	}
	slices.SortFunc(out.Storage, func(a, b api.StorageMetrics) int {
		if a.Storage < b.Storage {
			return -1
		}
		if a.Storage > b.Storage {
			return 1
		}
		return 0
	})
	return out
}

func zeroNaN(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
