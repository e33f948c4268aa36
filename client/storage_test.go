package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
)

// storageRequest is what the test server saw of one request.
type storageRequest struct {
	method, path, rawPath, query, body string
	ifMatch, contentType               string
}

func TestStorageRequests(t *testing.T) {
	var mu sync.Mutex
	var last storageRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = storageRequest{r.Method, r.URL.Path, r.URL.EscapedPath(), r.URL.RawQuery, string(b), r.Header.Get("If-Match"), r.Header.Get("Content-Type")}
		mu.Unlock()
		switch {
		case r.Method == http.MethodDelete || strings.HasSuffix(r.URL.Path, "/snapshots") || strings.HasSuffix(r.URL.Path, "/rollback"):
			w.WriteHeader(http.StatusNoContent)
		case strings.HasSuffix(r.URL.Path, "/download-url"):
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"task":"UPID:n1:1:2:download:local:root@pam:"}`)
		case r.Method == http.MethodGet && (strings.HasSuffix(r.URL.Path, "/storage") || strings.HasSuffix(r.URL.Path, "/content")):
			io.WriteString(w, `[]`)
		default:
			io.WriteString(w, `{}`)
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	ctx := context.Background()
	yes := true
	nodes := []string{}

	tests := []struct {
		name                   string
		call                   func() error
		method, rawPath, query string
		body                   string
		ifMatch                string
	}{
		{"list definitions", func() error { _, err := c.Storages(ctx); return err },
			"GET", "/api/v1/storage", "", "", ""},
		{"get definition", func() error { _, err := c.Storage(ctx, "local"); return err },
			"GET", "/api/v1/storage/local", "", "", ""},
		{"create drops the digest", func() error {
			_, err := c.CreateStorage(ctx, api.Storage{Storage: "iso", Type: "dir", Content: []string{"iso"}, Path: "/srv/iso", Digest: "x"})
			return err
		}, "POST", "/api/v1/storage", "", `{"storage":"iso","type":"dir","content":["iso"],"path":"/srv/iso"}`, ""},
		{"update sends only set fields and If-Match", func() error {
			_, err := c.UpdateStorage(ctx, "iso", api.StorageUpdate{Disable: &yes, Nodes: &nodes}, WithIfMatch("d1"))
			return err
		}, "PUT", "/api/v1/storage/iso", "", `{"nodes":[],"disable":true}`, "d1"},
		{"delete", func() error { return c.DeleteStorage(ctx, "iso", false) },
			"DELETE", "/api/v1/storage/iso", "", "", ""},
		{"delete with force", func() error { return c.DeleteStorage(ctx, "iso", true, WithIfMatch("d2")) },
			"DELETE", "/api/v1/storage/iso", "force=true", "", "d2"},
		{"node storage", func() error { _, err := c.NodeStorage(ctx, "n1"); return err },
			"GET", "/api/v1/nodes/n1/storage", "", "", ""},
		{"pool status", func() error { _, err := c.StorageStatus(ctx, "n1", "local"); return err },
			"GET", "/api/v1/nodes/n1/storage/local/status", "", "", ""},
		{"content unfiltered", func() error { _, err := c.Content(ctx, "n1", "local", "", 0); return err },
			"GET", "/api/v1/nodes/n1/storage/local/content", "", "", ""},
		{"content filtered", func() error { _, err := c.Content(ctx, "n1", "local", "images", 100); return err },
			"GET", "/api/v1/nodes/n1/storage/local/content", "content=images&vmid=100", "", ""},
		{"alloc", func() error {
			_, err := c.AllocVolume(ctx, "n1", "local", api.VolumeCreate{VMID: 100, Size: "10G"})
			return err
		}, "POST", "/api/v1/nodes/n1/storage/local/content", "", `{"vmid":100,"size":"10G"}`, ""},
		{"volume by name", func() error { _, err := c.Volume(ctx, "n1", "local", "100/vm-100-disk-0.qcow2"); return err },
			"GET", "/api/v1/nodes/n1/storage/local/content/100%2Fvm-100-disk-0.qcow2", "", "", ""},
		{"volume by ID", func() error { _, err := c.Volume(ctx, "n1", "local", "local:iso/x.iso"); return err },
			"GET", "/api/v1/nodes/n1/storage/local/content/local:iso%2Fx.iso", "", "", ""},
		{"free", func() error { return c.FreeVolume(ctx, "n1", "local", "100/vm-100-disk-0.qcow2", false) },
			"DELETE", "/api/v1/nodes/n1/storage/local/content/100%2Fvm-100-disk-0.qcow2", "", "", ""},
		{"free with force", func() error { return c.FreeVolume(ctx, "n1", "local", "100/vm-100-disk-0.qcow2", true) },
			"DELETE", "/api/v1/nodes/n1/storage/local/content/100%2Fvm-100-disk-0.qcow2", "force=true", "", ""},
		{"resize", func() error { _, err := c.ResizeVolume(ctx, "n1", "local", "100/a.raw", "+1G"); return err },
			"PUT", "/api/v1/nodes/n1/storage/local/content/100%2Fa.raw/size", "", `{"size":"+1G"}`, ""},
		{"clone", func() error {
			_, err := c.CloneVolume(ctx, "n1", "local", api.VolumeClone{Source: "local:300/base-300-disk-0.qcow2", VMID: 301, Linked: true})
			return err
		}, "POST", "/api/v1/nodes/n1/storage/local/clone", "", `{"source":"local:300/base-300-disk-0.qcow2","vmid":301,"linked":true}`, ""},
		{"snapshot", func() error { return c.SnapshotVolume(ctx, "n1", "local", "100/a.qcow2", "before") },
			"POST", "/api/v1/nodes/n1/storage/local/content/100%2Fa.qcow2/snapshots", "", `{"name":"before"}`, ""},
		{"rollback", func() error { return c.RollbackVolume(ctx, "n1", "local", "100/a.qcow2", "before") },
			"POST", "/api/v1/nodes/n1/storage/local/content/100%2Fa.qcow2/snapshots/before/rollback", "", "", ""},
		{"delete snapshot", func() error { return c.DeleteVolumeSnapshot(ctx, "n1", "local", "100/a.qcow2", "before") },
			"DELETE", "/api/v1/nodes/n1/storage/local/content/100%2Fa.qcow2/snapshots/before", "", "", ""},
		{"download-url", func() error {
			upid, err := c.DownloadURL(ctx, "n1", "local", api.DownloadURL{URL: "https://example.org/d.iso", Content: "iso", Filename: "d.iso"})
			if err == nil && upid != "UPID:n1:1:2:download:local:root@pam:" {
				t.Errorf("upid = %q", upid)
			}
			return err
		}, "POST", "/api/v1/nodes/n1/storage/local/download-url", "", `{"url":"https://example.org/d.iso","content":"iso","filename":"d.iso"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			got := last
			mu.Unlock()
			if got.method != tt.method || got.rawPath != tt.rawPath || got.query != tt.query || got.body != tt.body || got.ifMatch != tt.ifMatch {
				t.Errorf("got %s %s ?%s body=%s If-Match=%q\nwant %s %s ?%s body=%s If-Match=%q",
					got.method, got.rawPath, got.query, got.body, got.ifMatch, tt.method, tt.rawPath, tt.query, tt.body, tt.ifMatch)
			}
			if tt.body != "" && got.contentType != "application/json" {
				t.Errorf("Content-Type = %q", got.contentType)
			}
		})
	}
}

func TestStorageErrorsNameTheVolume(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"title":"Conflict","status":409,"detail":"volume belongs to guest 100"}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	err := c.FreeVolume(context.Background(), "n1", "local", "100/vm-100-disk-0.qcow2", false)
	if StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "local:100/vm-100-disk-0.qcow2") {
		t.Errorf("err = %v", err)
	}
	_, err = c.Volume(context.Background(), "n1", "local", "local:iso/a.iso")
	if err == nil || !strings.Contains(err.Error(), "volume local:iso/a.iso:") {
		t.Errorf("err = %v", err)
	}
}

// TestUploadStreams checks that Upload sends the raw body as it reads it:
// the second chunk is only produced after the server has received the
// first, which deadlocks (and times out) if the client buffered the body.
// The server reads slower than the client's Timeout, which must not apply.
func TestUploadStreams(t *testing.T) {
	const chunk = 256 << 10
	type seen struct {
		query, contentType, expect string
		contentLength              int64
		sum                        string
		n                          int64
	}
	var got atomic.Pointer[seen]
	firstChunk := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := &seen{query: r.URL.RawQuery, contentType: r.Header.Get("Content-Type"), expect: r.Header.Get("Expect"), contentLength: r.ContentLength}
		h := sha256.New()
		if _, err := io.CopyN(h, r.Body, chunk); err != nil {
			t.Errorf("first chunk: %v", err)
		}
		close(firstChunk)
		time.Sleep(300 * time.Millisecond) // longer than the client's timeout
		n, _ := io.Copy(h, r.Body)
		s.n, s.sum = chunk+n, hex.EncodeToString(h.Sum(nil))
		got.Store(s)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"volid":"local:iso/big.iso","content":"iso","size":524288}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{Timeout: 100 * time.Millisecond})

	data := bytes.Repeat([]byte("0123456789abcdef"), 2*chunk/16)
	want := sha256.Sum256(data)
	pr, pw := io.Pipe()
	go func() {
		pw.Write(data[:chunk])
		select {
		case <-firstChunk:
		case <-time.After(10 * time.Second):
			pw.CloseWithError(errors.New("server never received the first chunk: the body was not streamed"))
			return
		}
		pw.Write(data[chunk:])
		pw.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := c.Upload(ctx, "n1", "local", "iso", "big image.iso", pr, int64(len(data)), hex.EncodeToString(want[:]), true)
	if err != nil {
		t.Fatal(err)
	}
	if v.VolID != "local:iso/big.iso" || v.Size != 2*chunk {
		t.Errorf("volume = %+v", v)
	}
	s := got.Load()
	if s.n != int64(len(data)) || s.sum != hex.EncodeToString(want[:]) {
		t.Errorf("server received %d bytes, sha256 %s", s.n, s.sum)
	}
	wantQuery := "content=iso&filename=big+image.iso&overwrite=true&sha256=" + hex.EncodeToString(want[:])
	if s.query != wantQuery || s.contentType != "application/octet-stream" || s.contentLength != int64(len(data)) || s.expect != "100-continue" {
		t.Errorf("query=%q Content-Type=%q Content-Length=%d Expect=%q", s.query, s.contentType, s.contentLength, s.expect)
	}
}

func TestUploadUnknownSizeIsChunked(t *testing.T) {
	var te atomic.Value
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		te.Store(strings.Join(r.TransferEncoding, ","))
		b, _ := io.ReadAll(r.Body)
		body.Store(string(b))
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"volid":"local:snippets/a.yaml"}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	if _, err := c.Upload(context.Background(), "n1", "local", "snippets", "a.yaml", strings.NewReader("key: value\n"), -1, "", false); err != nil {
		t.Fatal(err)
	}
	if te.Load() != "chunked" || body.Load() != "key: value\n" {
		t.Errorf("Transfer-Encoding=%q body=%q", te.Load(), body.Load())
	}
}

// countingReader records how much of the body the transport read.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestUploadRefusedBeforeBody: with Expect: 100-continue a server that
// refuses the upload (here: the file exists) answers before the body is
// sent, and the problem reaches the caller intact.
func TestUploadRefusedBeforeBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"title":"Conflict","status":409,"detail":"local:iso/a.iso already exists (set overwrite to replace it)"}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	const size = 64 << 20
	r := &countingReader{r: io.LimitReader(zeroReader{}, size)}
	_, err := c.Upload(context.Background(), "n1", "local", "iso", "a.iso", r, size, "", false)
	if StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "upload a.iso to storage local") {
		t.Fatalf("err = %v", err)
	}
	if n := r.n.Load(); n >= size {
		t.Errorf("the whole %d byte body was read although the server refused it first", n)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestUploadHonoursContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	pr, pw := io.Pipe() // never yields EOF
	defer pw.Close()
	go func() {
		for {
			if _, err := pw.Write(make([]byte, 1024)); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, err := c.Upload(ctx, "n1", "local", "iso", "a.iso", pr, -1, "", false)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context deadline", err)
	}
}

func TestSplitVolID(t *testing.T) {
	tests := []struct {
		in, storage, name string
		ok                bool
	}{
		{"local:100/vm-100-disk-0.qcow2", "local", "100/vm-100-disk-0.qcow2", true},
		{"local:iso/a:b.iso", "local", "iso/a:b.iso", true},
		{"100/vm-100-disk-0.qcow2", "", "", false},
		{":iso/a.iso", "", "", false},
		{"local:", "", "", false},
	}
	for _, tt := range tests {
		s, n, ok := SplitVolID(tt.in)
		if s != tt.storage || n != tt.name || ok != tt.ok {
			t.Errorf("SplitVolID(%q) = %q, %q, %v", tt.in, s, n, ok)
		}
	}
}
