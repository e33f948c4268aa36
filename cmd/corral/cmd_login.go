package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/corral-project/corral/client"
)

// defaultLoginServer is used by "corral login" when neither --server nor a
// previous session names one: the API of the node the user is on.
const defaultLoginServer = "https://127.0.0.1:8006"

func (a *cliApp) newLoginCmd() *cobra.Command {
	var user string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in and save a session ticket",
		Long: `Log in with a password and save the ticket in
$XDG_CONFIG_HOME/corral/session.json (default ~/.config/corral/session.json).

For an https server without --ca-file, the certificate at the end of the
chain the server presents (the cluster CA) is trusted on first use: its
SHA-256 fingerprint is printed and it is pinned in the session, so later
commands accept no other. Compare the fingerprint with the output of
"openssl x509 -noout -fingerprint -sha256 -in <data-dir>/pki/ca.crt" on the node.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.login(cmd, user, passwordStdin)
		},
	}
	cmd.Flags().StringVarP(&user, "user", "u", "", "user name, user@realm (prompted for when omitted on a terminal)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	return cmd
}

func (a *cliApp) login(cmd *cobra.Command, user string, passwordStdin bool) error {
	ctx := cmd.Context()
	old, err := a.loadSession()
	if err != nil {
		// A broken session file must not prevent logging in again.
		fmt.Fprintf(a.stderr, "Warning: ignoring saved session: %v\n", err)
		old = nil
	}
	raw := a.server
	if raw == "" && old != nil {
		raw = old.Server
	}
	if raw == "" {
		raw = defaultLoginServer
	}
	server, err := client.NormalizeServer(raw)
	if err != nil {
		return &usageError{err: fmt.Errorf("--server: %w", err)}
	}

	if user == "" {
		if !a.stdinIsTerminal() || passwordStdin {
			return usageErrorf("--user is required when standard input is not a terminal")
		}
		fmt.Fprint(a.stderr, "Username: ")
		line, err := readLine(a.stdin)
		if err != nil {
			return fmt.Errorf("read username: %w", err)
		}
		user = strings.TrimSpace(line)
		if user == "" {
			return usageErrorf("no user name given")
		}
	}

	caPEM, err := a.loginCA(cmd, server, old)
	if err != nil {
		return err
	}

	password, err := a.readSecret("Password: ", passwordStdin)
	if err != nil {
		return fmt.Errorf("read password: %w", err)
	}

	c, err := client.New(client.Options{
		Server:    server,
		CACertPEM: caPEM,
		Insecure:  a.insecure,
		Timeout:   a.timeout,
		UserAgent: "corral-cli/" + versionString(),
	})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", server, err)
	}
	defer c.Close()
	t, err := c.Login(ctx, user, password)
	if err != nil {
		return err
	}
	sess := &savedSession{
		Server:   server,
		Ticket:   t.Ticket,
		CSRF:     t.CSRFToken,
		Username: t.Username,
		Expires:  t.Expires,
		CA:       string(caPEM),
	}
	if sess.Username == "" {
		sess.Username = user
	}
	if err := a.saveSession(sess); err != nil {
		return err
	}
	msg := fmt.Sprintf("Logged in to %s as %s", server, sess.Username)
	if !t.Expires.IsZero() {
		msg += fmt.Sprintf("; ticket valid until %s", t.Expires.Local().Format(time.RFC3339))
	}
	fmt.Fprintln(a.stdout, msg+".")
	return nil
}

// loginCA decides which CA the login (and the saved session) trusts:
// --ca-file; else the CA pinned by an earlier login to the same server, so
// that a changed certificate is noticed rather than silently re-trusted;
// else, for https, whatever the server presents now (trust on first use).
func (a *cliApp) loginCA(cmd *cobra.Command, server string, old *savedSession) ([]byte, error) {
	if a.caFile != "" {
		data, err := os.ReadFile(a.caFile)
		if err != nil {
			return nil, fmt.Errorf("read --ca-file: %w", err)
		}
		if !containsCert(data) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate found", a.caFile)
		}
		return data, nil
	}
	if !strings.HasPrefix(server, "https://") {
		return nil, nil
	}
	if old != nil && old.Server == server && old.CA != "" {
		return []byte(old.CA), nil
	}
	cert, err := client.FetchServerCA(cmd.Context(), server)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(a.stderr, "Trusting the certificate of %s on first use:\n  subject: %s\n  SHA-256 fingerprint: %s\n",
		server, cert.Subject.String(), client.Fingerprint(cert))
	return client.EncodeCertPEM(cert), nil
}

func containsCert(data []byte) bool {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return false
		}
		if block.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(block.Bytes); err == nil {
				return true
			}
		}
	}
}

func (a *cliApp) newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the saved session",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			had, err := a.removeSession()
			if err != nil {
				return err
			}
			if had {
				fmt.Fprintln(a.stdout, "Logged out.")
			} else {
				fmt.Fprintln(a.stdout, "Not logged in.")
			}
			return nil
		},
	}
}

// stdinIsTerminal reports whether standard input is an interactive
// terminal, in which case secrets are prompted for without echo.
func (a *cliApp) stdinIsTerminal() bool {
	f, ok := a.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// readSecret prompts for a secret without echo on a terminal, or reads the
// first line of standard input otherwise (always with fromStdin).
func (a *cliApp) readSecret(prompt string, fromStdin bool) (string, error) {
	if !fromStdin && a.stdinIsTerminal() {
		fmt.Fprint(a.stderr, prompt)
		b, err := term.ReadPassword(int(a.stdin.(*os.File).Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", err
		}
		if len(b) == 0 {
			return "", errors.New("empty password")
		}
		return string(b), nil
	}
	line, err := readLine(a.stdin)
	if err != nil {
		return "", err
	}
	if line == "" {
		return "", errors.New("empty password on standard input")
	}
	return line, nil
}

// readLine reads one line without buffering beyond it, so nothing that
// follows on standard input is swallowed. The line ending is removed.
func readLine(r io.Reader) (string, error) {
	var buf bytes.Buffer
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			buf.WriteByte(b[0])
			if buf.Len() > 64<<10 {
				return "", errors.New("line too long")
			}
		}
		if errors.Is(err, io.EOF) {
			if buf.Len() == 0 {
				return "", errors.New("no input")
			}
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimSuffix(buf.String(), "\r"), nil
}
