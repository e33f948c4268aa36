package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
)

func newTestClient(t *testing.T, srv *httptest.Server, opts Options) *Client {
	t.Helper()
	opts.Server = srv.URL
	if srv.TLS != nil && opts.CACertPEM == nil {
		opts.CACertPEM = EncodeCertPEM(srv.Certificate())
	}
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestProblemDecoding(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        api.Problem
	}{
		{
			name:        "problem document with field errors",
			status:      422,
			contentType: "application/problem+json",
			body:        `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"field":"userid","message":"must be name@realm"}]}`,
			want: api.Problem{Title: "Unprocessable Entity", Status: 422, Detail: "validation failed",
				Errors: []api.FieldError{{Field: "userid", Message: "must be name@realm"}}},
		},
		{
			name:        "problem without status takes the HTTP status",
			status:      403,
			contentType: "application/problem+json",
			body:        `{"title":"Forbidden","detail":"permission check failed (/access, Sys.Audit)"}`,
			want:        api.Problem{Title: "Forbidden", Status: 403, Detail: "permission check failed (/access, Sys.Audit)"},
		},
		{
			name:        "plain text body becomes the detail",
			status:      502,
			contentType: "text/plain",
			body:        "upstream went away\n",
			want:        api.Problem{Title: "Bad Gateway", Status: 502, Detail: "upstream went away"},
		},
		{
			name:        "HTML error page is not shown",
			status:      500,
			contentType: "text/html",
			body:        "<html><body>oops</body></html>",
			want:        api.Problem{Title: "Internal Server Error", Status: 500},
		},
		{
			name:        "empty body",
			status:      404,
			contentType: "",
			body:        "",
			want:        api.Problem{Title: "Not Found", Status: 404},
		},
		{
			name:        "JSON that is not a problem",
			status:      409,
			contentType: "application/json",
			body:        `{"foo":1}`,
			want:        api.Problem{Title: "Conflict", Status: 409, Detail: `{"foo":1}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := newTestClient(t, srv, Options{})
			var out map[string]any
			resp, err := c.Do(context.Background(), http.MethodGet, "/anything", nil, nil, &out)
			if resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("response = %v, want status %d", resp, tt.status)
			}
			var p *api.Problem
			if !errors.As(err, &p) {
				t.Fatalf("error %v (%T) is not an *api.Problem", err, err)
			}
			if !reflect.DeepEqual(*p, tt.want) {
				t.Errorf("problem = %+v, want %+v", *p, tt.want)
			}
			if StatusOf(err) != tt.status {
				t.Errorf("StatusOf = %d, want %d", StatusOf(err), tt.status)
			}
		})
	}
}

// TestTypedHelperKeepsProblem checks that the context added by typed helpers
// does not hide the Problem from errors.As.
func TestTypedHelperKeepsProblem(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(404)
		io.WriteString(w, `{"title":"Not Found","status":404,"detail":"no such user"}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	_, err := c.User(context.Background(), "ghost@corral")
	if !IsNotFound(err) {
		t.Fatalf("IsNotFound(%v) = false", err)
	}
	if !strings.Contains(err.Error(), "ghost@corral") || !strings.Contains(err.Error(), "no such user") {
		t.Errorf("error %q lacks context or detail", err)
	}
}

func TestAuthHeaders(t *testing.T) {
	type seen struct{ auth, csrf string }
	var got atomic.Pointer[seen]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(&seen{r.Header.Get("Authorization"), r.Header.Get("X-CSRF-Token")})
		if r.URL.Path == "/api/v1/access/ticket" {
			json.NewEncoder(w).Encode(api.Ticket{Ticket: "new-ticket", CSRFToken: "new-csrf", Username: "alice@corral"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	tests := []struct {
		name     string
		opts     Options
		method   string
		wantAuth string
		wantCSRF string
	}{
		{"token", Options{Token: "root@pam!ci=s3cr3t"}, http.MethodPost, "CorralToken root@pam!ci=s3cr3t", ""},
		{"token wins over ticket", Options{Token: "a@b!c=d", Ticket: "T"}, http.MethodGet, "CorralToken a@b!c=d", ""},
		{"ticket on GET has no CSRF", Options{Ticket: "T", CSRF: "C"}, http.MethodGet, "Bearer T", ""},
		{"ticket on PUT carries CSRF", Options{Ticket: "T", CSRF: "C"}, http.MethodPut, "Bearer T", "C"},
		{"anonymous", Options{}, http.MethodGet, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, srv, tt.opts)
			if _, err := c.Do(context.Background(), tt.method, "/x", nil, nil, nil); err != nil {
				t.Fatal(err)
			}
			s := got.Load()
			if s.auth != tt.wantAuth || s.csrf != tt.wantCSRF {
				t.Errorf("Authorization=%q X-CSRF-Token=%q, want %q %q", s.auth, s.csrf, tt.wantAuth, tt.wantCSRF)
			}
		})
	}

	t.Run("login sends no stale credentials and adopts the new ticket", func(t *testing.T) {
		c := newTestClient(t, srv, Options{Ticket: "stale", CSRF: "stale"})
		tk, err := c.Login(context.Background(), "alice@corral", "pw")
		if err != nil {
			t.Fatal(err)
		}
		if s := got.Load(); s.auth != "" || s.csrf != "" {
			t.Errorf("login sent Authorization=%q X-CSRF-Token=%q", s.auth, s.csrf)
		}
		if tk.Ticket != "new-ticket" {
			t.Errorf("ticket = %q", tk.Ticket)
		}
		if _, err := c.Do(context.Background(), http.MethodGet, "/x", nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		if s := got.Load(); s.auth != "Bearer new-ticket" {
			t.Errorf("after login Authorization=%q", s.auth)
		}
	})

	if _, err := New(Options{Server: srv.URL, Token: "no-secret"}); err == nil {
		t.Error("New accepted a token without =secret")
	}
}

func TestPathEscaping(t *testing.T) {
	var rawPath, path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rawPath.Store(r.URL.EscapedPath())
		path.Store(r.URL.Path)
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	ctx := context.Background()
	upid := "UPID:node1:0000ABCD:66000000:sleep::root@pam:"

	tests := []struct {
		name     string
		call     func() error
		wantPath string // as the server decodes it
		wantRaw  string // as sent on the wire
	}{
		{"user", func() error { _, err := c.User(ctx, "alice@corral"); return err },
			"/api/v1/access/users/alice@corral", "/api/v1/access/users/alice@corral"},
		{"token with odd name", func() error { _, err := c.Token(ctx, "bob@pam", "ci/x y"); return err },
			"/api/v1/access/users/bob@pam/tokens/ci/x y", "/api/v1/access/users/bob@pam/tokens/ci%2Fx%20y"},
		{"task", func() error { _, err := c.Task(ctx, upid); return err },
			"/api/v1/tasks/" + upid, "/api/v1/tasks/" + upid},
		{"group with slash", func() error { _, err := c.Group(ctx, "a/b"); return err },
			"/api/v1/access/groups/a/b", "/api/v1/access/groups/a%2Fb"},
		{"token id with bang", func() error { _, err := c.User(ctx, "carol@corral!t"); return err },
			"/api/v1/access/users/carol@corral!t", "/api/v1/access/users/carol@corral%21t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			if got := path.Load().(string); got != tt.wantPath {
				t.Errorf("decoded path = %q, want %q", got, tt.wantPath)
			}
			if got := rawPath.Load().(string); got != tt.wantRaw {
				t.Errorf("escaped path = %q, want %q", got, tt.wantRaw)
			}
		})
	}
}

func TestDoQueryMergeAndIfMatch(t *testing.T) {
	var gotQuery, gotIfMatch, gotBody, gotCT atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery.Store(r.URL.Query().Encode())
		gotIfMatch.Store(r.Header.Get("If-Match"))
		gotCT.Store(r.Header.Get("Content-Type"))
		b, _ := io.ReadAll(r.Body)
		gotBody.Store(string(b))
		w.Header().Set("ETag", `"d1"`)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	var out struct{ X int }
	resp, err := c.Do(context.Background(), http.MethodPut, "api/v1/tasks?limit=5&node=n1",
		map[string][]string{"node": {"n2"}, "type": {"sleep"}}, map[string]int{"seconds": 3}, &out,
		WithIfMatch("abc"))
	if err != nil {
		t.Fatalf("Do: %v (a 204 with a non-nil out must not fail)", err)
	}
	if resp.Header.Get("ETag") != `"d1"` {
		t.Errorf("ETag not exposed: %v", resp.Header)
	}
	if q := gotQuery.Load().(string); q != "limit=5&node=n1&node=n2&type=sleep" {
		t.Errorf("query = %q", q)
	}
	if v := gotIfMatch.Load().(string); v != "abc" {
		t.Errorf("If-Match = %q", v)
	}
	if v := gotBody.Load().(string); v != `{"seconds":3}` {
		t.Errorf("body = %q", v)
	}
	if v := gotCT.Load().(string); v != "application/json" {
		t.Errorf("Content-Type = %q", v)
	}
}

func TestNormalizeServer(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "https://127.0.0.1:8006", want: "https://127.0.0.1:8006"},
		{in: "https://Node1.Example/", want: "https://node1.example:8006"},
		{in: "node1", want: "https://node1:8006"},
		{in: "node1:9000", want: "https://node1:9000"},
		{in: "https://[::1]", want: "https://[::1]:8006"},
		{in: "https://h:8006/api/v1/", want: "https://h:8006"},
		{in: "http://h", want: "http://h:80"},
		{in: "unix:///run/corral/corral.sock", want: "unix:///run/corral/corral.sock"},
		{in: "unix:/run/corral/../corral/corral.sock", want: "unix:///run/corral/corral.sock"},
		{in: "", wantErr: true},
		{in: "ftp://h", wantErr: true},
		{in: "https://h/other", wantErr: true},
		{in: "https://u:p@h", wantErr: true},
		{in: "unix://", wantErr: true},
	}
	for _, tt := range tests {
		got, err := NormalizeServer(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("NormalizeServer(%q) = %q, %v; want %q, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestTrustOnFirstUse(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.VersionInfo{Version: "1.2.3", API: "v1"})
	}))
	defer srv.Close()
	ctx := context.Background()

	// Without a trust anchor the self-signed test certificate is rejected.
	plain, err := New(Options{Server: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Version(ctx); err == nil {
		t.Fatal("unverified server accepted with system roots")
	}

	cert, err := FetchServerCA(ctx, srv.URL)
	if err != nil {
		t.Fatalf("FetchServerCA: %v", err)
	}
	if !cert.Equal(srv.Certificate()) {
		t.Fatal("fetched certificate differs from the server's")
	}
	fp := Fingerprint(cert)
	if len(fp) != 32*3-1 || strings.ToUpper(fp) != fp {
		t.Errorf("fingerprint %q is not colon-separated upper-case SHA-256", fp)
	}
	pinned, err := New(Options{Server: srv.URL, CACertPEM: EncodeCertPEM(cert)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := pinned.Version(ctx)
	if err != nil {
		t.Fatalf("Version with pinned CA: %v", err)
	}
	if v.Version != "1.2.3" {
		t.Errorf("version = %+v", v)
	}

	insecure, err := New(Options{Server: srv.URL, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := insecure.Version(ctx); err != nil {
		t.Errorf("insecure client: %v", err)
	}

	if _, err := New(Options{Server: srv.URL, CACertPEM: []byte("not pem")}); err == nil {
		t.Error("New accepted a CA without certificates")
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var gotPath atomic.Value
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath.Store(r.URL.Path)
		json.NewEncoder(w).Encode([]api.Node{{Node: "n1", Online: true}})
	})}
	go srv.Serve(ln)
	defer srv.Close()

	c, err := New(Options{Server: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nodes, err := c.Nodes(context.Background())
	if err != nil {
		t.Fatalf("Nodes over unix socket: %v", err)
	}
	if len(nodes) != 1 || nodes[0].Node != "n1" {
		t.Errorf("nodes = %+v", nodes)
	}
	if p := gotPath.Load(); p != "/api/v1/nodes" {
		t.Errorf("path = %v", p)
	}
}

func TestWaitTask(t *testing.T) {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := api.TaskRunning
		if polls.Add(1) >= 3 {
			status = api.TaskFailed
		}
		json.NewEncoder(w).Encode(api.Task{ID: "UPID:x", Status: status, ExitMsg: "boom"})
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	task, err := c.WaitTask(ctx, "UPID:x")
	if err != nil {
		t.Fatal(err)
	}
	if task.Status != api.TaskFailed || polls.Load() != 3 {
		t.Errorf("task %+v after %d polls", task, polls.Load())
	}

	// A task that never ends is bounded by the context.
	polls.Store(-1000)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := c.WaitTask(ctx2, "UPID:x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitTask past deadline: %v", err)
	}
}

func TestStartSleepTask(t *testing.T) {
	var gotPath, gotBody atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath.Store(r.URL.Path)
		b, _ := io.ReadAll(r.Body)
		gotBody.Store(string(b))
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"task":"UPID:n1:1:2:sleep::root@pam:"}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv, Options{})
	upid, err := c.StartSleepTask(context.Background(), "n1", 7)
	if err != nil {
		t.Fatal(err)
	}
	if upid != "UPID:n1:1:2:sleep::root@pam:" || gotPath.Load() != "/api/v1/nodes/n1/tasks/sleep" || gotBody.Load() != `{"seconds":7}` {
		t.Errorf("upid=%q path=%v body=%v", upid, gotPath.Load(), gotBody.Load())
	}
}
