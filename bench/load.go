package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-project/corral/api"
)

const resourcesPath = "/api/v1/cluster/resources"

// sample is the outcome of one load run: every call's latency, sorted,
// and the wall time the run took.
type sample struct {
	lat     []time.Duration
	elapsed time.Duration
}

// rate is completed calls per second of wall time.
func (s sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(len(s.lat)) / s.elapsed.Seconds()
}

// pct is the nearest-rank percentile p (0..100) of the latencies.
func (s sample) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(s.lat)))) - 1
	return s.lat[max(0, min(i, len(s.lat)-1))]
}

// drive runs `workers` goroutines that call op back to back until d has
// passed or limit calls have started, and records each call's latency.
// The first error stops every worker and is returned: a benchmark that
// saw failures has nothing honest to report.
func drive(ctx context.Context, workers int, d time.Duration, limit int, op func(ctx context.Context, worker, seq int) error) (sample, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var started atomic.Int64
	perWorker := make([][]time.Duration, workers)
	begin := time.Now()
	deadline := begin.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for seq := 0; ctx.Err() == nil && time.Now().Before(deadline) && started.Add(1) <= int64(limit); seq++ {
				t := time.Now()
				if err := op(ctx, w, seq); err != nil {
					cancel(err)
					return
				}
				perWorker[w] = append(perWorker[w], time.Since(t))
			}
		})
	}
	wg.Wait()
	s := sample{elapsed: time.Since(begin)}
	if err := context.Cause(ctx); err != nil {
		return s, err
	}
	s.lat = slices.Concat(perWorker...)
	slices.Sort(s.lat)
	return s, nil
}

// newTransport is the load generator's client side: keep-alive, TLS
// without verification (loopback only), HTTP/2 unless http1 is set, in
// which case every worker gets its own HTTP/1.1 connection.
func newTransport(http1 bool, conns int) *http.Transport {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2:   !http1,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		// Ask for gzip ourselves (see get) so the byte count is what
		// crossed the wire and the client doesn't spend CPU inflating.
		DisableCompression: true,
	}
	if http1 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return tr
}

// reply is what one GET returned.
type reply struct {
	proto    string
	header   http.Header
	body     []byte // only when keep was set
	bodySize int64
}

// get fetches url with the given Authorization (may be empty) and reads
// the whole body, as a client must before the response is of any use.
func get(ctx context.Context, hc *http.Client, url, authz string, keep bool) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	r := reply{proto: resp.Proto, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return r, fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, snippet)
	}
	if keep {
		r.body, err = io.ReadAll(resp.Body)
		r.bodySize = int64(len(r.body))
	} else {
		r.bodySize, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return r, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	return r, nil
}

// startAnchor serves body with the given headers at every path over
// HTTPS (HTTP/2 when offered), straight from memory. It is the API with no
// work behind it: the same TLS, framing, bytes and client-side reading,
// none of the routing, authentication, store reads or JSON encoding.
func startAnchor(body []byte, header http.Header) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for _, k := range []string{"Content-Type", "Content-Encoding"} {
			if v := header.Get(k); v != "" {
				w.Header().Set(k, v)
			}
		}
		w.Write(body)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	return srv
}

// readRun is one load run against one server at one concurrency.
type readRun struct {
	server      string
	concurrency int
	s           sample
}

// readResult is the whole read benchmark.
type readResult struct {
	proto     string
	encoding  string
	bodyBytes int64
	resources int
	runs      []readRun // API then anchor, per concurrency level
}

// measureReads loads GET /cluster/resources on the daemon and on the
// anchor, alternately per concurrency level so drift hits both alike.
func (l *lab) measureReads(ctx context.Context, n *node, ticket string) (readResult, error) {
	var r readResult
	tr := newTransport(l.cfg.http1, slices.Max(l.cfg.concurrency))
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	authz := "Bearer " + ticket

	first, err := get(ctx, hc, n.url+resourcesPath, authz, true)
	if err != nil {
		return r, err
	}
	r.proto, r.bodyBytes = first.proto, first.bodySize
	r.encoding = first.header.Get("Content-Encoding")
	byType, err := countResources(first.body, r.encoding)
	if err != nil {
		return r, err
	}
	for _, n := range byType {
		r.resources += n
	}
	// Besides the guests the list holds this node and its storage pools.
	if got := byType[api.GuestVM] + byType[api.GuestContainer]; got != l.cfg.guests {
		return r, fmt.Errorf("GET %s returned %d guests, want %d (all resources by type: %v)", resourcesPath, got, l.cfg.guests, byType)
	}
	logf("resources response: %d resources, %d bytes, %s", r.resources, r.bodyBytes, r.proto)

	anchor := startAnchor(first.body, first.header)
	defer anchor.Close()
	targets := []struct{ name, url, authz string }{
		{"corral API", n.url + resourcesPath, authz},
		{"static anchor", anchor.URL + resourcesPath, ""},
	}
	for _, c := range l.cfg.concurrency {
		for _, t := range targets {
			logf("GET /cluster/resources on %s, %d workers: %s warm-up, then up to %s or %d requests",
				t.name, c, l.cfg.warmup, l.cfg.duration, l.cfg.maxRequests)
			op := func(ctx context.Context, _, _ int) error {
				_, err := get(ctx, hc, t.url, t.authz, false)
				return err
			}
			if _, err := drive(ctx, c, l.cfg.warmup, math.MaxInt, op); err != nil {
				return r, fmt.Errorf("%s warm-up: %w", t.name, err)
			}
			s, err := drive(ctx, c, l.cfg.duration, l.cfg.maxRequests, op)
			if err != nil {
				return r, fmt.Errorf("%s load: %w", t.name, err)
			}
			logf("  %d requests, p50 %s p99 %s, %.1f req/s", len(s.lat), ms(s.pct(50)), ms(s.pct(99)), s.rate())
			r.runs = append(r.runs, readRun{server: t.name, concurrency: c, s: s})
		}
	}
	return r, nil
}

// countResources decodes the response and counts its resources by type,
// to check it holds what we seeded.
func countResources(body []byte, encoding string) (map[string]int, error) {
	var rd io.Reader = bytes.NewReader(body)
	if encoding == "gzip" {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, fmt.Errorf("resources response: %w", err)
		}
		rd = zr
	}
	var res []api.Resource
	if err := json.NewDecoder(rd).Decode(&res); err != nil {
		return nil, fmt.Errorf("decode resources response: %w", err)
	}
	byType := map[string]int{}
	for _, x := range res {
		byType[x.Type]++
	}
	return byType, nil
}

// ms formats a duration in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
