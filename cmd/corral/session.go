package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/corral-project/corral/client"
)

// defaultSocket is where the daemon serves the API to local root.
const defaultSocket = "/run/corral/corral.sock"

// savedSession is what "corral login" leaves in session.json so later
// commands can reuse the ticket. CA is the PEM of the certificate pinned at
// login; it is the only trust anchor used for that server afterwards.
type savedSession struct {
	Server   string    `json:"server"`
	Ticket   string    `json:"ticket"`
	CSRF     string    `json:"csrf,omitempty"`
	Username string    `json:"username"`
	Expires  time.Time `json:"expires"`
	CA       string    `json:"ca,omitempty"`
}

// configDir follows the XDG base directory spec, as corral's users expect
// from other CLI tools; it reads the environment through a.getenv so tests
// can point it at a temporary HOME.
func (a *cliApp) configDir() (string, error) {
	if x := a.getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "corral"), nil
	}
	home := a.getenv("HOME")
	if home == "" {
		return "", errors.New("cannot locate the config directory: neither XDG_CONFIG_HOME nor HOME is set")
	}
	return filepath.Join(home, ".config", "corral"), nil
}

func (a *cliApp) sessionPath() (string, error) {
	dir, err := a.configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "session.json"), nil
}

// loadSession returns the saved session, or nil if there is none.
func (a *cliApp) loadSession() (*savedSession, error) {
	path, err := a.sessionPath()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	var s savedSession
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read session %s (remove it or run corral logout): %w", path, err)
	}
	if s.Server == "" || s.Ticket == "" {
		return nil, fmt.Errorf("session %s is incomplete: run corral login", path)
	}
	return &s, nil
}

// saveSession writes the session atomically with mode 0600: it holds a
// bearer credential, and a half-written file must never be left behind.
func (a *cliApp) saveSession(s *savedSession) error {
	path, err := a.sessionPath()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".session-*.json")
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save session: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save session: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// removeSession deletes the saved session and reports whether there was one.
func (a *cliApp) removeSession() (bool, error) {
	path, err := a.sessionPath()
	if err != nil {
		return false, err
	}
	err = os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove session: %w", err)
	}
	return true, nil
}

// Credential sources, as reported by resolveConn.
const (
	sourceToken     = "token"
	sourceSession   = "session"
	sourceSocket    = "socket"
	sourceAnonymous = "anonymous"
)

// connPlan says how a command will reach the API and as whom.
type connPlan struct {
	opts    client.Options
	source  string
	session *savedSession // the session used, if any
}

// identity names the user the plan acts as, when the CLI can know it
// without asking the server.
func (p *connPlan) identity() string {
	switch p.source {
	case sourceToken:
		id, _, _ := strings.Cut(p.opts.Token, "=")
		user, _, _ := strings.Cut(id, "!")
		return user
	case sourceSession:
		return p.session.Username
	case sourceSocket:
		return "root@pam"
	}
	return ""
}

// socketPath is the daemon's local socket, overridable for tests and
// non-standard installs.
func (a *cliApp) socketPath() string {
	if s := a.getenv("CORRAL_SOCKET"); s != "" {
		return s
	}
	return defaultSocket
}

func isSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// resolveConn picks the credentials for a command, in the documented order:
// an API token; the saved session when --server is unset or names the same
// server; the unix socket for root; otherwise the user must log in. With
// allowAnonymous, a known server without credentials is acceptable (for
// endpoints such as /version that need none).
func (a *cliApp) resolveConn(allowAnonymous bool) (*connPlan, error) {
	var server string
	if a.server != "" {
		s, err := client.NormalizeServer(a.server)
		if err != nil {
			return nil, &usageError{err: fmt.Errorf("--server: %w", err)}
		}
		server = s
	}
	var caPEM []byte
	if a.caFile != "" {
		data, err := os.ReadFile(a.caFile)
		if err != nil {
			return nil, fmt.Errorf("read --ca-file: %w", err)
		}
		caPEM = data
	}
	sess, err := a.loadSession()
	if err != nil {
		return nil, err
	}
	plan := &connPlan{opts: client.Options{
		Insecure:  a.insecure,
		Timeout:   a.timeout,
		CACertPEM: caPEM,
		UserAgent: "corral-cli/" + versionString(),
	}}
	// pinned returns the CA pinned at login for server, unless --ca-file
	// overrides it.
	pinned := func(server string) []byte {
		if caPEM == nil && sess != nil && sess.Server == server && sess.CA != "" {
			return []byte(sess.CA)
		}
		return caPEM
	}

	if a.token != "" {
		if server == "" && sess != nil {
			server = sess.Server
		}
		if server == "" {
			return nil, usageErrorf("--token needs --server (or CORRAL_SERVER)")
		}
		plan.opts.Server, plan.opts.Token, plan.opts.CACertPEM = server, a.token, pinned(server)
		plan.source = sourceToken
		return plan, nil
	}

	expired := false
	if sess != nil && (server == "" || server == sess.Server) {
		if !sess.Expires.IsZero() && !a.now().Before(sess.Expires) {
			expired = true
		} else {
			plan.opts.Server, plan.opts.Ticket, plan.opts.CSRF = sess.Server, sess.Ticket, sess.CSRF
			plan.opts.CACertPEM = pinned(sess.Server)
			plan.source, plan.session = sourceSession, sess
			return plan, nil
		}
	}

	// An explicit socket needs no credentials: the daemon authenticates
	// its peer by uid.
	if strings.HasPrefix(server, "unix://") {
		plan.opts.Server, plan.source = server, sourceSocket
		return plan, nil
	}
	if server == "" && a.geteuid() == 0 && isSocket(a.socketPath()) {
		plan.opts.Server, plan.source = "unix://"+a.socketPath(), sourceSocket
		return plan, nil
	}

	if allowAnonymous {
		if server == "" && sess != nil {
			server = sess.Server
		}
		if server != "" {
			plan.opts.Server, plan.opts.CACertPEM = server, pinned(server)
			plan.source = sourceAnonymous
			return plan, nil
		}
	}
	switch {
	case expired:
		return nil, fmt.Errorf("session for %s expired at %s: run corral login",
			sess.Server, sess.Expires.Local().Format(time.RFC3339))
	case server != "":
		return nil, fmt.Errorf("not logged in to %s: run corral login", server)
	default:
		return nil, errors.New("not logged in: run corral login")
	}
}

// connect resolves credentials and builds a client.
func (a *cliApp) connect(allowAnonymous bool) (*client.Client, *connPlan, error) {
	plan, err := a.resolveConn(allowAnonymous)
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(plan.opts)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", plan.opts.Server, err)
	}
	return c, plan, nil
}
