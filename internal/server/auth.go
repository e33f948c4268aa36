package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/access"
)

// CookieName is the session cookie holding a ticket.
const CookieName = "CorralAuth"

// Caller is the authenticated identity of a request.
type Caller struct {
	access.Principal
	Ev     *access.Evaluator
	Remote string
	Ticket string // set when authenticated by ticket
}

type callerKey struct{}

// caller returns the request's caller; nil only on public operations.
func caller(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

type peerKey struct{}

type remoteKey struct{}

// PeerUID is stored in a unix-socket connection's context by ConnContext.
type PeerUID struct{ UID uint32 }

// WithPeer marks a context as coming from a local unix-socket peer.
func WithPeer(ctx context.Context, uid uint32) context.Context {
	return context.WithValue(ctx, peerKey{}, PeerUID{UID: uid})
}

func remoteIP(ctx huma.Context) string {
	if _, ok := ctx.Context().Value(peerKey{}).(PeerUID); ok {
		return "unix"
	}
	host, _, err := net.SplitHostPort(ctx.RemoteAddr())
	if err != nil {
		return ctx.RemoteAddr()
	}
	return host
}

// rootEntries make local root a superuser, as root@pam is on Proxmox.
var rootEntries = []api.ACLEntry{{Path: "/", User: "root@pam", Role: access.RoleAdministrator, Propagate: true}}

// authenticate resolves the caller from, in order: the unix socket peer,
// an API token, a bearer ticket, or the session cookie (which also needs
// a CSRF header on mutating requests). It never rejects by itself unless
// a credential is present but bad; authorize decides what anonymous
// callers may do.
func (s *Server) authenticate(ctx huma.Context, next func(huma.Context)) {
	remote := remoteIP(ctx)
	var c *Caller
	fail := func(status int, msg string) {
		huma.WriteErr(s.api, ctx, status, msg)
	}
	authz := ctx.Header("Authorization")
	switch {
	case ctx.Context().Value(peerKey{}) != nil:
		if p := ctx.Context().Value(peerKey{}).(PeerUID); p.UID == 0 {
			pr := access.Principal{User: "root@pam"}
			c = &Caller{Principal: pr, Ev: access.NewEvaluator(rootEntries, access.BuiltinRole, pr, nil), Remote: remote}
		}
	case strings.HasPrefix(authz, "CorralToken "):
		idsec := strings.TrimPrefix(authz, "CorralToken ")
		i := strings.LastIndex(idsec, "=")
		if i < 0 {
			fail(401, "malformed API token header: want CorralToken user@realm!name=secret")
			return
		}
		p, err := s.Access.VerifyToken(idsec[:i], idsec[i+1:])
		if err != nil {
			fail(401, "invalid API token")
			return
		}
		c = &Caller{Principal: p, Remote: remote}
	case strings.HasPrefix(authz, "Bearer "):
		t := strings.TrimPrefix(authz, "Bearer ")
		user, _, err := s.Access.Tickets.Verify(t)
		if err != nil || s.Access.CheckUser(user) != nil {
			fail(401, "invalid or expired ticket")
			return
		}
		c = &Caller{Principal: access.Principal{User: user}, Remote: remote, Ticket: t}
	case authz != "":
		fail(401, "unsupported Authorization scheme (use Bearer or CorralToken)")
		return
	default:
		if ck, err := huma.ReadCookie(ctx, CookieName); err == nil && ck.Value != "" {
			user, _, err := s.Access.Tickets.Verify(ck.Value)
			if err != nil || s.Access.CheckUser(user) != nil {
				// A stale cookie on a public endpoint (like login) is harmless.
				if perm, _ := ctx.Operation().Metadata[permKey].(Perm); !perm.Public {
					fail(401, "invalid or expired ticket")
					return
				}
				break
			}
			if m := ctx.Method(); m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions {
				if !s.Access.Tickets.CheckCSRF(ck.Value, ctx.Header("X-CSRF-Token")) {
					fail(401, "missing or wrong X-CSRF-Token header (required with cookie authentication)")
					return
				}
			}
			c = &Caller{Principal: access.Principal{User: user}, Remote: remote, Ticket: ck.Value}
		}
	}
	if c != nil && c.Ev == nil {
		c.Ev = s.Access.Evaluator(c.Principal)
	}
	if c != nil {
		ctx = huma.WithValue(ctx, callerKey{}, c)
	}
	next(huma.WithValue(ctx, remoteKey{}, remote))
}

// authorize enforces the operation's Perm. Deny by default: an operation
// without a rule never reaches its handler.
func (s *Server) authorize(ctx huma.Context, next func(huma.Context)) {
	perm, ok := ctx.Operation().Metadata[permKey].(Perm)
	if !ok {
		huma.WriteErr(s.api, ctx, 403, "operation has no access rule")
		return
	}
	if perm.Public {
		next(ctx)
		return
	}
	c := caller(ctx.Context())
	if c == nil {
		huma.WriteErr(s.api, ctx, 401, "authentication required")
		return
	}
	if perm.Authenticated {
		next(ctx)
		return
	}
	path := perm.Path
	for _, p := range ctx.Operation().Parameters {
		if p.In == "path" {
			path = strings.ReplaceAll(path, "{"+p.Name+"}", ctx.Param(p.Name))
		}
	}
	allowed := c.Ev.Has(path, perm.Privs...)
	if perm.Any {
		allowed = c.Ev.Any(path, perm.Privs...)
	}
	if !allowed {
		huma.WriteErr(s.api, ctx, 403, "permission denied: "+strings.Join(perm.Privs, anyOr(perm.Any))+" required on "+path)
		return
	}
	next(ctx)
}

// audit records every mutating request: who, what, when, from where, result.
func (s *Server) audit(ctx huma.Context, next func(huma.Context)) {
	m := ctx.Method()
	if m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || s.Audit == nil {
		next(ctx)
		return
	}
	start := time.Now()
	next(ctx)
	who := "anonymous"
	if c := caller(ctx.Context()); c != nil {
		who = c.String()
	}
	u := ctx.URL()
	rec := map[string]any{
		"time": start.UTC().Format(time.RFC3339Nano), "node": s.Node, "user": who, "remote": remoteIP(ctx),
		"method": m, "path": u.Path, "operation": ctx.Operation().OperationID, "status": ctx.Status(),
		"ms": time.Since(start).Milliseconds(),
	}
	line, _ := json.Marshal(rec)
	s.auditMu.Lock()
	s.Audit.Write(append(line, '\n'))
	s.auditMu.Unlock()
}
