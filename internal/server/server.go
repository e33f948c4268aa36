// Package server is corral's HTTP layer: the huma API on a net/http mux,
// authentication and authorization middleware, audit logging, and the
// handlers, one file per resource. Handlers are thin: they check input the
// schema can't express, call a domain package, and map its errors.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/access"
	"github.com/corral-project/corral/internal/cluster"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/events"
	"github.com/corral-project/corral/internal/guest"
	"github.com/corral-project/corral/internal/lxc"
	"github.com/corral-project/corral/internal/metrics"
	"github.com/corral-project/corral/internal/network/stack"
	"github.com/corral-project/corral/internal/qemu"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/store"
	"github.com/corral-project/corral/internal/task"
	"github.com/corral-project/corral/internal/webui"
)

// Deps is everything the handlers use.
type Deps struct {
	Node       string
	Version    string
	Commit     string
	Store      *store.Store
	Access     *access.Service
	Tasks      *task.Manager
	Nodes      *cluster.Nodes
	Guests     *guest.Registry
	Storage    *storage.Service
	VMs        *qemu.Manager
	CTs        *lxc.Manager // nil when the node has no LXC
	Net        *stack.Stack // the node's network layer; nil disables its endpoints
	NodeStatus func(ctx context.Context) (api.NodeStatus, error)
	Events     *events.Hub // the event stream; nil disables GET /events
	Metrics    *metrics.Service
	// MetricServers are the external metric server definitions.
	MetricServers *metrics.Servers
	Audit         io.Writer
	Log           *slog.Logger
}

// Server is the HTTP handler of one node.
type Server struct {
	Deps
	api     huma.API
	mux     *http.ServeMux
	auditMu sync.Mutex

	vncMu      sync.Mutex
	vncTickets map[string]vncTicket
}

// New builds the API and registers every endpoint.
func New(d Deps) *Server {
	s := &Server{Deps: d, mux: http.NewServeMux()}
	cfg := huma.DefaultConfig("corral API", d.Version)
	cfg.Info.Description = "corral: KVM virtual machines and LXC containers on a cluster of Linux hosts."
	cfg.OpenAPIPath = "/api/v1/openapi"
	cfg.DocsPath = "/api/v1/docs"
	cfg.SchemasPath = "/api/v1/schemas"
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"ticket": {Type: "http", Scheme: "bearer", Description: "ticket from POST /access/ticket"},
		"token":  {Type: "apiKey", In: "header", Name: "Authorization", Description: "CorralToken user@realm!name=secret"},
	}
	cfg.Security = []map[string][]string{{"ticket": {}}, {"token": {}}}
	cfg.Servers = []*huma.Server{{URL: "https://{node}:8006", Description: "any node of the cluster",
		Variables: map[string]*huma.ServerVariable{"node": {Default: "localhost", Description: "a node's name or address"}}}}
	s.api = humago.New(s.mux, cfg)
	s.api.UseMiddleware(s.authenticate, s.audit, s.authorize, s.streamBody)
	s.routes()
	return s
}

// ServeHTTP serves the API. `?follow=1` on a task log is routed to the
// streaming operation so clients can use either form.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/v1/tasks/") && strings.HasSuffix(r.URL.Path, "/log") {
		if f := r.URL.Query().Get("follow"); f == "1" || f == "true" {
			r.URL.Path += "/follow"
			r.URL.RawPath = ""
		}
	}
	if r.URL.Path == "/metrics" { // where Prometheus looks by default
		r.URL.Path, r.URL.RawPath = "/api/v1/metrics", ""
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		webui.Handler.ServeHTTP(w, r) // the web UI: everything outside /api/
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// OpenAPI exposes the generated document (for tests and tooling).
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }

// Perm is the access rule of one operation. Exactly one of Public,
// Authenticated or Privs must be set: registration panics otherwise, so no
// endpoint can be added without deciding who may call it.
type Perm struct {
	Public        bool     // no authentication at all
	Authenticated bool     // any authenticated caller; the handler checks further
	Path          string   // ACL path, may contain {param} from the URL path
	Privs         []string // required on Path
	Any           bool     // any of Privs suffices instead of all
}

func (p Perm) valid() bool {
	n := 0
	if p.Public {
		n++
	}
	if p.Authenticated {
		n++
	}
	if len(p.Privs) > 0 {
		n++
		if p.Path == "" {
			return false
		}
	}
	return n == 1
}

const permKey = "corral-perm"

// permDoc is an access rule as published in the OpenAPI document, for
// clients and for the authorization matrix test.
type permDoc struct {
	Rule  string   `json:"rule" enum:"public,authenticated,privileges"`
	Path  string   `json:"path,omitempty"`
	Privs []string `json:"privs,omitempty"`
	Any   bool     `json:"any,omitempty"`
}

func (p Perm) doc() permDoc {
	switch {
	case p.Public:
		return permDoc{Rule: "public"}
	case p.Authenticated:
		return permDoc{Rule: "authenticated"}
	}
	return permDoc{Rule: "privileges", Path: p.Path, Privs: p.Privs, Any: p.Any}
}

// register adds an operation with its access rule and maps domain errors.
func register[I, O any](s *Server, op huma.Operation, perm Perm, h func(context.Context, *I) (*O, error)) {
	if !perm.valid() {
		panic(fmt.Sprintf("server: operation %s %s has no valid access rule", op.Method, op.Path))
	}
	op.Path = "/api/v1" + op.Path
	if op.Metadata == nil {
		op.Metadata = map[string]any{}
	}
	op.Metadata[permKey] = perm
	if op.Extensions == nil {
		op.Extensions = map[string]any{}
	}
	op.Extensions["x-corral-access"] = perm.doc()
	if perm.Public {
		op.Security = []map[string][]string{}
	}
	if len(perm.Privs) > 0 {
		op.Description = strings.TrimSpace(op.Description + fmt.Sprintf("\n\nRequires %s on `%s`.", strings.Join(perm.Privs, anyOr(perm.Any)), perm.Path))
	}
	if op.DefaultStatus == 0 && op.Method == http.MethodPost {
		op.DefaultStatus = http.StatusOK
	}
	if op.Errors == nil {
		op.Errors = problemStatuses[I](op, perm)
	}
	huma.Register(s.api, op, func(ctx context.Context, in *I) (*O, error) {
		out, err := h(ctx, in)
		if err != nil {
			return nil, s.problem(err)
		}
		return out, nil
	})
}

// problemStatuses lists the problem responses an operation can give, so
// the OpenAPI document tells generated clients the problem+json shape of
// each (huma adds 422 for operations with input and 500 to every one).
func problemStatuses[I any](op huma.Operation, perm Perm) []int {
	var st []int
	if !perm.Public {
		st = append(st, http.StatusUnauthorized, http.StatusForbidden)
	}
	if strings.Contains(op.Path, "{") {
		st = append(st, http.StatusNotFound)
	}
	if op.Method != http.MethodGet {
		// 409: a lock or a concurrent change; 503: the store can't take writes.
		st = append(st, http.StatusConflict, http.StatusServiceUnavailable)
	}
	if hasIfMatch(reflect.TypeFor[I]()) {
		st = append(st, http.StatusPreconditionFailed)
	}
	return st
}

// hasIfMatch reports whether an input type takes the If-Match header.
func hasIfMatch(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if strings.EqualFold(f.Tag.Get("header"), "If-Match") || (f.Anonymous && hasIfMatch(f.Type)) {
			return true
		}
	}
	return false
}

func anyOr(any bool) string {
	if any {
		return " or "
	}
	return " and "
}

// problem maps a domain error to an API problem. Unclassified errors are
// logged in full and reported as 500 without internals.
func (s *Server) problem(err error) error {
	var se huma.StatusError
	if errors.As(err, &se) {
		return err
	}
	var e *errs.Error
	if errors.As(err, &e) {
		status := map[errs.Kind]int{
			errs.KindInvalid: 422, errs.KindNotFound: 404, errs.KindConflict: 409, errs.KindPrecondition: 412,
			errs.KindForbidden: 403, errs.KindTooMany: 429, errs.KindUnauthorized: 401,
			errs.KindNoSpace: 507, errs.KindBackend: 500,
		}[e.Kind]
		p := &api.Problem{Status: status, Title: http.StatusText(status), Detail: e.Msg}
		for _, f := range e.Fields {
			p.Errors = append(p.Errors, api.FieldError{Field: f.Field, Message: f.Message})
		}
		return p
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return newProblem(404, "object does not exist")
	case errors.Is(err, store.ErrConflict):
		return newProblem(409, "the object was changed concurrently; retry")
	case errors.Is(err, context.DeadlineExceeded):
		return newProblem(504, err.Error())
	}
	s.Log.Error("internal error", "err", err)
	return newProblem(500, "internal error; see the node's log")
}

func newProblem(status int, detail string) *api.Problem {
	return &api.Problem{Status: status, Title: http.StatusText(status), Detail: detail}
}

func init() {
	// Every error the framework itself produces (bad JSON, schema
	// violations) becomes an api.Problem with field names, like ours.
	huma.NewError = func(status int, msg string, errList ...error) huma.StatusError {
		p := &api.Problem{Status: status, Title: http.StatusText(status), Detail: msg}
		for _, e := range errList {
			if e == nil {
				continue
			}
			var d huma.ErrorDetailer
			if errors.As(e, &d) {
				det := d.ErrorDetail()
				p.Errors = append(p.Errors, api.FieldError{Field: fieldName(det.Location), Message: det.Message})
			} else {
				p.Errors = append(p.Errors, api.FieldError{Message: e.Error()})
			}
		}
		return p
	}
}

// fieldName turns huma's "body.entries[0].path" into "entries[0].path".
func fieldName(loc string) string {
	for _, pre := range []string{"body.", "query.", "path.", "header."} {
		if strings.HasPrefix(loc, pre) {
			return loc[len(pre):]
		}
	}
	if loc == "body" {
		return ""
	}
	return loc
}

// etag quotes a digest for the ETag header.
func etag(d string) string { return `"` + d + `"` }

// ifMatch strips quotes (and a weak prefix) from an If-Match value.
func ifMatch(v string) string {
	v = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "W/"))
	if v == "*" {
		return ""
	}
	return strings.Trim(v, `"`)
}

func now() time.Time { return time.Now().UTC() }
