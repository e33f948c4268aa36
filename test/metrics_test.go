package test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
	"github.com/corral-project/corral/test/guest"
)

func rrdMax(t *testing.T, c *client.Client, path, series string) float64 {
	t.Helper()
	var d api.RRDData
	if _, err := c.Do(bg, "GET", path, url.Values{"timeframe": {"hour"}, "cf": {"MAX"}}, nil, &d); err != nil {
		t.Fatal(err)
	}
	idx := -1
	for i, s := range d.Series {
		if s == series {
			idx = i
		}
	}
	if idx < 0 {
		t.Fatalf("%s: no series %s in %v", path, series, d.Series)
	}
	best := -1.0
	for _, p := range d.Points {
		if v := p.Values[idx]; v != nil && *v > best {
			best = *v
		}
	}
	return best
}

func scrapeMetrics(t *testing.T, n *Node, auth string) map[string]*dto.MetricFamily {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", n.URL+"/metrics", nil)
	req.Header.Set("Authorization", auth)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

func guestSeries(f *dto.MetricFamily, id string) *dto.Metric {
	if f == nil {
		return nil
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == "id" && l.GetValue() == id {
				return m
			}
		}
	}
	return nil
}

// A real VM (the test guest under QEMU) burning CPU and writing its disk:
// its series show both, in the current sample, the archives, Prometheus
// (parsed with the official parser, per-guest labels, hidden from a token
// without rights) and a Graphite server defined through the API. The
// history survives a daemon restart.
func TestMetricsOfARealVMUnderLoad(t *testing.T) {
	needQEMU(t)
	dir := guest.Build(t)
	n := StartNode(t, "CORRAL_METRICS_INTERVAL=1s")
	c := n.Admin()

	// A Graphite receiver, defined cluster-wide before the VM starts.
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gl.Close()
	var gmu sync.Mutex
	var glines []string
	go func() {
		for {
			conn, err := gl.Accept()
			if err != nil {
				return
			}
			go func() {
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					gmu.Lock()
					glines = append(glines, sc.Text())
					gmu.Unlock()
				}
			}()
		}
	}()
	var ms api.MetricServerStatus
	if _, err := c.Do(bg, "POST", "/cluster/metrics/server/g1", nil,
		map[string]any{"type": "graphite", "server": "127.0.0.1", "port": gl.Addr().(*net.TCPAddr).Port}, &ms); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(bg, "POST", "/cluster/metrics/server/bad", nil, map[string]any{"type": "graphite", "server": "127.0.0.1", "port": 1, "protocol": "http"}, nil); !isProblem(err, 422, "protocol") {
		t.Errorf("graphite over http: %v", err)
	}
	if _, err := c.Do(bg, "POST", "/cluster/metrics/server/i1", nil, map[string]any{"type": "influxdb", "server": "127.0.0.1", "port": 1, "token": "t0k", "disable": true}, &ms); err != nil || !ms.HasToken {
		t.Errorf("influx with token: %+v %v", ms, err)
	}
	tk, err := c.Login(bg, "admin@corral", n.Password)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := raw(t, n, "GET", "/cluster/metrics/server", "", map[string]string{"Authorization": "Bearer " + tk.Ticket}); code != 200 || strings.Contains(string(body), "t0k") || !strings.Contains(string(body), `"g1"`) {
		t.Errorf("list metric servers: %d %s (the token must never be returned)", code, body)
	}

	f, err := os.Open(filepath.Join(dir, guest.ISO))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := c.Do(bg, "POST", "/nodes/n1/storage/local/upload", url.Values{"content": {"iso"}, "filename": {"guest.iso"}}, f, nil,
		client.WithHeader("Content-Type", "application/octet-stream")); err != nil {
		t.Fatal(err)
	}
	cr, err := createVM(t, c, api.VMCreate{VMID: 100, Name: "loaded", Memory: 256, Machine: "pc",
		CDROMs: []api.VMCDROM{{Volume: "local:iso/guest.iso"}}, Boot: []string{"cdrom0"},
		Disks: []api.VMDisk{{Bus: "virtio", Storage: "local", Size: "64M"}}, Start: true})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, cr.Task)
	r, send, closeConsole := serialConsole(t, n, c, 100)
	defer closeConsole()
	waitPong(t, r, send)
	send("dd if=/dev/zero of=/dev/vda bs=1M count=40 conv=fsync && echo dd-done")
	expect(t, r, "dd-done", 60*time.Second)
	send("(while :; do :; done) &")
	time.Sleep(4 * time.Second)

	var cur api.MetricsCurrent
	if _, err := c.Do(bg, "GET", "/cluster/metrics/current", nil, nil, &cur); err != nil {
		t.Fatal(err)
	}
	var g *api.GuestMetrics
	for i := range cur.Guests {
		if cur.Guests[i].VMID == 100 {
			g = &cur.Guests[i]
		}
	}
	if g == nil || len(cur.Nodes) != 1 {
		t.Fatalf("current metrics: %+v", cur)
	}
	if g.CPU < 0.3 || g.Mem < 16<<20 || g.MaxMem != 256<<20 || g.Name != "loaded" || g.Type != api.GuestVM {
		t.Errorf("loaded VM sample: %+v", *g)
	}
	if w := rrdMax(t, c, "/vms/100/rrddata", "diskwrite"); w < 1<<20 {
		t.Errorf("VM disk writes peaked at %.0f B/s; dd wrote 40 MiB", w)
	}
	if v := rrdMax(t, c, "/vms/100/rrddata", "cpu"); v < 0.3 {
		t.Errorf("VM cpu peaked at %.2f with a busy loop", v)
	}
	if v := rrdMax(t, c, "/nodes/n1/rrddata", "memtotal"); v <= 0 {
		t.Errorf("node memtotal %v", v)
	}
	if v := rrdMax(t, c, "/nodes/n1/storage/local/rrddata", "total"); v <= 0 {
		t.Errorf("storage total %v", v)
	}
	for _, bad := range []struct {
		path   string
		q      url.Values
		status int
	}{
		{"/nodes/n1/rrddata", url.Values{"timeframe": {"decade"}}, 422},
		{"/nodes/n1/rrddata", url.Values{"cf": {"MIN"}}, 422},
		{"/vms/101/rrddata", nil, 404},
		{"/containers/100/rrddata", nil, 404},
		{"/nodes/n1/storage/nope/rrddata", nil, 404},
	} {
		if _, err := c.Do(bg, "GET", bad.path, bad.q, nil, nil); client.StatusOf(err) != bad.status {
			t.Errorf("GET %s?%s: %v, want %d", bad.path, bad.q.Encode(), err, bad.status)
		}
	}

	// Prometheus with the admin's ticket: the VM's counters, labelled.
	fams := scrapeMetrics(t, n, "Bearer "+tk.Ticket)
	m := guestSeries(fams["corral_guest_disk_written_bytes_total"], "100")
	if m == nil || m.Counter.GetValue() < 40<<20 {
		t.Fatalf("guest disk counter: %v", m)
	}
	labels := map[string]string{}
	for _, l := range m.Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["name"] != "loaded" || labels["type"] != "qemu" || labels["node"] != "n1" {
		t.Errorf("labels %v", labels)
	}
	// A token of a user with no rights sees no guest or node series.
	if _, err := c.CreateUser(bg, api.UserCreate{UserID: "carol@corral", Password: "carol-password"}); err != nil {
		t.Fatal(err)
	}
	sec, err := c.CreateToken(bg, "carol@corral", "prom", api.TokenCreate{})
	if err != nil {
		t.Fatal(err)
	}
	fams = scrapeMetrics(t, n, "CorralToken "+sec.TokenID+"="+sec.Secret)
	if fams["corral_guest_cpu_seconds_total"] != nil || fams["corral_node_cpu_ratio"] != nil {
		t.Errorf("a token without rights sees series: %v", len(fams))
	}

	// Graphite got the VM's points.
	deadline := time.Now().Add(10 * time.Second)
	for found := false; !found; {
		gmu.Lock()
		for _, l := range glines {
			found = found || strings.HasPrefix(l, "corral.guests.100.cpu ")
		}
		gmu.Unlock()
		if !found && time.Now().After(deadline) {
			t.Fatal("graphite received no guest points")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The history survives a restart of the daemon.
	before := rrdMax(t, c, "/vms/100/rrddata", "diskwrite")
	n.Stop()
	n.Start()
	c = n.Admin()
	if after := rrdMax(t, c, "/vms/100/rrddata", "diskwrite"); after < before*0.99 {
		t.Errorf("diskwrite peak %.0f before restart, %.0f after", before, after)
	}

	// Destroying the VM drops its history: a new VM 100 would start empty.
	archive := filepath.Join(n.DataDir, "rrd", "guest", "100.rrd")
	if _, err := os.Stat(archive); err != nil {
		t.Fatalf("archive of VM 100: %v", err)
	}
	upid, err := vmAction(t, c, 100, "stop")
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, upid)
	var ref api.TaskRef
	if _, err := c.Do(bg, "DELETE", "/vms/100", nil, nil, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(archive); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the destroyed VM's archive is still there")
		}
	}
}

func waitPong(t *testing.T, r *bufio.Reader, send func(string)) {
	t.Helper()
	got := make(chan struct{})
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.TrimSpace(line) == "pong" {
				close(got)
				return
			}
		}
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		send("ping")
		select {
		case <-got:
			return
		case <-time.After(2 * time.Second):
			if time.Now().After(deadline) {
				t.Fatal("the guest never answered ping on the serial console")
			}
		}
	}
}

func isProblem(err error, status int, field string) bool {
	var p *api.Problem
	return errors.As(err, &p) && p.Status == status && hasField(*p, field)
}

// A real container (LXC, busybox) writing and burning CPU: its sample and
// archive show both, read through the cgroup the driver's init PID is in.
func TestMetricsOfARealContainerUnderLoad(t *testing.T) {
	needLXC(t)
	n := ctNode(t) // samples every 10 s, the default
	c := n.Admin()
	tmpl := busyboxTemplate(t, n, c)
	id := createCT(t, c, api.CTCreate{OSTemplate: tmpl, Hostname: "busy", Memory: 64})
	ctAct(t, c, id, "start")
	mustOut(t, c, id, "sh", "-c", "(dd if=/dev/zero of=/root/blob bs=1M count=8 conv=fsync; while :; do :; done) >/dev/null 2>&1 & echo started")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var cur api.MetricsCurrent
		if _, err := c.Do(bg, "GET", "/cluster/metrics/current", nil, nil, &cur); err != nil {
			t.Fatal(err)
		}
		var g *api.GuestMetrics
		for i := range cur.Guests {
			if cur.Guests[i].VMID == id {
				g = &cur.Guests[i]
			}
		}
		if g != nil && g.CPU > 0.3 {
			if g.Type != api.GuestContainer || g.Name != "busy" || g.Mem == 0 || g.MaxMem != 64<<20 {
				t.Fatalf("container sample: %+v", *g)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no busy container in the samples after 60 s: %+v", cur.Guests)
		}
		time.Sleep(time.Second)
	}
	path := "/containers/" + strconv.Itoa(id) + "/rrddata"
	if v := rrdMax(t, c, path, "cpu"); v < 0.3 {
		t.Errorf("container cpu peaked at %.2f", v)
	}
	if v := rrdMax(t, c, path, "mem"); v <= 0 {
		t.Errorf("container memory %v", v)
	}
	tk, _ := c.Ticket()
	fams := scrapeMetrics(t, n, "Bearer "+tk)
	if m := guestSeries(fams["corral_guest_disk_written_bytes_total"], strconv.Itoa(id)); m == nil || m.Counter.GetValue() < 8<<20 {
		t.Errorf("container disk writes: %v, want the 8 MiB dd wrote", m)
	}
}
