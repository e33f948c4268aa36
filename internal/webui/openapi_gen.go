//go:build ignore

// openapi_gen writes the daemon's OpenAPI document to stdout, for the web
// UI's generated TypeScript types (make web-api).
package main

import (
	"os"

	"github.com/corral-project/corral/internal/server"
)

func main() {
	doc, err := server.Document()
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.Write(append(doc, '\n'))
}
