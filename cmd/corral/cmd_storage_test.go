package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

// storageRequest is what the fake storage API saw of one request.
type storageRequest struct {
	method, rawPath, query, body string
	contentType, ifMatch         string
	contentLength                int64
}

func (r storageRequest) String() string {
	return fmt.Sprintf("%s %s?%s body=%s", r.method, r.rawPath, r.query, r.body)
}

// storageFake imitates the storage endpoints (and /nodes and task logs) on
// https://127.0.0.1, recording every request. Like fakeServer it checks
// the CLI's side of the contract only.
type storageFake struct {
	*httptest.Server
	mu         sync.Mutex
	reqs       []storageRequest
	nodes      []api.Node
	taskStatus string // final status of followed tasks
}

func newStorageFake(t *testing.T) *storageFake {
	f := &storageFake{nodes: []api.Node{{Node: "n1", Online: true}}, taskStatus: api.TaskOK}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	local := api.Storage{Storage: "local", Type: "dir", Content: []string{"images", "iso"}, Path: "/var/lib/corral/storage", Digest: "d0"}
	vol := api.Volume{VolID: "local:100/vm-100-disk-0.qcow2", Content: "images", Format: "qcow2", Size: 10 << 30, Used: 196 << 10, VMID: 100,
		CTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	mux.HandleFunc("GET /api/v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		reply(w, 200, f.nodes)
	})
	mux.HandleFunc("GET /api/v1/storage", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, []api.Storage{local, {Storage: "san", Type: "iscsi", Content: []string{"images"}, Portal: "10.0.0.1", Target: "iqn.2025-01.org.example:t1", Shared: true, Nodes: []string{"n1"}, Disable: true}})
	})
	mux.HandleFunc("GET /api/v1/storage/{storage}", func(w http.ResponseWriter, r *http.Request) { reply(w, 200, local) })
	mux.HandleFunc("POST /api/v1/storage", func(w http.ResponseWriter, r *http.Request) {
		var s api.Storage
		json.NewDecoder(r.Body).Decode(&s)
		reply(w, 201, s)
	})
	mux.HandleFunc("PUT /api/v1/storage/{storage}", func(w http.ResponseWriter, r *http.Request) { reply(w, 200, local) })
	mux.HandleFunc("DELETE /api/v1/storage/{storage}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	status := func(node, id string) api.StorageStatus {
		if id == "gone" {
			return api.StorageStatus{Storage: "gone", Type: "dir", Node: node, Content: []string{"iso"}, Enabled: true,
				Reason: "storage gone is not usable on node n1: /mnt/x does not exist"}
		}
		return api.StorageStatus{Storage: id, Type: "dir", Node: node, Content: []string{"images", "iso"}, Enabled: true, Active: true,
			Total: 100 << 30, Used: 25 << 30, Avail: 75 << 30}
	}
	mux.HandleFunc("GET /api/v1/nodes/{node}/storage", func(w http.ResponseWriter, r *http.Request) {
		n := r.PathValue("node")
		reply(w, 200, []api.StorageStatus{status(n, "local"), status(n, "gone")})
	})
	mux.HandleFunc("GET /api/v1/nodes/{node}/storage/{storage}/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, status(r.PathValue("node"), r.PathValue("storage")))
	})
	mux.HandleFunc("GET /api/v1/nodes/{node}/storage/{storage}/content", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, []api.Volume{vol, {VolID: "local:iso/debian.iso", Content: "iso", Format: "iso", Size: 600 << 20}})
	})
	mux.HandleFunc("POST /api/v1/nodes/{node}/storage/{storage}/content", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 201, vol)
	})
	mux.HandleFunc("DELETE /api/v1/nodes/{node}/storage/{storage}/content/{volume}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("volume") != "100/vm-100-disk-0.qcow2" {
			problem(w, 404, "no volume "+r.PathValue("volume"))
			return
		}
		w.WriteHeader(204)
	})
	mux.HandleFunc("PUT /api/v1/nodes/{node}/storage/{storage}/content/{volume}/size", func(w http.ResponseWriter, r *http.Request) {
		v := vol
		v.Size = 15 << 30
		reply(w, 200, v)
	})
	mux.HandleFunc("POST /api/v1/nodes/{node}/storage/{storage}/clone", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 201, api.Volume{VolID: "local:301/vm-301-disk-0.qcow2", Content: "images", Format: "qcow2", Size: 1 << 30, VMID: 301, Parent: "local:300/base-300-disk-0.qcow2"})
	})
	mux.HandleFunc("POST /api/v1/nodes/{node}/storage/{storage}/upload", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		reply(w, 201, api.Volume{VolID: r.PathValue("storage") + ":" + q.Get("content") + "/" + q.Get("filename"), Content: q.Get("content"), Size: uint64(r.ContentLength)})
	})
	mux.HandleFunc("POST /api/v1/nodes/{node}/storage/{storage}/download-url", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 202, api.TaskRef{Task: "UPID:" + r.PathValue("node") + ":1:2:download:" + r.PathValue("storage") + ":root@pam:"})
	})
	mux.HandleFunc("GET /api/v1/tasks/{upid}/log", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		st := f.taskStatus
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: line\ndata: {\"n\":1,\"t\":\"downloading\"}\n\n")
		msg := ""
		if st != api.TaskOK {
			msg = "download: server answered 404 Not Found"
		}
		data, _ := json.Marshal(api.Task{ID: r.PathValue("upid"), Status: st, ExitMsg: msg})
		fmt.Fprintf(w, "event: end\ndata: %s\n\n", data)
	})
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer T1" {
			problem(w, http.StatusUnauthorized, "authentication required")
			return
		}
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		f.mu.Lock()
		f.reqs = append(f.reqs, storageRequest{method: r.Method, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery, body: string(b),
			contentType: r.Header.Get("Content-Type"), ifMatch: r.Header.Get("If-Match"), contentLength: r.ContentLength})
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	f.TLS = &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}}
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

// requests returns and forgets what the server saw.
func (f *storageFake) requests() []storageRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

func (f *storageFake) setNodes(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes = nil
	for _, n := range names {
		f.nodes = append(f.nodes, api.Node{Node: n, Online: true})
	}
}

// loggedIn returns a CLI environment with a session for f.
func (f *storageFake) loggedIn(t *testing.T) *cliEnv {
	e := newCLIEnv(t)
	server, err := client.NormalizeServer(f.URL)
	if err != nil {
		t.Fatal(err)
	}
	e.saveSession(&savedSession{Server: server, Ticket: "T1", Username: "root@pam", Expires: time.Now().Add(time.Hour),
		CA: string(client.EncodeCertPEM(f.Certificate()))})
	return e
}

// TestStorageCommands checks the request each command sends and what it
// prints. Without --node, the node comes from GET /nodes first.
func TestStorageCommands(t *testing.T) {
	srv := newStorageFake(t)
	e := srv.loggedIn(t)
	const volPath = "/api/v1/nodes/n1/storage/local/content/100%2Fvm-100-disk-0.qcow2"
	tests := []struct {
		name     string
		args     []string
		want     storageRequest // method, rawPath, query, body (exact), ifMatch
		nodeLook bool           // GET /nodes precedes the request
		out      []string       // substrings of stdout
	}{
		{"list", []string{"storage", "list"},
			storageRequest{method: "GET", rawPath: "/api/v1/storage"}, false,
			[]string{"STORAGE  TYPE   CONTENT     NODES  SHARED  ENABLED  LOCATION", "local    dir    images,iso  all    no      yes      /var/lib/corral/storage",
				"san      iscsi  images      n1     yes     no       10.0.0.1 iqn.2025-01.org.example:t1"}},
		{"show", []string{"storage", "show", "local"},
			storageRequest{method: "GET", rawPath: "/api/v1/storage/local"}, false,
			[]string{"path     /var/lib/corral/storage", "digest   d0"}},
		{"add dir", []string{"storage", "add", "iso", "--type", "dir", "--content", "iso,vztmpl", "--path", "/srv/iso", "--nodes", "n1", "--nodes", "n2", "--shared", "--comment", "ISO images"},
			storageRequest{method: "POST", rawPath: "/api/v1/storage", body: `{"storage":"iso","type":"dir","content":["iso","vztmpl"],"nodes":["n1","n2"],"shared":true,"path":"/srv/iso","comment":"ISO images"}`}, false,
			[]string{"Storage iso created."}},
		{"add iscsi disabled", []string{"storage", "add", "san", "--type", "iscsi", "--content", "images", "--portal", "10.0.0.1:3260", "--target", "iqn.2025-01.org.example:t1", "--disable"},
			storageRequest{method: "POST", rawPath: "/api/v1/storage", body: `{"storage":"san","type":"iscsi","content":["images"],"disable":true,"portal":"10.0.0.1:3260","target":"iqn.2025-01.org.example:t1"}`}, false,
			[]string{"Storage san created."}},
		{"set enables and clears nodes", []string{"storage", "set", "iso", "--disable=false", "--nodes", "", "--digest", "d7"},
			storageRequest{method: "PUT", rawPath: "/api/v1/storage/iso", body: `{"nodes":[],"disable":false}`, ifMatch: "d7"}, false,
			[]string{"Storage iso updated."}},
		{"set content, shared, empty comment", []string{"storage", "set", "iso", "--content", "iso", "--shared=false", "--comment", ""},
			storageRequest{method: "PUT", rawPath: "/api/v1/storage/iso", body: `{"content":["iso"],"shared":false,"comment":""}`}, false,
			[]string{"Storage iso updated."}},
		{"remove", []string{"storage", "remove", "iso"},
			storageRequest{method: "DELETE", rawPath: "/api/v1/storage/iso"}, false, []string{"Storage iso removed."}},
		{"remove with force", []string{"storage", "remove", "iso", "--force"},
			storageRequest{method: "DELETE", rawPath: "/api/v1/storage/iso", query: "force=true"}, false, []string{"Storage iso removed."}},
		{"status of all pools", []string{"storage", "status"},
			storageRequest{method: "GET", rawPath: "/api/v1/nodes/n1/storage"}, true,
			[]string{"STORAGE  TYPE  ACTIVE  USED                        AVAIL     CONTENT     REASON\n",
				"local    dir   yes     25.0 GiB / 100.0 GiB (25%)  75.0 GiB  images,iso  -\n",
				"gone     dir   no      -                           -         iso         storage gone is not usable on node n1: /mnt/x does not exist\n"}},
		{"status of one pool on a given node", []string{"storage", "status", "local", "--node", "n2"},
			storageRequest{method: "GET", rawPath: "/api/v1/nodes/n2/storage/local/status"}, false,
			[]string{"local    dir   yes     25.0 GiB / 100.0 GiB (25%)"}},
		{"content filtered", []string{"storage", "content", "local", "--content", "images", "--vmid", "100"},
			storageRequest{method: "GET", rawPath: "/api/v1/nodes/n1/storage/local/content", query: "content=images&vmid=100"}, true,
			[]string{"VOLID", "local:100/vm-100-disk-0.qcow2  images   qcow2   10.0 GiB   196.0 KiB  100   -       2025-01-02T03:04:05Z\n",
				"local:iso/debian.iso           iso      iso     600.0 MiB  -          -     -       -\n"}},
		{"alloc", []string{"storage", "alloc", "local", "--vmid", "100", "--size", "10g", "--format", "raw", "--name", "vm-100-disk-7", "--content", "images"},
			storageRequest{method: "POST", rawPath: "/api/v1/nodes/n1/storage/local/content", body: `{"vmid":100,"name":"vm-100-disk-7","size":"10G","format":"raw","content":"images"}`}, true,
			[]string{"volid    local:100/vm-100-disk-0.qcow2", "size     10.0 GiB"}},
		{"free escapes the volume as one segment", []string{"storage", "free", "local:100/vm-100-disk-0.qcow2"},
			storageRequest{method: "DELETE", rawPath: volPath}, true, []string{"Volume local:100/vm-100-disk-0.qcow2 freed."}},
		{"free with force on a node", []string{"storage", "free", "local:100/vm-100-disk-0.qcow2", "--force", "--node", "n1"},
			storageRequest{method: "DELETE", rawPath: volPath, query: "force=true"}, false, []string{"freed."}},
		{"resize by a delta", []string{"storage", "resize", "local:100/vm-100-disk-0.qcow2", "+5g"},
			storageRequest{method: "PUT", rawPath: volPath + "/size", body: `{"size":"+5G"}`}, true, []string{"size     15.0 GiB"}},
		{"linked clone", []string{"storage", "clone", "local:300/base-300-disk-0.qcow2", "--vmid", "301", "--linked"},
			storageRequest{method: "POST", rawPath: "/api/v1/nodes/n1/storage/local/clone", body: `{"source":"local:300/base-300-disk-0.qcow2","vmid":301,"linked":true}`}, true,
			[]string{"parent   local:300/base-300-disk-0.qcow2"}},
		{"download prints the task ID", []string{"storage", "download", "local", "https://example.org/d.iso", "--content", "iso", "--filename", "d.iso", "--sha256", strings.Repeat("ab", 32), "--overwrite"},
			storageRequest{method: "POST", rawPath: "/api/v1/nodes/n1/storage/local/download-url", body: `{"url":"https://example.org/d.iso","content":"iso","filename":"d.iso","sha256":"` + strings.Repeat("ab", 32) + `","overwrite":true}`}, true,
			[]string{"UPID:n1:1:2:download:local:root@pam:\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.requests()
			out, stderr, code := e.run("", tt.args...)
			if code != 0 {
				t.Fatalf("code=%d stderr=%q", code, stderr)
			}
			reqs := srv.requests()
			if tt.nodeLook {
				if len(reqs) == 0 || reqs[0].method != "GET" || reqs[0].rawPath != "/api/v1/nodes" {
					t.Fatalf("requests %v: want GET /api/v1/nodes first", reqs)
				}
				reqs = reqs[1:]
			}
			if len(reqs) != 1 {
				t.Fatalf("requests %v: want exactly one", reqs)
			}
			got := reqs[0]
			if got.method != tt.want.method || got.rawPath != tt.want.rawPath || got.query != tt.want.query || got.body != tt.want.body || got.ifMatch != tt.want.ifMatch {
				t.Errorf("sent %v If-Match=%q\nwant %v If-Match=%q", got, got.ifMatch, tt.want, tt.want.ifMatch)
			}
			for _, s := range tt.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestStorageJSONOutput(t *testing.T) {
	srv := newStorageFake(t)
	e := srv.loggedIn(t)
	out, _, code := e.run("", "storage", "status", "-o", "json")
	var st []api.StorageStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 2 || st[0].Total != 100<<30 || st[1].Reason == "" {
		t.Errorf("status json: code=%d %s", code, out)
	}
	out, _, code = e.run("", "storage", "status", "local", "-o", "json")
	var one api.StorageStatus
	if code != 0 || json.Unmarshal([]byte(out), &one) != nil || one.Storage != "local" {
		t.Errorf("status of one pool json: code=%d %s", code, out)
	}
	out, _, code = e.run("", "storage", "content", "local", "-o", "yaml")
	if code != 0 || !strings.HasPrefix(out, "- volid: local:100/vm-100-disk-0.qcow2\n") {
		t.Errorf("content yaml: code=%d %q", code, out)
	}
	out, _, code = e.run("", "storage", "download", "local", "https://example.org/d.iso", "--content", "iso", "--filename", "d.iso", "-o", "json")
	var ref api.TaskRef
	if code != 0 || json.Unmarshal([]byte(out), &ref) != nil || ref.Task == "" {
		t.Errorf("download json: code=%d %s", code, out)
	}
}

func TestStorageNodeResolution(t *testing.T) {
	srv := newStorageFake(t)
	e := srv.loggedIn(t)
	tests := []struct {
		nodes   []string
		args    []string
		code    int
		wantErr []string
		path    string // request after the node lookup
	}{
		{[]string{"solo"}, nil, 0, nil, "/api/v1/nodes/solo/storage"},
		{[]string{"n1", "n2", "n3"}, nil, exitUsage, []string{"--node is required", "3 nodes (n1, n2, n3)", "127.0.0.1"}, ""},
		{nil, nil, exitUsage, []string{"--node is required", "Sys.Audit"}, ""},
		{[]string{"n1", "n2"}, []string{"--node", "n2"}, 0, nil, "/api/v1/nodes/n2/storage"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.nodes, tt.args), func(t *testing.T) {
			srv.setNodes(tt.nodes...)
			srv.requests()
			_, stderr, code := e.run("", append([]string{"storage", "status"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("code=%d stderr=%q", code, stderr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q: %q", s, stderr)
				}
			}
			reqs := srv.requests()
			if tt.path != "" && (len(reqs) == 0 || reqs[len(reqs)-1].rawPath != tt.path) {
				t.Errorf("requests %v, want the last to be %s", reqs, tt.path)
			}
			if tt.code != 0 && len(reqs) != 1 {
				t.Errorf("requests %v: want only the node lookup", reqs)
			}
		})
	}
}

func TestStorageUsageErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a.iso")
	os.WriteFile(file, []byte("iso"), 0o644)
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"storage", "add", "x", "--content", "iso"}, "--type and --content are required"},
		{[]string{"storage", "add", "x", "--type", "dir"}, "--type and --content are required"},
		{[]string{"storage", "set", "x"}, "nothing to change"},
		{[]string{"storage", "show"}, "accepts 1 arg"},
		{[]string{"storage", "alloc", "local", "--vmid", "100"}, "--vmid and --size are required"},
		{[]string{"storage", "free", "100/vm-100-disk-0.qcow2"}, "want STORAGE:VOLUME"},
		{[]string{"storage", "resize", "local:100/x.raw"}, "accepts 2 arg"},
		{[]string{"storage", "clone", "local:100/x.raw"}, "--vmid is required"},
		{[]string{"storage", "clone", "x.raw", "--vmid", "101"}, "want STORAGE:VOLUME"},
		{[]string{"storage", "content", "local", "--vmid", "-1"}, "--vmid must not be negative"},
		{[]string{"storage", "upload", "local", file}, "--content is required"},
		{[]string{"storage", "upload", "local", file, "--content", "iso", "--checksum", "--sha256", strings.Repeat("0", 64)}, "mutually exclusive"},
		{[]string{"storage", "upload", "local", t.TempDir(), "--content", "iso"}, "is a directory"},
		{[]string{"storage", "download", "local", "https://example.org/x.iso", "--content", "iso"}, "--content and --filename are required"},
		{[]string{"storage", "bogus"}, `unknown command "bogus" for "corral storage"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[1:], " "), func(t *testing.T) {
			_, stderr, code := newCLIEnv(t).run("", tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("code=%d stderr=%q; want %d and %q", code, stderr, exitUsage, tt.wantErr)
			}
		})
	}
}

// TestStorageUpload checks the upload request: the file's bytes as a raw
// octet-stream body with its length, and the query built from the flags.
func TestStorageUpload(t *testing.T) {
	srv := newStorageFake(t)
	e := srv.loggedIn(t)
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	sum := sha256.Sum256(data)
	file := filepath.Join(t.TempDir(), "debian-13.iso")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		flags []string
		node  string
		query string
		out   string
	}{
		{"defaults", nil, "n1", "content=iso&filename=debian-13.iso", "volid    local:iso/debian-13.iso"},
		{"local checksum", []string{"--checksum"}, "n1", "content=iso&filename=debian-13.iso&sha256=" + hex.EncodeToString(sum[:]), "local:iso/debian-13.iso"},
		{"given name, digest and overwrite", []string{"--filename", "d.iso", "--sha256", "ABCD", "--overwrite", "--node", "n7"},
			"n7", "content=iso&filename=d.iso&overwrite=true&sha256=ABCD", "local:iso/d.iso"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.requests()
			out, stderr, code := e.run("", append([]string{"storage", "upload", "local", file, "--content", "iso"}, tt.flags...)...)
			if code != 0 {
				t.Fatalf("code=%d stderr=%q", code, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr is not a terminal, yet got %q", stderr)
			}
			if !strings.Contains(out, tt.out) {
				t.Errorf("stdout lacks %q: %s", tt.out, out)
			}
			reqs := srv.requests()
			up := reqs[len(reqs)-1]
			wantPath := "/api/v1/nodes/" + tt.node + "/storage/local/upload"
			got := sha256.Sum256([]byte(up.body))
			if up.method != "POST" || up.rawPath != wantPath || up.query != tt.query {
				t.Errorf("sent %s %s?%s, want %s?%s", up.method, up.rawPath, up.query, wantPath, tt.query)
			}
			if up.contentType != "application/octet-stream" || up.contentLength != int64(len(data)) || got != sum {
				t.Errorf("Content-Type=%q Content-Length=%d, body %d bytes, same=%v", up.contentType, up.contentLength, len(up.body), got == sum)
			}
		})
	}

	_, stderr, code := e.run("", "storage", "upload", "local", filepath.Join(t.TempDir(), "missing.iso"), "--content", "iso")
	if code != exitError || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: code=%d stderr=%q", code, stderr)
	}
}

func TestStorageDownloadWait(t *testing.T) {
	srv := newStorageFake(t)
	e := srv.loggedIn(t)
	args := []string{"storage", "download", "local", "https://example.org/d.iso", "--content", "iso", "--filename", "d.iso", "--wait"}
	out, stderr, code := e.run("", args...)
	if code != 0 || out != "downloading\n" || !strings.Contains(stderr, "Task UPID:n1:1:2:download:local:root@pam: started.") || !strings.Contains(stderr, "finished: ok") {
		t.Errorf("ok: code=%d out=%q stderr=%q", code, out, stderr)
	}
	srv.mu.Lock()
	srv.taskStatus = api.TaskFailed
	srv.mu.Unlock()
	out, stderr, code = e.run("", append(args, "-o", "json")...)
	if code != exitError || out != `{"n":1,"t":"downloading"}`+"\n" || !strings.Contains(stderr, "failed: download: server answered 404") {
		t.Errorf("failed: code=%d out=%q stderr=%q", code, out, stderr)
	}
}

func TestProgressReader(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var w bytes.Buffer
	p := newProgressReader(strings.NewReader(strings.Repeat("x", 4<<20)), &w, "Uploading a.iso", 4<<20, clock)
	buf := make([]byte, 1<<20)
	p.Read(buf) // too soon after the start: nothing drawn
	if w.Len() != 0 {
		t.Errorf("drawn before the interval: %q", w.String())
	}
	now = now.Add(time.Second)
	p.Read(buf)
	if got := w.String(); got != "\rUploading a.iso: 2.0 MiB / 4.0 MiB (50%), 2.0 MiB/s\x1b[K" {
		t.Errorf("progress line %q", got)
	}
	w.Reset()
	now = now.Add(100 * time.Millisecond)
	p.Read(buf) // within the interval: not redrawn
	if w.Len() != 0 {
		t.Errorf("redrawn within the interval: %q", w.String())
	}
	io.Copy(io.Discard, p)
	now = now.Add(time.Second)
	p.finish()
	if got := w.String(); !strings.HasSuffix(got, "4.0 MiB / 4.0 MiB (100%), 1.9 MiB/s\x1b[K\n") {
		t.Errorf("final line %q", got)
	}

	// Unknown size: no total or percentage.
	w.Reset()
	p = newProgressReader(strings.NewReader("abc"), &w, "Uploading", -1, clock)
	io.Copy(io.Discard, p)
	p.finish()
	if got := w.String(); got != "\rUploading: 3 B\x1b[K\n" {
		t.Errorf("unknown size %q", got)
	}
}

func TestSizeArg(t *testing.T) {
	for in, want := range map[string]string{"10g": "10G", "+5m": "+5M", "512": "512", "1T": "1T", "7k": "7K", "": "", "3x": "3x"} {
		if got := sizeArg(in); got != want {
			t.Errorf("sizeArg(%q) = %q, want %q", in, got, want)
		}
	}
}
