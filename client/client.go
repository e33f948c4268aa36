// Package client is the Go client of corral's REST API (/api/v1).
//
// It is what the corral CLI uses, and it is meant to be usable by anyone
// scripting a cluster: every endpoint listed in docs/api.md has a typed
// helper, and Do reaches any other path. Errors returned by the server are
// *api.Problem values, so callers can use errors.As to read the status and
// field errors.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/corral-project/corral/api"
)

// DefaultTimeout bounds one ordinary request when Options.Timeout is zero.
// Streaming requests (FollowTaskLog) are bounded by their context only,
// because a task log may legitimately stay open for hours.
const DefaultTimeout = 60 * time.Second

// maxResponseBytes caps how much of a response body is read into memory, so a
// misbehaving server cannot exhaust the client's memory.
const maxResponseBytes = 64 << 20

// unixHost is the placeholder host name used in URLs for unix-socket
// servers; the transport ignores it and dials the socket.
const unixHost = "corral"

// Options configures a Client. Server is required; at most one of Ticket and
// Token should be set (Token wins if both are).
type Options struct {
	// Server is the node to talk to: "https://host:8006", "host" (https and
	// port 8006 are implied) or "unix:///run/corral/corral.sock".
	Server string
	// Ticket is a session ticket from Login, sent as "Authorization: Bearer".
	Ticket string
	// CSRF is the ticket's CSRF token. Bearer authentication does not need
	// it, but it is sent on modifying requests when set so that a server
	// configured to demand it is satisfied.
	CSRF string
	// Token is an API token in the form "user@realm!name=secret".
	Token string
	// CACertPEM, when set, is the only trust anchor for the server's TLS
	// certificate (typically the cluster CA from <data-dir>/pki/ca.crt or a
	// certificate pinned at login). When empty the system roots are used.
	CACertPEM []byte
	// Insecure skips TLS verification entirely. Only meant for first
	// contact, before the cluster CA is known.
	Insecure bool
	// Timeout bounds each non-streaming request; zero means DefaultTimeout
	// and a negative value disables the bound.
	Timeout time.Duration
	// UserAgent overrides the User-Agent header.
	UserAgent string
}

// Client talks to one corral node. It is safe for concurrent use.
type Client struct {
	server    string // normalized server address
	base      string // URL prefix up to and including /api/v1
	hc        *http.Client
	timeout   time.Duration
	userAgent string

	mu     sync.RWMutex
	ticket string
	csrf   string
	token  string
}

// RequestOption adjusts one outgoing request, e.g. to add If-Match.
type RequestOption func(*http.Request)

// WithIfMatch makes an update conditional on the object's digest, so a
// concurrent change is reported as 412 instead of silently overwritten.
func WithIfMatch(digest string) RequestOption {
	return func(r *http.Request) {
		if digest != "" {
			r.Header.Set("If-Match", digest)
		}
	}
}

// WithHeader sets an arbitrary request header.
func WithHeader(key, value string) RequestOption {
	return func(r *http.Request) { r.Header.Set(key, value) }
}

// withoutAuth drops the credentials from a request. Login uses it so that a
// stale ticket lingering in the client cannot make the server reject an
// otherwise valid password login.
func withoutAuth() RequestOption {
	return func(r *http.Request) {
		r.Header.Del("Authorization")
		r.Header.Del("X-CSRF-Token")
	}
}

// New builds a Client. It does not contact the server.
func New(opts Options) (*Client, error) {
	server, err := NormalizeServer(opts.Server)
	if err != nil {
		return nil, err
	}
	if opts.Token != "" && !strings.Contains(opts.Token, "=") {
		return nil, errors.New("invalid API token: want user@realm!name=secret")
	}
	c := &Client{
		server:    server,
		timeout:   opts.Timeout,
		userAgent: opts.UserAgent,
		ticket:    opts.Ticket,
		csrf:      opts.CSRF,
		token:     opts.Token,
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.userAgent == "" {
		c.userAgent = "corral-client/" + api.Version
	}

	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	var transport *http.Transport
	if sock, ok := strings.CutPrefix(server, "unix://"); ok {
		transport = &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, "unix", sock)
			},
			MaxIdleConns:    4,
			IdleConnTimeout: 30 * time.Second,
		}
		c.base = "http://" + unixHost + "/api/" + api.Version
	} else {
		tlsConf, err := tlsConfig(opts.CACertPEM, opts.Insecure)
		if err != nil {
			return nil, err
		}
		transport = http.DefaultTransport.(*http.Transport).Clone()
		transport.DialContext = dialer.DialContext
		transport.TLSClientConfig = tlsConf
		transport.TLSHandshakeTimeout = 10 * time.Second
		c.base = server + "/api/" + api.Version
	}
	// No http.Client.Timeout: it would also cut streaming responses. Each
	// ordinary request gets a context deadline instead (see Do).
	c.hc = &http.Client{Transport: transport}
	return c, nil
}

func tlsConfig(caPEM []byte, insecure bool) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if insecure {
		conf.InsecureSkipVerify = true // explicitly requested for first contact
		return conf, nil
	}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("CA certificate: no PEM certificate found")
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// Server returns the normalized server address the client talks to.
func (c *Client) Server() string { return c.server }

// SetTicket replaces the session credentials, e.g. after a renewal done
// elsewhere. It clears nothing else: a configured API token still wins.
func (c *Client) SetTicket(ticket, csrf string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ticket, c.csrf = ticket, csrf
}

// Ticket returns the current session ticket and CSRF token.
func (c *Client) Ticket() (ticket, csrf string) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ticket, c.csrf
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends one request to path (relative to /api/v1, e.g. "/access/users";
// it must already be escaped, see PathJoin) and decodes a JSON response into
// out when out is non-nil and the response has a body. body is JSON-encoded
// unless it is nil, []byte, json.RawMessage or an io.Reader.
//
// A non-2xx response is returned as an *api.Problem error (together with the
// response). The returned response's body has already been read and closed;
// it is replaced by an in-memory copy so callers may still inspect it, and
// headers such as ETag are available.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body any, out any, opts ...RequestOption) (*http.Response, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := c.newRequest(ctx, method, path, query, body, opts)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return resp, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if len(data) > maxResponseBytes {
		return resp, fmt.Errorf("%s %s: response larger than %d bytes", method, path, maxResponseBytes)
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, decodeProblem(resp.StatusCode, resp.Header.Get("Content-Type"), data)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp, fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return resp, nil
}

// stream sends a request and hands back the open response for the caller to
// consume; it applies no timeout beyond ctx. Non-2xx responses are turned
// into *api.Problem errors and closed.
func (c *Client) stream(ctx context.Context, method, path string, query url.Values, opts ...RequestOption) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, path, query, nil, opts)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, decodeProblem(resp.StatusCode, resp.Header.Get("Content-Type"), data)
	}
	return resp, nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body any, opts []RequestOption) (*http.Request, error) {
	u, err := c.url(path, query)
	if err != nil {
		return nil, err
	}
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		reader = b
	case []byte:
		reader = bytes.NewReader(b)
	case json.RawMessage:
		reader = bytes.NewReader(b)
	default:
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode request body: %w", method, path, err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, reader)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", c.userAgent)
	if reader != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.mu.RLock()
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "CorralToken "+c.token)
	case c.ticket != "":
		req.Header.Set("Authorization", "Bearer "+c.ticket)
		if c.csrf != "" && method != http.MethodGet && method != http.MethodHead {
			req.Header.Set("X-CSRF-Token", c.csrf)
		}
	}
	c.mu.RUnlock()
	for _, o := range opts {
		o(req)
	}
	return req, nil
}

// transportError describes a request that got no HTTP response. The
// *url.Error from net/http names the internal URL, which for a unix socket
// is a placeholder, so it is replaced by the server address; the cause
// stays in the chain for errors.Is/As (TLS verification, deadlines).
func (c *Client) transportError(method, path string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s %s on %s: %w", method, path, c.server, err)
}

// url joins the API base, path and query. A query string embedded in path
// (as typed on the CLI, "/tasks?limit=5") is merged with query.
func (c *Client) url(path string, query url.Values) (string, error) {
	path, rawQuery, _ := strings.Cut(path, "?")
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	// Accept full API paths too, so "/api/v1/version" works like "/version".
	if rest, ok := strings.CutPrefix(path, "/api/"+api.Version+"/"); ok {
		path = "/" + rest
	}
	q := url.Values{}
	if rawQuery != "" {
		parsed, err := url.ParseQuery(rawQuery)
		if err != nil {
			return "", fmt.Errorf("invalid query in path %q: %w", path, err)
		}
		q = parsed
	}
	for k, vs := range query {
		q[k] = append(q[k], vs...)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u, nil
}

// PathJoin builds an API path from raw segments, escaping each one. User and
// token IDs contain '@' and '!', and UPIDs contain ':', so callers must never
// paste them into a path unescaped.
func PathJoin(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// decodeProblem turns an error response into an *api.Problem. Bodies that
// are not problem documents (a proxy's HTML page, plain text) still yield a
// Problem, built from the status, so callers see one error type.
func decodeProblem(status int, contentType string, data []byte) *api.Problem {
	p := &api.Problem{}
	trimmed := bytes.TrimSpace(data)
	isJSON := strings.Contains(contentType, "json") || (len(trimmed) > 0 && trimmed[0] == '{')
	if !isJSON || json.Unmarshal(trimmed, p) != nil || (p.Title == "" && p.Status == 0 && p.Detail == "") {
		p = &api.Problem{}
		if text := strings.TrimSpace(string(trimmed)); text != "" && !strings.HasPrefix(text, "<") {
			if len(text) > 512 {
				text = text[:512] + "…"
			}
			p.Detail = text
		}
	}
	if p.Status == 0 {
		p.Status = status
	}
	if p.Title == "" {
		p.Title = http.StatusText(status)
		if p.Title == "" {
			p.Title = "HTTP error"
		}
	}
	return p
}

// StatusOf returns the HTTP status of an *api.Problem anywhere in err's
// chain, or 0 if err is not an API error.
func StatusOf(err error) int {
	var p *api.Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

// IsNotFound reports whether err is an API 404.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }
