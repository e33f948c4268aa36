package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
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

func clientOpts(server, token string) client.Options {
	return client.Options{Server: server, Token: token}
}

// fakeServer imitates the few endpoints the CLI tests drive. It is no
// substitute for the daemon's integration tests: it checks the CLI's side of
// the contract (paths, escaping, headers, bodies, rendering, exit codes).
type fakeServer struct {
	*httptest.Server
	mu       sync.Mutex
	bodies   map[string]string // last request body per "METHOD path"
	queries  map[string]string
	ifMatch  string
	expires  time.Time
	authSeen []string
}

func problem(w http.ResponseWriter, status int, detail string, fields ...api.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Problem{Title: http.StatusText(status), Status: status, Detail: detail, Errors: fields})
}

// newFakeServer starts a fake API on https://127.0.0.1 with a fresh
// self-signed certificate (httptest's default one is shared by every test
// server, which would hide pinning mistakes).
func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{bodies: map[string]string{}, queries: map[string]string{}, expires: time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)}
	mux := http.NewServeMux()
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Get("Authorization")
			f.mu.Lock()
			f.authSeen = append(f.authSeen, auth)
			f.mu.Unlock()
			if auth != "Bearer T1" && auth != "CorralToken root@pam!ci=s3cret" {
				problem(w, http.StatusUnauthorized, "authentication required")
				return
			}
			h(w, r)
		}
	}
	record := func(r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.bodies[r.Method+" "+r.URL.Path] = string(b)
		f.queries[r.Method+" "+r.URL.Path] = r.URL.RawQuery
		f.ifMatch = r.Header.Get("If-Match")
		f.mu.Unlock()
	}
	mux.HandleFunc("GET /api/v1/version", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.VersionInfo{Version: "0.9.0", Commit: "abc123", API: "v1"})
	})
	mux.HandleFunc("POST /api/v1/access/ticket", func(w http.ResponseWriter, r *http.Request) {
		var req api.TicketRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.Username != "alice@corral" || req.Password != "correct horse" {
			problem(w, http.StatusUnauthorized, "authentication failure")
			return
		}
		json.NewEncoder(w).Encode(api.Ticket{Ticket: "T1", CSRFToken: "C1", Username: "alice@corral", Expires: f.expires})
	})
	mux.HandleFunc("GET /api/v1/access/users", authed(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]api.User{{UserID: "root@pam", Enabled: true}, {UserID: "alice@corral", Enabled: true, Groups: []string{"ops"}}})
	}))
	mux.HandleFunc("POST /api/v1/access/users", authed(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		var u api.UserCreate
		json.Unmarshal([]byte(f.bodies["POST /api/v1/access/users"]), &u)
		if !strings.Contains(u.UserID, "@") {
			problem(w, http.StatusUnprocessableEntity, "validation failed", api.FieldError{Field: "userid", Message: "must be name@realm"})
			return
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(api.User{UserID: u.UserID, Enabled: true})
	}))
	mux.HandleFunc("GET /api/v1/access/users/{userid}", authed(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("userid")
		if id == "ghost@corral" {
			problem(w, http.StatusNotFound, "user ghost@corral does not exist")
			return
		}
		json.NewEncoder(w).Encode(api.User{UserID: id, Enabled: true, Email: "x@example.org", Digest: "d1"})
	}))
	mux.HandleFunc("PUT /api/v1/access/users/{userid}", authed(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		json.NewEncoder(w).Encode(api.User{UserID: r.PathValue("userid")})
	}))
	mux.HandleFunc("PUT /api/v1/access/acl", authed(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		json.NewEncoder(w).Encode([]api.ACLEntry{})
	}))
	mux.HandleFunc("POST /api/v1/access/users/{userid}/tokens/{name}", authed(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		id := r.PathValue("userid") + "!" + r.PathValue("name")
		json.NewEncoder(w).Encode(api.TokenSecret{TokenID: id, Secret: "SECRET", Token: api.Token{TokenID: id, Privsep: true}})
	}))
	mux.HandleFunc("GET /api/v1/tasks", authed(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		io.WriteString(w, `[{"id":"UPID:n1:1:2:sleep::root@pam:","node":"n1","type":"sleep","user":"root@pam","status":"ok","start_time":"2025-01-01T00:00:00Z","end_time":"2025-01-01T00:00:05Z"}]`)
	}))
	mux.HandleFunc("POST /api/v1/nodes/{node}/tasks/sleep", authed(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"task":"UPID:%s:1:2:sleep::alice@corral:"}`, r.PathValue("node"))
	}))
	mux.HandleFunc("GET /api/v1/tasks/{upid}/log", authed(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("follow") == "" {
			io.WriteString(w, `[{"n":1,"t":"hello"},{"n":2,"t":"world"}]`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: line\ndata: {\"n\":1,\"t\":\"working\"}\n\n")
		w.(http.Flusher).Flush()
		fmt.Fprintf(w, "event: end\ndata: {\"id\":%q,\"status\":\"failed\",\"exit_message\":\"disk full\"}\n\n", r.PathValue("upid"))
	}))
	f.Server = httptest.NewUnstartedServer(mux)
	f.TLS = &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}}
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "corral test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (f *fakeServer) body(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[key]
}

func (f *fakeServer) query(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries[key]
}

// TestLoginSessionFlow drives login (with trust on first use), commands that
// use the saved session, problem reporting, and logout, all in-process.
func TestLoginSessionFlow(t *testing.T) {
	srv := newFakeServer(t)
	e := newCLIEnv(t)
	fingerprint := client.Fingerprint(srv.Certificate())

	// Wrong password: the problem is reported and nothing is saved.
	_, stderr, code := e.run("wrong\n", "login", "--server", srv.URL, "--user", "alice@corral", "--password-stdin")
	if code != exitError || !strings.Contains(stderr, "401 Unauthorized: authentication failure") {
		t.Fatalf("bad login: code=%d stderr=%q", code, stderr)
	}
	sessPath := filepath.Join(e.env["HOME"], ".config", "corral", "session.json")
	if _, err := os.Stat(sessPath); err == nil {
		t.Fatal("a failed login saved a session")
	}

	out, stderr, code := e.run("correct horse\n", "login", "--server", srv.URL, "--user", "alice@corral", "--password-stdin")
	if code != 0 {
		t.Fatalf("login: code=%d stderr=%q", code, stderr)
	}
	if !strings.Contains(stderr, fingerprint) {
		t.Errorf("login did not print the certificate fingerprint %s: %q", fingerprint, stderr)
	}
	if !strings.Contains(out, "Logged in to "+strings.TrimSuffix(srv.URL, "/")+" as alice@corral") {
		t.Errorf("login output %q", out)
	}
	data, err := os.ReadFile(sessPath)
	if err != nil {
		t.Fatal(err)
	}
	var sess savedSession
	if err := json.Unmarshal(data, &sess); err != nil {
		t.Fatal(err)
	}
	if sess.Ticket != "T1" || sess.CSRF != "C1" || sess.Username != "alice@corral" || !sess.Expires.Equal(srv.expires) ||
		!strings.Contains(sess.CA, "BEGIN CERTIFICATE") {
		t.Errorf("session = %+v", sess)
	}

	// The session (and its pinned CA) is used without --server.
	out, stderr, code = e.run("", "user", "list", "-o", "json")
	if code != 0 {
		t.Fatalf("user list: code=%d stderr=%q", code, stderr)
	}
	var users []api.User
	if err := json.Unmarshal([]byte(out), &users); err != nil || len(users) != 2 || users[1].Groups[0] != "ops" {
		t.Errorf("user list json: %v %q", err, out)
	}

	out, _, code = e.run("", "user", "list")
	if code != 0 || !strings.HasPrefix(out, "USERID") || !strings.Contains(out, "alice@corral  yes") {
		t.Errorf("user list table: code=%d %q", code, out)
	}

	// Problems: 404 detail, 422 field errors, exit status 1.
	_, stderr, code = e.run("", "user", "show", "ghost@corral")
	if code != exitError || !strings.Contains(stderr, "404 Not Found: user ghost@corral does not exist") {
		t.Errorf("show ghost: code=%d stderr=%q", code, stderr)
	}
	_, stderr, code = e.run("", "user", "create", "nobody")
	if code != exitError || !strings.Contains(stderr, "userid: must be name@realm") {
		t.Errorf("create invalid: code=%d stderr=%q", code, stderr)
	}

	// user create with the password on stdin; flags map to the body.
	out, stderr, code = e.run("pw-from-stdin\n", "user", "create", "bob@corral", "--password-stdin", "--groups", "ops,dev", "--enabled=false")
	if code != 0 || !strings.Contains(out, "User bob@corral created") {
		t.Fatalf("create: code=%d out=%q stderr=%q", code, out, stderr)
	}
	var created map[string]any
	json.Unmarshal([]byte(srv.body("POST /api/v1/access/users")), &created)
	if created["password"] != "pw-from-stdin" || created["enabled"] != false || fmt.Sprint(created["groups"]) != "[ops dev]" {
		t.Errorf("create body = %v", created)
	}

	// update sends only the changed fields and If-Match.
	_, stderr, code = e.run("", "user", "update", "bob@corral", "--email", "b@example.org", "--digest", "d1")
	if code != 0 {
		t.Fatalf("update: code=%d stderr=%q", code, stderr)
	}
	if b := srv.body("PUT /api/v1/access/users/bob@corral"); b != `{"email":"b@example.org"}` || srv.ifMatch != "d1" {
		t.Errorf("update body=%s If-Match=%q", b, srv.ifMatch)
	}

	// acl add builds one entry; propagate defaults to true.
	_, stderr, code = e.run("", "acl", "add", "--path", "/vms/100", "--role", "PVEVMUser", "--token", "alice@corral!ci")
	if code != 0 {
		t.Fatalf("acl add: code=%d stderr=%q", code, stderr)
	}
	if b := srv.body("PUT /api/v1/access/acl"); b != `{"entries":[{"path":"/vms/100","token":"alice@corral!ci","role":"PVEVMUser","propagate":true}]}` {
		t.Errorf("acl body = %s", b)
	}
	_, _, code = e.run("", "acl", "remove", "--path", "/", "--role", "R", "--group", "ops", "--propagate=false")
	if b := srv.body("PUT /api/v1/access/acl"); code != 0 || b != `{"entries":[{"path":"/","group":"ops","role":"R","propagate":false}],"delete":true}` {
		t.Errorf("acl remove: code=%d body=%s", code, b)
	}

	// token create accepts USER!NAME and prints the secret.
	out, _, code = e.run("", "token", "create", "alice@corral!ci", "--privsep=false")
	if code != 0 || !strings.Contains(out, "SECRET") || srv.body("POST /api/v1/access/users/alice@corral/tokens/ci") != `{"privsep":false}` {
		t.Errorf("token create: code=%d out=%q body=%s", code, out, srv.body("POST /api/v1/access/users/alice@corral/tokens/ci"))
	}

	// task list passes filters as query parameters.
	out, _, code = e.run("", "task", "list", "--node", "n1", "--status", "ok", "--limit", "5")
	if code != 0 || !strings.Contains(out, "UPID:n1:1:2:sleep::root@pam:") || !strings.Contains(out, "5s") {
		t.Errorf("task list: code=%d out=%q", code, out)
	}
	if q := srv.query("GET /api/v1/tasks"); q != "limit=5&node=n1&status=ok" {
		t.Errorf("task list query = %q", q)
	}

	// corral api: key=value become a typed JSON body; the reply is shown.
	out, _, code = e.run("", "api", "post", "/nodes/n1/tasks/sleep", "seconds=3")
	if code != 0 || out != "task  UPID:n1:1:2:sleep::alice@corral:\n" || srv.body("POST /api/v1/nodes/n1/tasks/sleep") != `{"seconds":3}` {
		t.Errorf("api post: code=%d out=%q body=%s", code, out, srv.body("POST /api/v1/nodes/n1/tasks/sleep"))
	}
	out, _, code = e.run("", "api", "get", "/tasks", "limit=1", "-o", "yaml")
	if code != 0 || !strings.HasPrefix(out, "- id: 'UPID:n1:1:2:sleep::root@pam:'\n  node: n1\n") || srv.query("GET /api/v1/tasks") != "limit=1" {
		t.Errorf("api get yaml: code=%d out=%q query=%q", code, out, srv.query("GET /api/v1/tasks"))
	}

	// task log, plain and followed; a failed task makes -f exit 1.
	out, _, code = e.run("", "task", "log", "UPID:n1:1:2:sleep::root@pam:")
	if code != 0 || out != "hello\nworld\n" {
		t.Errorf("task log: code=%d out=%q", code, out)
	}
	out, stderr, code = e.run("", "task", "log", "-f", "UPID:n1:1:2:sleep::root@pam:")
	if code != exitError || out != "working\n" || !strings.Contains(stderr, "failed: disk full") {
		t.Errorf("task log -f: code=%d out=%q stderr=%q", code, out, stderr)
	}

	// version needs no credentials but uses the session's server.
	out, _, code = e.run("", "version")
	if code != 0 || !strings.Contains(out, "server  0.9.0 (commit abc123, API v1)") {
		t.Errorf("version: code=%d out=%q", code, out)
	}

	// A token overrides the session.
	_, _, code = e.run("", "user", "list", "--token", "root@pam!ci=s3cret")
	srv.mu.Lock()
	last := srv.authSeen[len(srv.authSeen)-1]
	srv.mu.Unlock()
	if code != 0 || last != "CorralToken root@pam!ci=s3cret" {
		t.Errorf("token: code=%d auth=%q", code, last)
	}

	// Logging in again keeps the pinned CA rather than re-trusting.
	_, stderr, code = e.run("correct horse\n", "login", "--user", "alice@corral", "--password-stdin")
	if code != 0 || strings.Contains(stderr, "fingerprint") {
		t.Errorf("re-login: code=%d stderr=%q", code, stderr)
	}

	out, _, code = e.run("", "logout")
	if code != 0 || !strings.Contains(out, "Logged out") {
		t.Errorf("logout: code=%d out=%q", code, out)
	}
	_, stderr, code = e.run("", "user", "list")
	if code != exitError || !strings.Contains(stderr, "not logged in") {
		t.Errorf("after logout: code=%d stderr=%q", code, stderr)
	}
}

// TestPinnedCertificateMismatch checks that a session pinned to one server's
// certificate refuses a server presenting another one.
func TestPinnedCertificateMismatch(t *testing.T) {
	a := newFakeServer(t)
	b := newFakeServer(t)
	e := newCLIEnv(t)
	if _, stderr, code := e.run("correct horse\n", "login", "--server", a.URL, "--user", "alice@corral", "--password-stdin"); code != 0 {
		t.Fatalf("login: %q", stderr)
	}
	// Point the saved session at server b, as if a's certificate changed.
	app, _, _ := e.app("")
	s, err := app.loadSession()
	if err != nil {
		t.Fatal(err)
	}
	s.Server, _ = client.NormalizeServer(b.URL)
	e.saveSession(s)
	_, stderr, code := e.run("", "user", "list")
	if code != exitError || !strings.Contains(stderr, "certificate") || !strings.Contains(stderr, "Hint:") {
		t.Errorf("code=%d stderr=%q", code, stderr)
	}
	// --insecure is the explicit way past it.
	if _, stderr, code := e.run("", "user", "list", "--insecure"); code != 0 {
		t.Errorf("--insecure: code=%d stderr=%q", code, stderr)
	}
}

func TestLoginCAFile(t *testing.T) {
	srv := newFakeServer(t)
	e := newCLIEnv(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, client.EncodeCertPEM(srv.Certificate()), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := e.run("correct horse\n", "login", "--server", srv.URL, "--user", "alice@corral", "--password-stdin", "--ca-file", caFile)
	if code != 0 || strings.Contains(stderr, "fingerprint") {
		t.Fatalf("login with --ca-file: code=%d stderr=%q", code, stderr)
	}
	// Later commands trust the CA saved from the file without --ca-file.
	if _, stderr, code := e.run("", "user", "list"); code != 0 {
		t.Errorf("user list: code=%d stderr=%q", code, stderr)
	}

	bad := filepath.Join(t.TempDir(), "bad.crt")
	os.WriteFile(bad, []byte("nothing here"), 0o644)
	if _, stderr, code := e.run("x\n", "login", "--server", srv.URL, "--user", "u", "--password-stdin", "--ca-file", bad); code != exitError || !strings.Contains(stderr, "no PEM certificate") {
		t.Errorf("bad --ca-file: code=%d stderr=%q", code, stderr)
	}
}

func TestLoginNeedsUserWithoutTerminal(t *testing.T) {
	e := newCLIEnv(t)
	_, stderr, code := e.run("pw\n", "login", "--server", "https://127.0.0.1:1")
	if code != exitUsage || !strings.Contains(stderr, "--user is required") {
		t.Errorf("code=%d stderr=%q", code, stderr)
	}
}

func TestReadLine(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"secret\nrest", "secret", false},
		{"crlf\r\n", "crlf", false},
		{"no newline", "no newline", false},
		{"with spaces  \n", "with spaces  ", false},
		{"", "", true},
	}
	for _, tt := range tests {
		r := strings.NewReader(tt.in)
		got, err := readLine(r)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("readLine(%q) = %q, %v", tt.in, got, err)
		}
		if tt.in == "secret\nrest" {
			if rest, _ := io.ReadAll(r); string(rest) != "rest" {
				t.Errorf("readLine consumed past the line: left %q", rest)
			}
		}
	}
}
