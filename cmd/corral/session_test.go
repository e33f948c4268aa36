package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cliEnv runs CLI invocations in-process against a private environment:
// nothing here reads or changes the real process environment, so tests can
// run in parallel with a temporary HOME each.
type cliEnv struct {
	t    *testing.T
	env  map[string]string
	euid int
	now  time.Time
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	return &cliEnv{t: t, env: map[string]string{"HOME": t.TempDir()}, euid: 1000}
}

func (e *cliEnv) app(stdin string) (*cliApp, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	now := time.Now
	if !e.now.IsZero() {
		now = func() time.Time { return e.now }
	}
	return &cliApp{
		stdin:   strings.NewReader(stdin),
		stdout:  &out,
		stderr:  &errb,
		getenv:  func(k string) string { return e.env[k] },
		geteuid: func() int { return e.euid },
		now:     now,
		timeout: 10 * time.Second,
	}, &out, &errb
}

// run executes one command line and returns stdout, stderr and exit code.
func (e *cliEnv) run(stdin string, args ...string) (string, string, int) {
	e.t.Helper()
	a, out, errb := e.app(stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := a.run(ctx, args)
	return out.String(), errb.String(), code
}

// resolve applies flags the way the root command would and resolves.
func (e *cliEnv) resolve(server, token string, allowAnonymous bool) (*connPlan, error) {
	a, _, _ := e.app("")
	a.server, a.token = server, token
	if a.server == "" {
		a.server = e.env["CORRAL_SERVER"]
	}
	if a.token == "" {
		a.token = e.env["CORRAL_TOKEN"]
	}
	return a.resolveConn(allowAnonymous)
}

func (e *cliEnv) saveSession(s *savedSession) {
	e.t.Helper()
	a, _, _ := e.app("")
	if err := a.saveSession(s); err != nil {
		e.t.Fatal(err)
	}
}

// listenSocket creates a real unix socket, as the daemon would.
func listenSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "corral-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "corral.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return path
}

func TestResolveConnOrder(t *testing.T) {
	sock := listenSocket(t)
	regularFile := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(regularFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	valid := &savedSession{Server: "https://node1:8006", Ticket: "TICKET", CSRF: "CSRF", Username: "alice@corral",
		Expires: time.Now().Add(time.Hour), CA: "PINNED"}
	expired := &savedSession{Server: "https://node1:8006", Ticket: "OLD", Username: "alice@corral",
		Expires: time.Now().Add(-time.Minute)}

	tests := []struct {
		name       string
		session    *savedSession
		env        map[string]string
		euid       int
		server     string
		token      string
		anonymous  bool
		wantSource string
		wantServer string
		wantCred   string // token or ticket expected in the options
		wantCA     string
		wantErr    string
	}{
		{name: "nothing at all", wantErr: "not logged in: run corral login"},
		{name: "token flag wins over session", session: valid, token: "bob@pam!ci=s",
			wantSource: sourceToken, wantServer: "https://node1:8006", wantCred: "bob@pam!ci=s", wantCA: "PINNED"},
		{name: "token from env with explicit server", env: map[string]string{"CORRAL_TOKEN": "bob@pam!ci=s", "CORRAL_SERVER": "node2"},
			session: valid, wantSource: sourceToken, wantServer: "https://node2:8006", wantCred: "bob@pam!ci=s"},
		{name: "token wins over root socket", euid: 0, env: map[string]string{"CORRAL_SOCKET": sock}, server: "node2", token: "a@b!c=d",
			wantSource: sourceToken, wantServer: "https://node2:8006", wantCred: "a@b!c=d"},
		{name: "token without any server", token: "a@b!c=d", wantErr: "--token needs --server"},
		{name: "session when server unset", session: valid,
			wantSource: sourceSession, wantServer: "https://node1:8006", wantCred: "TICKET", wantCA: "PINNED"},
		{name: "session when server is the same node spelled differently", session: valid, server: "NODE1",
			wantSource: sourceSession, wantServer: "https://node1:8006", wantCred: "TICKET", wantCA: "PINNED"},
		{name: "session wins over root socket", session: valid, euid: 0, env: map[string]string{"CORRAL_SOCKET": sock},
			wantSource: sourceSession, wantServer: "https://node1:8006", wantCred: "TICKET"},
		{name: "session for another server is not used", session: valid, server: "node2",
			wantErr: "not logged in to https://node2:8006"},
		{name: "expired session", session: expired, wantErr: "expired"},
		{name: "expired session falls back to root socket", session: expired, euid: 0, env: map[string]string{"CORRAL_SOCKET": sock},
			wantSource: sourceSocket, wantServer: "unix://" + sock},
		{name: "root uses the socket", euid: 0, env: map[string]string{"CORRAL_SOCKET": sock},
			wantSource: sourceSocket, wantServer: "unix://" + sock},
		{name: "non-root does not use the socket", euid: 1000, env: map[string]string{"CORRAL_SOCKET": sock},
			wantErr: "not logged in"},
		{name: "root without a socket", euid: 0, env: map[string]string{"CORRAL_SOCKET": regularFile},
			wantErr: "not logged in"},
		{name: "root with --server for another node does not use the socket", euid: 0, env: map[string]string{"CORRAL_SOCKET": sock},
			server: "node2", wantErr: "not logged in to https://node2:8006"},
		{name: "explicit unix server", server: "unix://" + sock,
			wantSource: sourceSocket, wantServer: "unix://" + sock},
		{name: "anonymous with a server", server: "node3", anonymous: true,
			wantSource: sourceAnonymous, wantServer: "https://node3:8006"},
		{name: "anonymous uses the expired session's server and pin", session: &savedSession{Server: "https://node1:8006", Ticket: "x",
			Expires: time.Now().Add(-time.Hour), CA: "PINNED"}, anonymous: true,
			wantSource: sourceAnonymous, wantServer: "https://node1:8006", wantCA: "PINNED"},
		{name: "anonymous without any server", anonymous: true, wantErr: "not logged in"},
		{name: "bad server", server: "ftp://x", wantErr: "--server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCLIEnv(t)
			e.euid = tt.euid
			for k, v := range tt.env {
				e.env[k] = v
			}
			if tt.session != nil {
				e.saveSession(tt.session)
			}
			plan, err := e.resolve(tt.server, tt.token, tt.anonymous)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q (plan %+v)", err, tt.wantErr, plan)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.source != tt.wantSource || plan.opts.Server != tt.wantServer {
				t.Errorf("source=%s server=%s, want %s %s", plan.source, plan.opts.Server, tt.wantSource, tt.wantServer)
			}
			cred := plan.opts.Token + plan.opts.Ticket
			if cred != tt.wantCred {
				t.Errorf("credential = %q, want %q", cred, tt.wantCred)
			}
			if plan.opts.Token != "" && plan.opts.Ticket != "" {
				t.Error("both token and ticket set")
			}
			if tt.wantCA != "" && string(plan.opts.CACertPEM) != tt.wantCA {
				t.Errorf("CA = %q, want %q", plan.opts.CACertPEM, tt.wantCA)
			}
		})
	}
}

func TestCAFileOverridesPin(t *testing.T) {
	e := newCLIEnv(t)
	e.saveSession(&savedSession{Server: "https://node1:8006", Ticket: "T", Expires: time.Now().Add(time.Hour), CA: "PINNED"})
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte("FROM FILE"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, _, _ := e.app("")
	a.caFile = caFile
	plan, err := a.resolveConn(false)
	if err != nil {
		t.Fatal(err)
	}
	if string(plan.opts.CACertPEM) != "FROM FILE" {
		t.Errorf("CA = %q", plan.opts.CACertPEM)
	}
	a.caFile = filepath.Join(t.TempDir(), "missing.crt")
	if _, err := a.resolveConn(false); err == nil {
		t.Error("missing --ca-file accepted")
	}
}

func TestSessionFile(t *testing.T) {
	t.Run("HOME", func(t *testing.T) {
		e := newCLIEnv(t)
		e.saveSession(&savedSession{Server: "https://h:8006", Ticket: "T", Username: "u@corral"})
		path := filepath.Join(e.env["HOME"], ".config", "corral", "session.json")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
		}
		if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
			t.Errorf("dir mode = %v, want 0700", di.Mode().Perm())
		}
		// Saving again replaces the file and leaves no temporary behind.
		e.saveSession(&savedSession{Server: "https://h:8006", Ticket: "T2", Username: "u@corral"})
		entries, _ := os.ReadDir(filepath.Dir(path))
		if len(entries) != 1 {
			t.Errorf("config dir holds %d entries, want 1", len(entries))
		}
		a, _, _ := e.app("")
		s, err := a.loadSession()
		if err != nil || s.Ticket != "T2" {
			t.Errorf("loaded %+v, %v", s, err)
		}
	})
	t.Run("XDG_CONFIG_HOME", func(t *testing.T) {
		e := newCLIEnv(t)
		xdg := t.TempDir()
		e.env["XDG_CONFIG_HOME"] = xdg
		e.saveSession(&savedSession{Server: "https://h:8006", Ticket: "T"})
		if _, err := os.Stat(filepath.Join(xdg, "corral", "session.json")); err != nil {
			t.Errorf("session not under XDG_CONFIG_HOME: %v", err)
		}
	})
	t.Run("corrupt file is an error, logout removes it", func(t *testing.T) {
		e := newCLIEnv(t)
		dir := filepath.Join(e.env["HOME"], ".config", "corral")
		os.MkdirAll(dir, 0o700)
		os.WriteFile(filepath.Join(dir, "session.json"), []byte("{not json"), 0o600)
		if _, err := e.resolve("", "", false); err == nil || !strings.Contains(err.Error(), "session") {
			t.Errorf("err = %v", err)
		}
		out, _, code := e.run("", "logout")
		if code != 0 || !strings.Contains(out, "Logged out") {
			t.Errorf("logout: %q %d", out, code)
		}
		out, _, _ = e.run("", "logout")
		if !strings.Contains(out, "Not logged in") {
			t.Errorf("second logout: %q", out)
		}
	})
	t.Run("no HOME", func(t *testing.T) {
		e := newCLIEnv(t)
		delete(e.env, "HOME")
		a, _, _ := e.app("")
		if _, err := a.sessionPath(); err == nil {
			t.Error("no error without HOME")
		}
	})
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		plan connPlan
		want string
	}{
		{connPlan{source: sourceToken, opts: clientOpts("", "bob@pam!ci=se=cret")}, "bob@pam"},
		{connPlan{source: sourceSession, session: &savedSession{Username: "alice@corral"}}, "alice@corral"},
		{connPlan{source: sourceSocket}, "root@pam"},
		{connPlan{source: sourceAnonymous}, ""},
	}
	for _, tt := range tests {
		if got := tt.plan.identity(); got != tt.want {
			t.Errorf("identity(%s) = %q, want %q", tt.plan.source, got, tt.want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args    []string
		code    int
		wantErr string
	}{
		{[]string{"bogus"}, exitUsage, `unknown command "bogus"`},
		{[]string{"user", "bogus"}, exitUsage, `unknown command "bogus" for "corral user"`},
		{[]string{"user", "list", "--bogus"}, exitUsage, "unknown flag"},
		{[]string{"user", "show"}, exitUsage, "accepts 1 arg"},
		{[]string{"-o", "xml", "user", "list"}, exitUsage, "invalid --output"},
		{[]string{"acl", "add", "--path", "/", "--role", "R"}, exitUsage, "exactly one of"},
		{[]string{"acl", "add", "--path", "/", "--role", "R", "--user", "a@b", "--group", "g"}, exitUsage, "exactly one of"},
		{[]string{"role", "create", "R"}, exitUsage, "--privs is required"},
		{[]string{"user", "update", "a@b"}, exitUsage, "nothing to update"},
		{[]string{"token", "delete", "justauser"}, exitUsage, "USER!NAME"},
		{[]string{"api", "post", "/x", "novalue"}, exitUsage, "not key=value"},
		{[]string{"task", "list", "--since", "yesterday"}, exitUsage, "--since"},
		{[]string{"user", "list"}, exitError, "not logged in: run corral login"},
		{[]string{"login", "--user", "a@b", "--server", "ftp://x"}, exitUsage, "--server"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			e := newCLIEnv(t)
			_, stderr, code := e.run("", tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("code=%d stderr=%q; want %d and %q", code, stderr, tt.code, tt.wantErr)
			}
		})
	}
	t.Run("no arguments shows help", func(t *testing.T) {
		out, _, code := newCLIEnv(t).run("")
		if code != 0 || !strings.Contains(out, "Available Commands") {
			t.Errorf("code=%d out=%q", code, out)
		}
	})
	t.Run("exitCodeError keeps its code", func(t *testing.T) {
		a, _, errb := newCLIEnv(t).app("")
		code := a.reportError(a.newRootCmd(), &exitCodeError{code: 3, err: errors.New("x")})
		if code != 3 || !strings.Contains(errb.String(), "Error: x") {
			t.Errorf("code=%d stderr=%q", code, errb.String())
		}
	})
}
