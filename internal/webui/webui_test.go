package webui

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestHandler(t *testing.T) {
	big := strings.Repeat("console.log('corral');\n", 200)
	h := newHandler(fstest.MapFS{
		"index.html":           {Data: []byte("<!doctype html><title>corral</title>")},
		"assets/index-abc.js":  {Data: []byte(big)},
		"assets/logo-def.png":  {Data: []byte("\x89PNG\r\n\x1a\n")},
		"robots.txt":           {Data: []byte("User-agent: *\n")},
		".gitkeep":             {Data: nil},
		"assets/small-123.css": {Data: []byte("body{}")},
	})
	tests := []struct {
		name, method, path, gzip string
		status                   int
		body, cache, ctype       string
		csp                      bool
	}{
		{"index", "GET", "/", "", 200, "<title>corral", "no-cache", "text/html", true},
		{"client route falls back to index", "GET", "/qemu/100/console", "", 200, "<title>corral", "no-cache", "text/html", true},
		{"index.html itself", "GET", "/index.html", "", 200, "<title>corral", "no-cache", "text/html", true},
		{"hashed asset is immutable", "GET", "/assets/index-abc.js", "", 200, "console.log", "public, max-age=31536000, immutable", "text/javascript", false},
		{"unhashed file revalidates", "GET", "/robots.txt", "", 200, "User-agent", "no-cache", "text/plain", false},
		{"missing asset is a 404, not index.html", "GET", "/assets/gone-999.js", "", 404, "404", "no-cache", "text/plain", false},
		{"missing file with extension is a 404", "GET", "/favicon.ico", "", 404, "404", "no-cache", "text/plain", false},
		{"dot files are not served", "GET", "/.gitkeep", "", 404, "404", "no-cache", "text/plain", false},
		{"path traversal stays inside", "GET", "/../../etc/passwd", "", 200, "<title>corral", "no-cache", "text/html", true},
		{"HEAD works", "HEAD", "/assets/index-abc.js", "", 200, "", "public, max-age=31536000, immutable", "text/javascript", false},
		{"POST is refused", "POST", "/", "", 405, "method not allowed", "", "text/plain", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			if !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("body %q does not contain %q", rec.Body.String(), tt.body)
			}
			if got := rec.Header().Get("Cache-Control"); got != tt.cache {
				t.Errorf("Cache-Control %q, want %q", got, tt.cache)
			}
			if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, tt.ctype) {
				t.Errorf("Content-Type %q, want %s", got, tt.ctype)
			}
			if got := rec.Header().Get("Content-Security-Policy") != ""; got != tt.csp {
				t.Errorf("CSP present %v, want %v", got, tt.csp)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff header")
			}
		})
	}
}

func TestGzip(t *testing.T) {
	big := strings.Repeat("export const a = 1;\n", 500)
	h := newHandler(fstest.MapFS{"index.html": {Data: []byte("x")}, "assets/a-1.js": {Data: []byte(big)}, "assets/b-2.css": {Data: []byte("a{}")}})
	for _, tt := range []struct {
		path, accept string
		gz           bool
	}{
		{"/assets/a-1.js", "gzip, deflate, br", true},
		{"/assets/a-1.js", "", false},
		{"/assets/b-2.css", "gzip", false}, // too small to be worth it
	} {
		req := httptest.NewRequest("GET", tt.path, nil)
		req.Header.Set("Accept-Encoding", tt.accept)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Header().Get("Content-Encoding") == "gzip"; got != tt.gz {
			t.Fatalf("%s with %q: gzip %v, want %v", tt.path, tt.accept, got, tt.gz)
		}
		if !tt.gz {
			continue
		}
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(zr)
		if string(b) != big {
			t.Fatal("gzip body does not decode to the file")
		}
		if rec.Header().Get("Vary") != "Accept-Encoding" {
			t.Error("no Vary: Accept-Encoding")
		}
	}
}

func TestNotBuilt(t *testing.T) {
	h := newHandler(fstest.MapFS{".gitkeep": {Data: nil}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "make build") {
		t.Fatalf("%d %q", rec.Code, rec.Body.String())
	}
}
