package server

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/danielgtaylor/huma/v2"
)

// Every operation the daemon serves carries an access rule: deny by default
// is only as good as the router's refusal to serve rule-less operations.
func TestEveryOperationHasAccessRule(t *testing.T) {
	s := New(documentDeps()) // every optional subsystem present: all routes
	n := 0
	for path, item := range s.OpenAPI().Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if op == nil {
				continue
			}
			perm, ok := op.Metadata[permKey].(Perm)
			if !ok || !perm.valid() {
				t.Errorf("%s %s has no valid access rule", op.Method, path)
			}
			n++
		}
	}
	if n < 150 {
		t.Fatalf("only %d operations registered", n)
	}
}

func TestRegisterRefusesMissingRule(t *testing.T) {
	s := New(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, p := range []Perm{{}, {Privs: []string{"Sys.Audit"}}, {Public: true, Authenticated: true}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("register accepted rule %+v", p)
				}
			}()
			register(s, huma.Operation{OperationID: "x", Method: "GET", Path: "/x"}, p,
				func(ctx context.Context, _ *struct{}) (*struct{}, error) { return nil, nil })
		}()
	}
}
