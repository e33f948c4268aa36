package lxc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/task"
)

// DefaultImageServer is the simplestreams server of the LXC project.
const DefaultImageServer = "https://images.linuxcontainers.org"

// Simplestreams documents, as far as corral reads them.
type ssIndex struct {
	Index map[string]struct {
		DataType string `json:"datatype"`
		Path     string `json:"path"`
	} `json:"index"`
}

type ssItem struct {
	FType  string `json:"ftype"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Path   string `json:"path"`
}

type ssProduct struct {
	Aliases  string `json:"aliases"`
	Arch     string `json:"arch"`
	OS       string `json:"os"`
	Release  string `json:"release"`
	Variant  string `json:"variant"`
	Versions map[string]struct {
		Items map[string]ssItem `json:"items"`
	} `json:"versions"`
}

type ssProducts struct {
	Products map[string]ssProduct `json:"products"`
}

// available is one downloadable image with where to get it.
type available struct {
	api.AvailableTemplate
	aliases []string
	url     string
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._+-]+`)

// ssClient fetches simplestreams documents (small JSON, bounded).
var ssClient = &http.Client{Timeout: 60 * time.Second}

func fetchJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := ssClient.Do(req)
	if err != nil {
		return fmt.Errorf("image server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("image server: GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("image server: %s: %w", u, err)
	}
	return nil
}

func checkServer(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errs.Invalid("server", "want an http(s) URL of a simplestreams server")
	}
	return strings.TrimRight(server, "/"), nil
}

// catalog reads a simplestreams server's container images: the newest
// version of each product that has a root filesystem tarball.
func catalog(ctx context.Context, server string) ([]available, error) {
	server, err := checkServer(server)
	if err != nil {
		return nil, err
	}
	var idx ssIndex
	if err := fetchJSON(ctx, server+"/streams/v1/index.json", &idx); err != nil {
		return nil, err
	}
	var out []available
	for _, e := range idx.Index {
		if e.DataType != "image-downloads" || strings.Contains(e.Path, "..") {
			continue
		}
		var prods ssProducts
		if err := fetchJSON(ctx, server+"/"+strings.TrimLeft(e.Path, "/"), &prods); err != nil {
			return nil, err
		}
		for _, p := range prods.Products {
			var versions []string
			for v := range p.Versions {
				versions = append(versions, v)
			}
			sort.Strings(versions)
			for i := len(versions) - 1; i >= 0; i-- {
				item, ok := rootTarball(p.Versions[versions[i]].Items)
				if !ok {
					continue
				}
				osName := strings.ToLower(p.OS)
				name := osName + "/" + p.Release
				if p.Variant != "" && p.Variant != "default" {
					name += "/" + p.Variant
				}
				ext := ".tar.xz"
				for _, e := range []string{".tar.gz", ".tar.zst", ".tar.xz"} {
					if strings.HasSuffix(item.Path, e) {
						ext = e
					}
				}
				file := unsafeFileChars.ReplaceAllString(strings.Join([]string{osName, p.Release, p.Variant, p.Arch, versions[i]}, "-"), "_")
				a := available{AvailableTemplate: api.AvailableTemplate{Name: name, OS: osName, Release: p.Release, Arch: p.Arch, Variant: p.Variant,
					Version: versions[i], Size: item.Size, SHA256: item.SHA256, Filename: strings.Trim(file, "_.-") + ext},
					url: server + "/" + strings.TrimLeft(item.Path, "/")}
				for al := range strings.SplitSeq(p.Aliases, ",") {
					if al = strings.TrimSpace(al); al != "" {
						a.aliases = append(a.aliases, al)
					}
				}
				out = append(out, a)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Arch < out[j].Arch
	})
	return out, nil
}

// rootTarball picks the root filesystem archive of an image version.
func rootTarball(items map[string]ssItem) (ssItem, bool) {
	for _, ft := range []string{"root.tar.xz", "root.tar.gz", "root.tar.zst"} {
		for _, it := range items {
			if it.FType == ft && it.Path != "" && !strings.Contains(it.Path, "..") && len(it.SHA256) == 64 {
				return it, true
			}
		}
	}
	return ssItem{}, false
}

// Available lists the images a simplestreams server offers for this
// node's architecture.
func (m *Manager) Available(ctx context.Context, server string) ([]api.AvailableTemplate, error) {
	if server == "" {
		server = m.imageServer
	}
	cat, err := catalog(ctx, server)
	if err != nil {
		return nil, err
	}
	out := []api.AvailableTemplate{}
	for _, a := range cat {
		if a.Arch == "amd64" {
			out = append(out, a.AvailableTemplate)
		}
	}
	return out, nil
}

// hashReader verifies a download's SHA-256 at its end: a mismatch is a
// read error, so the pool's Import leaves nothing behind.
type hashReader struct {
	r    io.Reader
	h    hash.Hash
	want string
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	if err == io.EOF && h.want != "" {
		if got := hex.EncodeToString(h.h.Sum(nil)); !strings.EqualFold(got, h.want) {
			return n, fmt.Errorf("sha256 mismatch: got %s, want %s", got, h.want)
		}
	}
	return n, err
}

// DownloadTemplate fetches a template into a pool, as a task: a
// simplestreams image by name (checked against the published SHA-256) or
// a plain URL (checked against the SHA-256 given, if any).
func (m *Manager) DownloadTemplate(ctx context.Context, poolID string, in api.TemplateDownload, user string) (string, error) {
	if (in.Name == "") == (in.URL == "") {
		return "", errs.Invalid("name", "give either name (a simplestreams image) or url")
	}
	src, want, file := in.URL, in.SHA256, in.Filename
	if in.Name != "" {
		server := in.Server
		if server == "" {
			server = m.imageServer
		}
		name := strings.TrimPrefix(in.Name, "images:")
		cat, err := catalog(ctx, server)
		if err != nil {
			return "", errs.Conflict("%v", err)
		}
		var found *available
		for i, a := range cat {
			if a.Arch != "amd64" {
				continue
			}
			if a.Name == name || strings.HasPrefix(a.Name, name+"/") && a.Variant == "default" || containsAlias(a.aliases, name) {
				found = &cat[i]
				break
			}
		}
		if found == nil {
			return "", errs.NotFound("image %s is not offered by %s (see templates/available)", name, server)
		}
		src, want = found.url, found.SHA256
		if file == "" {
			file = found.Filename
		}
	} else {
		u, err := url.Parse(in.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return "", errs.Invalid("url", "want an http(s) URL")
		}
		if file == "" {
			file = path.Base(u.Path)
		}
	}
	if err := storage.CheckFilename(api.ContentVZTmpl, file); err != nil {
		return "", err
	}
	if _, err := m.stor.Get(poolID); err != nil {
		return "", errs.NotFound("storage %s does not exist", poolID)
	}
	return m.tasks.Start(ctx, "vztmpldownload", poolID, user, func(ctx context.Context, l *task.Log) error {
		p, err := m.stor.Pool(ctx, poolID)
		if err != nil {
			return err
		}
		l.Printf("downloading %s to %s:vztmpl/%s", src, poolID, file)
		if want != "" {
			l.Printf("expected sha256 %s", want)
		}
		req, err := http.NewRequestWithContext(ctx, "GET", src, nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Timeout: 6 * time.Hour}).Do(req)
		if err != nil {
			return fmt.Errorf("download: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("download: server answered %s", resp.Status)
		}
		v, err := p.Import(ctx, api.ContentVZTmpl, file, &hashReader{r: resp.Body, h: sha256.New(), want: want}, false)
		if err != nil {
			return fmt.Errorf("download %s: %w", file, err)
		}
		l.Printf("stored %s (%d bytes)", v.VolID, v.Size)
		return nil
	})
}

func containsAlias(aliases []string, name string) bool {
	for _, a := range aliases {
		if a == name {
			return true
		}
	}
	return false
}
