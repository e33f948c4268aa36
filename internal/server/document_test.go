package server

import (
	"bytes"
	"os"
	"testing"
)

// The UI's API types are generated from web/openapi.json; a route or type
// changed without `make web-api` would leave the UI compiling against an
// API that no longer exists.
func TestCommittedOpenAPIIsCurrent(t *testing.T) {
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../web/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(committed), bytes.TrimSpace(doc)) {
		t.Fatal("web/openapi.json differs from the server's document: run `make web-api` and commit the result")
	}
}
