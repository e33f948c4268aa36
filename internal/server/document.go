package server

import (
	"encoding/json"
	"io"
	"log/slog"

	"github.com/corral-project/corral/internal/lxc"
	"github.com/corral-project/corral/internal/network/stack"
)

// Document builds every route without starting anything and returns the
// OpenAPI document, indented as committed in web/openapi.json (the UI's
// generated types come from it; a test keeps the two equal).
func Document() ([]byte, error) {
	s := New(documentDeps())
	return json.MarshalIndent(s.OpenAPI(), "", "  ")
}

// documentDeps are Deps with every optional subsystem present, so the
// endpoints they gate (containers, network, firewall) are registered.
// The managers are empty: only their presence matters.
func documentDeps() Deps {
	return Deps{Version: "dev", CTs: &lxc.Manager{}, Net: &stack.Stack{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}
