package dir

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
)

// ctxReader stops a copy when the request or task is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Import implements storage.Pool. The data goes to a hidden temporary file
// in the destination folder, is synced, then linked into place: readers
// never see a partial file, a failed or cancelled import leaves nothing,
// and without overwrite an existing volume is never replaced (link fails
// if the name exists, atomically).
func (p *Pool) Import(ctx context.Context, content, filename string, r io.Reader, overwrite bool) (api.Volume, error) {
	if err := storage.CheckFilename(content, filename); err != nil {
		return api.Volume{}, err
	}
	if !p.hasContent(content) {
		return api.Volume{}, errs.Invalid("content", "pool %s does not hold %s", p.Cfg.Storage, content)
	}
	seg := map[string]string{api.ContentISO: "iso", api.ContentVZTmpl: "vztmpl", api.ContentBackup: "backup", api.ContentSnippets: "snippets"}[content]
	name := seg + "/" + filename
	dst, err := p.Abs(name)
	if err != nil {
		return api.Volume{}, err
	}
	if !overwrite {
		if _, err := os.Lstat(dst); err == nil {
			return api.Volume{}, errs.Conflict("%s already exists (set overwrite to replace it)", p.volID(name))
		}
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return api.Volume{}, fmt.Errorf("import: %w", err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	tmp := filepath.Join(dir, ".upload-"+hex.EncodeToString(b))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return api.Volume{}, fmt.Errorf("import: %w", err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(f, ctxReader{ctx, r}, buf); err != nil {
		return api.Volume{}, fmt.Errorf("import %s: %w", p.volID(name), err)
	}
	if err := f.Sync(); err != nil {
		return api.Volume{}, fmt.Errorf("import %s: sync: %w", p.volID(name), err)
	}
	if err := f.Close(); err != nil {
		return api.Volume{}, fmt.Errorf("import %s: %w", p.volID(name), err)
	}
	if overwrite {
		err = os.Rename(tmp, dst)
	} else {
		err = os.Link(tmp, dst)
		if errors.Is(err, fs.ErrExist) {
			return api.Volume{}, errs.Conflict("%s already exists (set overwrite to replace it)", p.volID(name))
		}
		if err == nil {
			os.Remove(tmp)
		}
	}
	if err != nil {
		return api.Volume{}, fmt.Errorf("import %s: %w", p.volID(name), err)
	}
	done = true
	info, err := os.Stat(dst)
	if err != nil {
		return api.Volume{}, err
	}
	return api.Volume{VolID: p.volID(name), Content: content, Format: fileFormat(filename), Size: uint64(info.Size()), Used: Used(info), CTime: info.ModTime().UTC()}, nil
}
