//go:build ignore

// openapi_gen writes the daemon's OpenAPI document to stdout, for the web
// UI's generated TypeScript types (make web-api). It builds the server's
// routes without starting anything.
package main

import (
	"encoding/json"
	"os"

	"github.com/corral-project/corral/internal/lxc"
	"github.com/corral-project/corral/internal/network/stack"
	"github.com/corral-project/corral/internal/server"
)

func main() {
	doc := server.New(server.Deps{Version: "dev",
		// Empty managers: only their presence matters, so the optional
		// endpoints (containers, network, firewall) are in the document.
		CTs: &lxc.Manager{}, Net: &stack.Stack{}}).OpenAPI()
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
