package server

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// The UI is served for every path outside /api/; the API keeps its own
// answers (JSON, problem+json 404s) under /api/.
func TestUIAndAPIPaths(t *testing.T) {
	s := New(Deps{Version: "test"})
	for _, tt := range []struct {
		path   string
		status int
		html   bool
	}{
		{"/", 200, true},
		{"/qemu/100/console", 200, true},
		{"/api/v1/openapi.json", 200, false},
		{"/api/v1/no-such-thing", 404, false}, // never the UI's index.html
	} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		html := strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html")
		if rec.Code != tt.status || html != tt.html {
			t.Errorf("%s: status %d, html %v; want %d, %v", tt.path, rec.Code, html, tt.status, tt.html)
		}
	}
}
