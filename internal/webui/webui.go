// Package webui serves the web UI: the Vite build of web/ embedded into the
// binary, so every node serves the same UI as its API. Hashed assets are
// cached for a year; index.html is revalidated on every load so a new
// binary's UI is picked up at once. Unknown paths outside /api/ get
// index.html (the UI routes on the client), except paths that look like
// files, which get a 404 so a missing chunk never parses as HTML.
package webui

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var dist embed.FS

// Handler serves the embedded UI.
var Handler http.Handler = newHandler(mustSub(dist, "dist"))

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}

// notBuilt is served when the binary was built without `make build`
// (a plain `go build`), so the API still works and the reason is clear.
const notBuilt = `<!doctype html><meta charset="utf-8"><title>corral</title>
<p>The corral web UI is not part of this binary: build it with <code>make build</code>.
The API is at <a href="/api/v1/docs">/api/v1/docs</a>.</p>`

// csp keeps the UI to its own origin. Mantine injects style elements, so
// inline styles are allowed; scripts are not.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
	"font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

type handler struct {
	fsys  fs.FS
	index []byte // nil when the UI was not built
	mu    sync.Mutex
	gz    map[string][]byte // compressed text assets, made on first request
}

func newHandler(fsys fs.FS) *handler {
	h := &handler{fsys: fsys, gz: map[string][]byte{}}
	if b, err := fs.ReadFile(fsys, "index.html"); err == nil {
		h.index = b
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name != "" && name != "index.html" {
		// Dot files (the .gitkeep that keeps dist/ in git) are not part of the UI.
		if b, err := fs.ReadFile(h.fsys, name); err == nil && !strings.HasPrefix(path.Base(name), ".") {
			if strings.HasPrefix(name, "assets/") {
				// Vite puts a content hash in every asset name.
				hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
			} else {
				hdr.Set("Cache-Control", "no-cache")
			}
			h.serve(w, r, name, b)
			return
		}
		if path.Ext(name) != "" {
			hdr.Set("Cache-Control", "no-cache")
			http.NotFound(w, r)
			return
		}
	}
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Content-Security-Policy", csp)
	hdr.Set("X-Frame-Options", "DENY")
	if h.index == nil {
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(notBuilt))
		return
	}
	h.serve(w, r, "index.html", h.index)
}

// serve writes one file, gzip-compressed when the client accepts it and
// the type is text (the JS bundle shrinks to a third).
func (h *handler) serve(w http.ResponseWriter, r *http.Request, name string, b []byte) {
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = http.DetectContentType(b)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ctype)
	hdr.Add("Vary", "Accept-Encoding")
	if compressible(ctype) && len(b) > 1024 && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		hdr.Set("Content-Encoding", "gzip")
		b = h.gzipped(name, b)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

func compressible(ctype string) bool {
	for _, p := range []string{"text/", "application/javascript", "text/javascript", "application/json", "image/svg+xml", "application/wasm"} {
		if strings.HasPrefix(ctype, p) {
			return true
		}
	}
	return false
}

func (h *handler) gzipped(name string, b []byte) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if z, ok := h.gz[name]; ok {
		return z
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	h.gz[name] = buf.Bytes()
	return h.gz[name]
}
