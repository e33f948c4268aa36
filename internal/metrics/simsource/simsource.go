// Package simsource simulates running guests for the sampler's benchmark,
// where 200 real VMs can't be had: each simulated guest has a directory of
// cgroup v2 counter files that grow between rounds, and a QMP monitor
// (a real qmp.Monitor talking to an in-process responder over a pipe) that
// answers query-blockstats and query-balloon. The sampler reads them with
// the same code as real guests. Nothing but the benchmark uses this.
package simsource

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/metrics"
	"github.com/corral-project/corral/internal/qemu/qmp"
)

// Source is a set of simulated running VMs.
type Source struct {
	refs  []metrics.GuestRef
	round atomic.Uint64
	mons  []*qmp.Monitor
}

// New creates n simulated guests with their counter files under dir.
func New(ctx context.Context, dir string, n int) (*Source, error) {
	s := &Source{}
	for i := 0; i < n; i++ {
		vmid := 1000 + i
		cg := filepath.Join(dir, fmt.Sprintf("qemu-%d", vmid))
		if err := os.MkdirAll(cg, 0o755); err != nil {
			return nil, err
		}
		a, b := net.Pipe()
		go s.respond(b, uint64(i))
		mon, err := qmp.NewMonitor(ctx, a)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("simulated QMP: %w", err)
		}
		s.mons = append(s.mons, mon)
		s.refs = append(s.refs, metrics.GuestRef{VMID: vmid, Type: api.GuestVM, Name: fmt.Sprintf("sim%d", vmid), CPUs: 2, MaxMem: 2 << 30,
			Cgroup: metrics.Cgroup{V2: cg},
			Stats:  func(ctx context.Context) (metrics.DriverStats, error) { return metrics.QMPStats(ctx, mon, true) }})
	}
	return s, s.Advance()
}

// respond is a minimal QMP server: the greeting, then an answer per command.
func (s *Source) respond(conn net.Conn, seed uint64) {
	defer conn.Close()
	w := bufio.NewWriter(conn)
	fmt.Fprintln(w, `{"QMP":{"version":{"qemu":{"major":7,"minor":2,"micro":0},"package":""},"capabilities":[]}}`)
	w.Flush()
	dec := json.NewDecoder(conn)
	for {
		var cmd struct {
			Execute string          `json:"execute"`
			ID      json.RawMessage `json:"id"`
		}
		if err := dec.Decode(&cmd); err != nil {
			return
		}
		r := s.round.Load()
		var ret any = struct{}{}
		switch cmd.Execute {
		case "query-blockstats":
			ret = []map[string]any{{"device": "", "stats": map[string]uint64{
				"rd_bytes": r * (seed + 1) << 16, "wr_bytes": r * (seed + 1) << 15, "rd_operations": r * 16, "wr_operations": r * 8}}}
		case "query-balloon":
			ret = map[string]uint64{"actual": 1 << 30}
		}
		b, _ := json.Marshal(map[string]any{"return": ret, "id": cmd.ID})
		w.Write(append(b, '\n'))
		w.Flush()
	}
}

// Advance grows every guest's counters, as a round of guest activity would.
func (s *Source) Advance() error {
	r := s.round.Add(1)
	for i, ref := range s.refs {
		files := map[string]string{
			"cpu.stat":       fmt.Sprintf("usage_usec %d\nuser_usec %d\nsystem_usec %d\n", r*uint64(1_000_000+i*1000), r*800_000, r*200_000),
			"memory.current": fmt.Sprintf("%d\n", 512<<20+uint64(i)<<20),
			"memory.stat":    fmt.Sprintf("anon %d\nfile %d\ninactive_file %d\nactive_file %d\n", 400<<20, 112<<20, 64<<20, 48<<20),
			"io.stat":        fmt.Sprintf("8:0 rbytes=%d wbytes=%d rios=%d wios=%d dbytes=0 dios=0\n", r<<20, r<<19, r*10, r*5),
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(ref.Cgroup.V2, name), []byte(content), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// SampleGuests implements metrics.GuestSource.
func (s *Source) SampleGuests() []metrics.GuestRef { return s.refs }

// Close ends the simulated monitors.
func (s *Source) Close() {
	for _, m := range s.mons {
		m.Close()
	}
}
