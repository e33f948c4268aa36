package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-project/corral/api"
)

type atomicDuration struct{ v atomic.Int64 }

func (a *atomicDuration) store(d time.Duration) { a.v.Store(int64(d)) }
func (a *atomicDuration) load() time.Duration   { return time.Duration(a.v.Load()) }

// ServerConfig is an external metric server as the exporter needs it:
// the API's definition plus its secret token.
type ServerConfig struct {
	api.MetricServer
	Token string
}

// SetServers gives the service the function that lists the cluster-wide
// metric server definitions; it is read at every round, so changes apply
// within one interval.
func (s *Service) SetServers(list func() []ServerConfig) {
	s.sinks.mu.Lock()
	s.sinks.list = list
	s.sinks.mu.Unlock()
}

// ExportStats reports, per server, points sent and batches dropped.
func (s *Service) ExportStats() map[string]api.MetricServerStats {
	s.sinks.mu.Lock()
	defer s.sinks.mu.Unlock()
	out := map[string]api.MetricServerStats{}
	for id, k := range s.sinks.sinks {
		out[id] = api.MetricServerStats{Sent: k.sent.Load(), Dropped: k.dropped.Load(), Errors: k.errors.Load(), LastError: k.lastErr()}
	}
	return out
}

// sinkQueue is how many rounds an exporter may fall behind before rounds
// are dropped (and counted): a server that is down never blocks sampling.
const sinkQueue = 32

type sinkSet struct {
	mu    sync.Mutex
	list  func() []ServerConfig
	sinks map[string]*sink
}

type sink struct {
	cfg     ServerConfig
	key     string // config fingerprint: a change restarts the sink
	q       chan []byte
	ctx     context.Context // cancelled when the sink stops: aborts a send in flight
	stop    context.CancelFunc
	sent    atomic.Uint64
	dropped atomic.Uint64
	errors  atomic.Uint64
	errMu   sync.Mutex
	err     string
}

func (k *sink) lastErr() string {
	k.errMu.Lock()
	defer k.errMu.Unlock()
	return k.err
}

func (k *sink) setErr(err error) {
	k.errMu.Lock()
	defer k.errMu.Unlock()
	if err == nil {
		k.err = ""
		return
	}
	k.errors.Add(1)
	k.err = err.Error()
}

// sync starts, restarts and stops sinks to match the definitions.
func (ss *sinkSet) sync() []*sink {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.list == nil {
		return nil
	}
	if ss.sinks == nil {
		ss.sinks = map[string]*sink{}
	}
	want := map[string]ServerConfig{}
	for _, c := range ss.list() {
		if !c.Disable {
			want[c.ID] = c
		}
	}
	for id, k := range ss.sinks {
		if c, ok := want[id]; !ok || fingerprint(c) != k.key {
			k.stop()
			delete(ss.sinks, id)
		}
	}
	var out []*sink
	for id, c := range want {
		k := ss.sinks[id]
		if k == nil {
			k = &sink{cfg: c, key: fingerprint(c), q: make(chan []byte, sinkQueue)}
			k.ctx, k.stop = context.WithCancel(context.Background())
			ss.sinks[id] = k
			go k.run()
		}
		out = append(out, k)
	}
	return out
}

func fingerprint(c ServerConfig) string { return fmt.Sprintf("%+v", c) }

func (ss *sinkSet) closeAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, k := range ss.sinks {
		k.stop()
		delete(ss.sinks, id)
	}
}

// offer queues a round without ever waiting.
func (k *sink) offer(b []byte) {
	select {
	case k.q <- b:
	default:
		k.dropped.Add(1)
	}
}

func (k *sink) run() {
	var conn net.Conn // kept open between rounds for TCP
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	hc := &http.Client{Timeout: time.Duration(max(k.cfg.Timeout, 1)) * time.Second}
	for {
		var b []byte
		select {
		case <-k.ctx.Done():
			return
		case b = <-k.q:
		}
		var err error
		switch {
		case k.cfg.Type == api.MetricInfluxDB && k.cfg.Protocol != "udp":
			err = k.postInflux(hc, b)
		case k.cfg.Protocol == "udp":
			err = k.sendUDP(b)
		default:
			conn, err = k.sendTCP(conn, b)
		}
		k.setErr(err)
		if err == nil {
			k.sent.Add(uint64(bytes.Count(b, []byte{'\n'})))
		}
	}
}

func (k *sink) addr() string {
	return net.JoinHostPort(k.cfg.Server, strconv.Itoa(k.cfg.Port))
}

func (k *sink) postInflux(hc *http.Client, b []byte) error {
	scheme := "http"
	if k.cfg.Protocol == "https" {
		scheme = "https"
	}
	q := url.Values{"precision": {"s"}}
	path := "/api/v2/write"
	q.Set("org", k.cfg.Organization)
	q.Set("bucket", k.cfg.Bucket)
	u := url.URL{Scheme: scheme, Host: k.addr(), Path: strings.TrimSuffix(k.cfg.PathPrefix, "/") + path, RawQuery: q.Encode()}
	ctx, cancel := context.WithTimeout(k.ctx, hc.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if k.cfg.Token != "" {
		req.Header.Set("Authorization", "Token "+k.cfg.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("influxdb %s: %w", k.addr(), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("influxdb %s: HTTP %d", k.addr(), resp.StatusCode)
	}
	return nil
}

// sendUDP splits the lines into datagrams of at most MTU bytes.
func (k *sink) sendUDP(b []byte) error {
	c, err := net.DialTimeout("udp", k.addr(), 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	mtu := k.cfg.MTU
	if mtu <= 0 {
		mtu = 1500
	}
	mtu -= 48 // IP + UDP headers, IPv6 worst case
	for len(b) > 0 {
		n := len(b)
		if n > mtu {
			n = bytes.LastIndexByte(b[:mtu], '\n') + 1
			if n <= 0 { // one line longer than a datagram: send it alone
				n = bytes.IndexByte(b, '\n') + 1
				if n <= 0 {
					n = len(b)
				}
			}
		}
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (k *sink) sendTCP(c net.Conn, b []byte) (net.Conn, error) {
	timeout := time.Duration(max(k.cfg.Timeout, 1)) * time.Second
	for try := 0; try < 2; try++ {
		if c == nil {
			var err error
			if c, err = net.DialTimeout("tcp", k.addr(), timeout); err != nil {
				return nil, err
			}
		}
		c.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.Write(b); err == nil {
			return c, nil
		} else if try == 1 {
			c.Close()
			return nil, err
		}
		c.Close() // the server may have closed an idle connection: redial once
		c = nil
	}
	return c, nil
}

// export renders one round per server format and offers it to every sink.
func (s *Service) export(now time.Time, node api.NodeMetrics, guests []*guestState, pools []StorageUsage) {
	sinks := s.sinks.sync()
	if len(sinks) == 0 {
		return
	}
	var influx, graphite []byte
	for _, k := range sinks {
		if k.cfg.Type == api.MetricInfluxDB {
			if influx == nil {
				influx = renderInflux(now, node, guests, pools)
			}
			k.offer(influx)
		} else {
			if graphite == nil {
				graphite = renderGraphite(now, k.cfg.PathPrefix, node, guests, pools)
			}
			k.offer(graphite)
		}
	}
}

type field struct {
	name string
	v    float64
}

// fields pairs series names with their values.
func fields(names []string, vals []float64) []field {
	out := make([]field, len(names))
	for i, n := range names {
		out[i] = field{n, vals[i]}
	}
	return out
}

func nodeFields(m api.NodeMetrics) []field   { return fields(NodeSeries, nodeValues(m)) }
func guestFields(m api.GuestMetrics) []field { return fields(GuestSeries, guestValues(m)) }

var tagEscaper = strings.NewReplacer(",", `\,`, " ", `\ `, "=", `\=`, "\n", "")

func influxLine(b *bytes.Buffer, measurement string, tags [][2]string, fields []field, ts int64) {
	start := b.Len()
	b.WriteString(measurement)
	for _, t := range tags {
		if t[1] == "" {
			continue
		}
		b.WriteByte(',')
		b.WriteString(t[0])
		b.WriteByte('=')
		b.WriteString(tagEscaper.Replace(t[1]))
	}
	sep := byte(' ')
	n := 0
	for _, f := range fields {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			continue
		}
		b.WriteByte(sep)
		sep = ','
		b.WriteString(f.name)
		b.WriteByte('=')
		b.WriteString(strconv.FormatFloat(f.v, 'g', -1, 64))
		n++
	}
	if n == 0 {
		b.Truncate(start)
		return
	}
	fmt.Fprintf(b, " %d\n", ts)
}

// renderInflux is InfluxDB line protocol, second precision.
func renderInflux(now time.Time, node api.NodeMetrics, guests []*guestState, pools []StorageUsage) []byte {
	var b bytes.Buffer
	ts := now.Unix()
	influxLine(&b, "corral_node", [][2]string{{"node", node.Node}}, nodeFields(node), ts)
	for _, g := range guests {
		influxLine(&b, "corral_guest", [][2]string{{"node", node.Node}, {"vmid", strconv.Itoa(g.VMID)}, {"name", g.Name}, {"type", g.Type}}, guestFields(g.GuestMetrics), ts)
	}
	for _, p := range pools {
		influxLine(&b, "corral_storage", [][2]string{{"node", node.Node}, {"storage", p.Storage}}, []field{{"used", float64(p.Used)}, {"total", float64(p.Total)}}, ts)
	}
	return b.Bytes()
}

// renderGraphite is the plaintext protocol: "<path> <value> <time>".
func renderGraphite(now time.Time, prefix string, node api.NodeMetrics, guests []*guestState, pools []StorageUsage) []byte {
	if prefix == "" {
		prefix = "corral"
	}
	var b bytes.Buffer
	ts := now.Unix()
	put := func(path string, fields []field) {
		for _, f := range fields {
			if !math.IsNaN(f.v) && !math.IsInf(f.v, 0) {
				fmt.Fprintf(&b, "%s.%s %s %d\n", path, f.name, strconv.FormatFloat(f.v, 'g', -1, 64), ts)
			}
		}
	}
	put(prefix+".nodes."+node.Node, nodeFields(node))
	for _, g := range guests {
		put(prefix+".guests."+strconv.Itoa(g.VMID), guestFields(g.GuestMetrics))
	}
	for _, p := range pools {
		put(prefix+".storage."+node.Node+"."+p.Storage, []field{{"used", float64(p.Used)}, {"total", float64(p.Total)}})
	}
	return b.Bytes()
}
