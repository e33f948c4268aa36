package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// DefaultPort is the port corral's API listens on, as Proxmox VE's does.
const DefaultPort = "8006"

// NormalizeServer brings a server address into one canonical form so that
// two spellings of the same node compare equal (the CLI uses this to decide
// whether a saved session belongs to --server). It fills in https and port
// 8006, drops a trailing "/" or "/api/v1", lower-cases the host, and makes
// unix socket paths absolute.
func NormalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("no server given")
	}
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		rest = strings.TrimPrefix(rest, "//")
		if rest == "" {
			return "", fmt.Errorf("server %q: empty socket path", s)
		}
		abs, err := filepath.Abs(rest)
		if err != nil {
			return "", fmt.Errorf("server %q: %w", s, err)
		}
		return "unix://" + abs, nil
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid server %q: %w", s, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", fmt.Errorf("invalid server %q: scheme must be https, http or unix", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("invalid server %q: no host", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invalid server %q: only scheme, host and port are allowed", s)
	}
	path := strings.TrimRight(u.Path, "/")
	path = strings.TrimSuffix(path, "/api/v1")
	if path != "" {
		return "", fmt.Errorf("invalid server %q: unexpected path %q", s, u.Path)
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		if scheme == "https" {
			port = DefaultPort
		} else {
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// FetchServerCA connects to an https server without verifying it and
// returns the last certificate of the chain it presents, which is the
// cluster CA when the server sends its full chain. It is the
// trust-on-first-use step: the caller shows the fingerprint to the user and
// pins the certificate for every later connection.
func FetchServerCA(ctx context.Context, server string) (*x509.Certificate, error) {
	norm, err := NormalizeServer(server)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(norm, "https://") {
		return nil, fmt.Errorf("server %s does not use TLS", norm)
	}
	hostport := strings.TrimPrefix(norm, "https://")
	host, _, _ := net.SplitHostPort(hostport)
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config: &tls.Config{
			ServerName:         host,
			InsecureSkipVerify: true, // trust on first use: we only read the chain
			MinVersion:         tls.VersionTLS12,
		},
	}
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("fetch certificate of %s: %w", norm, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("fetch certificate of %s: server sent no certificate", norm)
	}
	return certs[len(certs)-1], nil
}

// Fingerprint is the SHA-256 of the certificate's DER encoding as colon
// separated upper-case hex, the form Proxmox VE and browsers display.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// EncodeCertPEM returns the certificate in PEM form.
func EncodeCertPEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}
