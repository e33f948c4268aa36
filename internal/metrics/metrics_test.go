package metrics

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/corral-project/corral/api"
)

type staticSource []GuestRef

func (s staticSource) SampleGuests() []GuestRef { return s }

func newService(t *testing.T, dir string) *Service {
	t.Helper()
	s, err := New(Config{Node: "n1", Dir: dir, Interval: time.Second,
		Storage: func(context.Context) []StorageUsage {
			return []StorageUsage{{Storage: "local", Total: 1000, Used: 250}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// busyInCgroup starts a CPU-burning process in a fresh v1 cpuacct+memory
// cgroup (or a v2 one) and returns its Cgroup; the test skips where it
// can't make cgroups.
func busyInCgroup(t *testing.T) (Cgroup, *exec.Cmd) {
	t.Helper()
	name := fmt.Sprintf("corral-metrics-test-%d", os.Getpid())
	var cg Cgroup
	var dirs []string
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cg.V2 = filepath.Join("/sys/fs/cgroup", name)
		dirs = []string{cg.V2}
	} else {
		cg.CPUAcct = filepath.Join("/sys/fs/cgroup/cpuacct", name)
		cg.Memory = filepath.Join("/sys/fs/cgroup/memory", name)
		dirs = []string{cg.CPUAcct, cg.Memory}
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Skipf("SKIP reason: cannot create cgroup %s: %v", d, err)
		}
		t.Cleanup(func() {
			for i := 0; i < 50 && os.Remove(d) != nil; i++ {
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	// The process moves itself into the cgroups, writes 8 MiB past the
	// page cache, then burns CPU holding ~8 MB.
	script := `f=$1; shift; for d in "$@"; do echo $$ > "$d/cgroup.procs" || exit 1; done
dd if=/dev/zero of="$f" bs=1M count=8 oflag=direct 2>/dev/null || exit 1
x=$(head -c 8000000 /dev/zero | tr '\0' a); while :; do :; done`
	cmd := exec.Command("sh", append([]string{"-c", script, "sh", filepath.Join(t.TempDir(), "written")}, dirs...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cg, cmd
}

// A real process in a real cgroup: its series show the CPU it burns and
// the memory it holds, in the current sample, the archives and Prometheus.
func TestGuestSeriesShowLoad(t *testing.T) {
	cg, cmd := busyInCgroup(t)
	// A container driver finds the cgroup from the init PID.
	deadline := time.Now().Add(5 * time.Second)
	for {
		found, err := CgroupOfPID(cmd.Process.Pid)
		if err == nil && found.CPUAcct == cg.CPUAcct && found.Memory == cg.Memory && found.V2 == cg.V2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CgroupOfPID: %+v %v, want %+v", found, err, cg)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := newService(t, t.TempDir())
	defer s.Close()
	s.AddGuestSource(staticSource{{VMID: 100, Type: api.GuestContainer, Name: "busy", CPUs: 1, MaxMem: 512 << 20, Cgroup: cg}})
	ctx := context.Background()
	time.Sleep(300 * time.Millisecond)
	// The truth to compare with: the process's own CPU time between the
	// last two samples (procfs, independent of the cgroup reading), so a
	// loaded machine that gives the loop little CPU doesn't fail the test.
	var cpu0, cpu1 float64
	var t0, t1 time.Time
	for i := 0; i < 3; i++ {
		cpu0, t0 = cpu1, t1
		if err := s.Sample(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := procCPU(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		cpu1, t1 = c, time.Now()
		if i < 2 {
			time.Sleep(time.Second)
		}
	}
	truth := (cpu1 - cpu0) / t1.Sub(t0).Seconds()
	cur := s.Current()
	if len(cur.Guests) != 1 || len(cur.Nodes) != 1 || len(cur.Storage) != 1 {
		t.Fatalf("current: %+v", cur)
	}
	g := cur.Guests[0]
	if truth < 0.02 {
		t.Skipf("SKIPPED: the busy loop got %.3f of a core: the machine is too loaded to measure", truth)
	}
	if g.CPU < truth*0.6-0.05 || g.CPU > truth*1.4+0.05 {
		t.Errorf("busy guest CPU share %.2f, the process burnt %.2f of a core", g.CPU, truth)
	}
	if g.Mem < 4<<20 {
		t.Errorf("guest memory %d bytes, want the ~8 MB the process holds", g.Mem)
	}
	n := cur.Nodes[0]
	if n.CPU <= 0 || n.MemTotal == 0 || n.MemUsed == 0 || n.RootTotal == 0 || n.CPUs == 0 {
		t.Errorf("node sample: %+v", n)
	}
	d, err := s.RRD(KindGuest, "100", "hour", "MAX")
	if err != nil {
		t.Fatal(err)
	}
	last := d.Points[len(d.Points)-1]
	if last.Values[0] == nil || *last.Values[0] < 0.2 {
		t.Errorf("archived cpu %v", last.Values[0])
	}
	if d.Step != 10 || len(d.Points) != 360 || d.Series[0] != "cpu" {
		t.Errorf("hour rrd: step %d, %d points, series %v", d.Step, len(d.Points), d.Series)
	}
	if _, err := s.RRD(KindGuest, "100", "decade", "MAX"); err == nil {
		t.Error("bad timeframe accepted")
	}
	defer func() {
		// Destroying the guest drops its history: a new guest 100 starts empty.
		if err := s.ForgetGuest(100); err != nil {
			t.Fatal(err)
		}
		if d, err := s.RRD(KindGuest, "100", "hour", "MAX"); err != nil || len(d.Points) != 0 {
			t.Errorf("history after ForgetGuest: %d points, %v", len(d.Points), err)
		}
	}()

	// Prometheus: the official parser reads it; guest series carry id,
	// name, type and node; a filter hides what the caller may not see.
	fams := scrape(t, s, func(kind, id string) bool { return true })
	cpu := fams["corral_guest_cpu_seconds_total"]
	if cpu == nil || len(cpu.Metric) != 1 {
		t.Fatalf("no guest cpu counter: %v", keys(fams))
	}
	labels := map[string]string{}
	for _, l := range cpu.Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["id"] != "100" || labels["name"] != "busy" || labels["type"] != "lxc" || labels["node"] != "n1" || cpu.Metric[0].Counter.GetValue() <= 0 {
		t.Errorf("guest cpu series: %v = %v", labels, cpu.Metric[0].Counter.GetValue())
	}
	if w := fams["corral_guest_disk_written_bytes_total"]; w == nil || w.Metric[0].Counter.GetValue() < 8<<20 {
		t.Errorf("guest disk writes: %v, want the 8 MiB dd wrote", w)
	}
	for _, want := range []string{"corral_node_cpu_ratio", "corral_node_memory_bytes", "corral_storage_bytes", "corral_guest_memory_bytes"} {
		if fams[want] == nil {
			t.Errorf("missing %s", want)
		}
	}
	hidden := scrape(t, s, func(kind, id string) bool { return kind == KindNode })
	if hidden["corral_guest_cpu_seconds_total"] != nil || hidden["corral_storage_bytes"] != nil || hidden["corral_node_cpu_ratio"] == nil {
		t.Errorf("filtered scrape: %v", keys(hidden))
	}
}

func scrape(t *testing.T, s *Service, f Filter) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector(f))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	return fams
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A restart (a new Service over the same directory) keeps the history.
func TestRestartKeepsHistory(t *testing.T) {
	dir := t.TempDir()
	s := newService(t, dir)
	for i := 0; i < 2; i++ {
		if err := s.Sample(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = newService(t, dir)
	defer s.Close()
	for _, k := range []struct{ kind, id string }{{KindNode, "n1"}, {KindStorage, "local"}} {
		d, err := s.RRD(k.kind, k.id, "hour", "AVERAGE")
		if err != nil {
			t.Fatal(err)
		}
		known := 0
		for _, p := range d.Points {
			if p.Values[1] != nil {
				known++
			}
		}
		if known == 0 {
			t.Errorf("%s %s: no history after restart", k.kind, k.id)
		}
	}
	d, _ := s.RRD(KindStorage, "local", "hour", "AVERAGE")
	if v := d.Points[len(d.Points)-1].Values; v[0] == nil || *v[0] != 250 || *v[1] != 1000 {
		t.Errorf("storage history after restart: %v", v)
	}
}

// receivers are the external servers, written here: an InfluxDB HTTP
// endpoint, an InfluxDB UDP socket and a Graphite TCP plaintext listener.
type received struct {
	mu    sync.Mutex
	lines map[string][]string
}

func (r *received) add(kind, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if l != "" {
			r.lines[kind] = append(r.lines[kind], l)
		}
	}
}

func (r *received) get(kind string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines[kind]...)
}

func TestExternalServersReceivePointsAndDownOnesDontBlock(t *testing.T) {
	rec := &received{lines: map[string][]string{}}
	influx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/write" || r.URL.Query().Get("bucket") != "b1" || r.Header.Get("Authorization") != "Token s3cret" {
			http.Error(w, "bad request "+r.URL.String(), 400)
			return
		}
		b, _ := io.ReadAll(r.Body)
		rec.add("influx-http", string(b))
		w.WriteHeader(204)
	}))
	defer influx.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			rec.add("influx-udp", string(buf[:n]))
		}
	}()
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gl.Close()
	go func() {
		for {
			c, err := gl.Accept()
			if err != nil {
				return
			}
			go func() {
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					rec.add("graphite", sc.Text())
				}
			}()
		}
	}()
	// A server that accepts and never answers, and one that isn't there.
	stopHang := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-stopHang:
		}
	}))
	defer hang.Close()
	defer close(stopHang)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()

	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(strings.TrimPrefix(addr, "http://"))
		n, _ := strconv.Atoi(p)
		return n
	}
	s := newService(t, t.TempDir())
	defer s.Close()
	s.AddGuestSource(staticSource{{VMID: 100, Type: api.GuestVM, Name: "web 1", CPUs: 2, MaxMem: 1 << 30, PID: os.Getpid()}})
	s.SetServers(func() []ServerConfig {
		return []ServerConfig{
			{MetricServer: api.MetricServer{ID: "ih", Type: api.MetricInfluxDB, Server: "127.0.0.1", Port: port(influx.URL), Protocol: "http", Bucket: "b1"}, Token: "s3cret"},
			{MetricServer: api.MetricServer{ID: "iu", Type: api.MetricInfluxDB, Server: "127.0.0.1", Port: udp.LocalAddr().(*net.UDPAddr).Port, Protocol: "udp", MTU: 512}},
			{MetricServer: api.MetricServer{ID: "g", Type: api.MetricGraphite, Server: "127.0.0.1", Port: gl.Addr().(*net.TCPAddr).Port, PathPrefix: "pve.test"}},
			{MetricServer: api.MetricServer{ID: "hang", Type: api.MetricInfluxDB, Server: "127.0.0.1", Port: port(hang.URL), Timeout: 30}},
			{MetricServer: api.MetricServer{ID: "dead", Type: api.MetricGraphite, Server: "127.0.0.1", Port: deadPort}},
		}
	})
	start := time.Now()
	for i := 0; i < sinkQueue+5; i++ {
		if err := s.Sample(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("%d rounds took %s: a down server slowed sampling", sinkQueue+5, el)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && (len(rec.get("influx-http")) == 0 || len(rec.get("influx-udp")) == 0 || len(rec.get("graphite")) == 0) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, kind := range []string{"influx-http", "influx-udp"} {
		var node, guest bool
		for _, l := range rec.get(kind) {
			node = node || (strings.HasPrefix(l, "corral_node,node=n1 ") && strings.Contains(l, "memtotal="))
			guest = guest || strings.HasPrefix(l, `corral_guest,node=n1,vmid=100,name=web\ 1,type=qemu `)
			if f := strings.Fields(strings.ReplaceAll(l, `\ `, "_")); len(f) != 3 {
				t.Errorf("%s: malformed line %q", kind, l)
			}
		}
		if !node || !guest {
			t.Errorf("%s: node line %v, guest line %v in %d lines", kind, node, guest, len(rec.get(kind)))
		}
	}
	var gnode, gguest bool
	for _, l := range rec.get("graphite") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Errorf("graphite: malformed line %q", l)
			continue
		}
		gnode = gnode || f[0] == "pve.test.nodes.n1.memtotal"
		gguest = gguest || f[0] == "pve.test.guests.100.mem"
	}
	if !gnode || !gguest {
		t.Errorf("graphite: node %v guest %v", gnode, gguest)
	}
	st := s.ExportStats()
	if st["hang"].Dropped == 0 || st["dead"].Errors == 0 {
		t.Errorf("down servers: %+v", st)
	}
	if st["ih"].Sent == 0 || st["ih"].Dropped != 0 {
		t.Errorf("working server: %+v", st["ih"])
	}
}

// A guest's host-side interfaces give its traffic (loopback here: what the
// host sends is what the guest receives, and on lo both are the same).
func TestGuestNetworkFromInterfaces(t *testing.T) {
	s := newService(t, t.TempDir())
	defer s.Close()
	s.AddGuestSource(staticSource{{VMID: 100, Type: api.GuestContainer, CPUs: 1, PID: os.Getpid(), Ifaces: []string{"lo"}}})
	ctx := context.Background()
	if err := s.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	before := s.guests[100].c
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write(make([]byte, 4<<20))
	c.Close()
	time.Sleep(200 * time.Millisecond)
	if err := s.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	g := s.Current().Guests[0]
	after := s.guests[100].c
	if after.netIn-before.netIn < 4<<20 || after.netOut-before.netOut < 4<<20 || g.NetIn <= 0 || g.NetOut <= 0 {
		t.Errorf("4 MiB over lo: in +%d out +%d, rates %.0f/%.0f B/s", after.netIn-before.netIn, after.netOut-before.netOut, g.NetIn, g.NetOut)
	}
}
