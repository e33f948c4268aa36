// Package dir is the storage plugin for a directory on any mounted
// filesystem: qcow2 and raw disk images through qemu-img, container root
// filesystems as directories, and iso, vztmpl, backup and snippets folders.
package dir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
)

// Plugin is the dir storage type.
type Plugin struct{}

// Caps implements storage.Plugin.
func (Plugin) Caps() api.StorageCaps {
	return api.StorageCaps{
		Formats:      []string{api.FormatQcow2, api.FormatRaw, api.FormatSubvol},
		Content:      []string{api.ContentImages, api.ContentRootdir, api.ContentISO, api.ContentVZTmpl, api.ContentBackup, api.ContentSnippets},
		Snapshots:    true, // qcow2 only
		Clones:       true,
		LinkedClones: true, // qcow2 backing files from base- volumes
		Upload:       true,
		Resize:       true,
	}
}

// Validate implements storage.Plugin.
func (p Plugin) Validate(cfg *api.Storage) error {
	return ValidatePath(cfg, p.Caps())
}

// ValidatePath checks the options every directory-backed plugin shares.
func ValidatePath(cfg *api.Storage, caps api.StorageCaps) error {
	if cfg.Path == "" {
		return errs.Invalid("path", "required for %s storage", cfg.Type)
	}
	if !filepath.IsAbs(cfg.Path) || filepath.Clean(cfg.Path) != strings.TrimSuffix(cfg.Path, "/") || cfg.Path == "/" {
		return errs.Invalid("path", "must be a clean absolute path other than /")
	}
	cfg.Path = filepath.Clean(cfg.Path)
	if cfg.Portal != "" || cfg.Target != "" {
		return errs.Invalid("portal", "only for iscsi storage")
	}
	for i, c := range cfg.Content {
		if !slices.Contains(caps.Content, c) {
			return errs.Invalid(fmt.Sprintf("content[%d]", i), "%s storage cannot hold %q", cfg.Type, c)
		}
	}
	return nil
}

// Open implements storage.Plugin.
func (Plugin) Open(cfg api.Storage) (storage.Pool, error) {
	return &Pool{Cfg: cfg, Root: cfg.Path}, nil
}

// Pool is a directory pool on this node. The btrfs plugin embeds it for
// everything that is plain files.
type Pool struct {
	Cfg  api.Storage
	Root string
	// Subvol, when set, replaces plain directories for rootdir volumes
	// (btrfs subvolumes).
	Subvol SubvolOps
}

// SubvolOps creates and removes container root filesystems.
type SubvolOps interface {
	Create(ctx context.Context, path string) error
	Delete(ctx context.Context, path string) error
}

// folders maps content types to their folder under the pool root
// (Proxmox's layout, so administrators find their files).
var folders = map[string]string{
	api.ContentImages: "images", api.ContentRootdir: "images",
	api.ContentISO: "template/iso", api.ContentVZTmpl: "template/cache",
	api.ContentBackup: "dump", api.ContentSnippets: "snippets",
}

// RelPath maps a volume name to its path relative to the pool root.
func RelPath(name string) (rel, content string, vmid int, err error) {
	if err := storage.ValidateVolName(name); err != nil {
		return "", "", 0, err
	}
	segs := strings.Split(name, "/")
	if len(segs) != 2 {
		return "", "", 0, fmt.Errorf("volume name %q: want <vmid>/<file> or <content>/<file>", name)
	}
	if c, ok := storage.FileFolders[segs[0]]; ok {
		return folders[c] + "/" + segs[1], c, 0, nil
	}
	id, err := strconv.Atoi(segs[0])
	if err != nil || id < 100 || strconv.Itoa(id) != segs[0] {
		return "", "", 0, fmt.Errorf("volume name %q: unknown folder %q", name, segs[0])
	}
	c := api.ContentImages
	if strings.HasPrefix(segs[1], "subvol-") || strings.HasPrefix(segs[1], "basevol-") {
		c = api.ContentRootdir
	}
	return "images/" + segs[0] + "/" + segs[1], c, id, nil
}

// Abs resolves a volume name to its path, guaranteed inside the pool.
func (p *Pool) Abs(name string) (string, error) {
	rel, _, _, err := RelPath(name)
	if err != nil {
		return "", errs.Invalid("volume", "%v", err)
	}
	path, err := storage.Resolve(p.Root, rel)
	if err != nil {
		return "", errs.Invalid("volume", "%v", err)
	}
	return path, nil
}

func (p *Pool) hasContent(c string) bool { return slices.Contains(p.Cfg.Content, c) }

// Activate creates the content folders; the root itself must exist (a
// missing mount must not be papered over by an empty directory).
func (p *Pool) Activate(ctx context.Context) error {
	st, err := os.Stat(p.Root)
	if err != nil {
		return fmt.Errorf("pool %s: path %s: %w", p.Cfg.Storage, p.Root, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("pool %s: %s is not a directory", p.Cfg.Storage, p.Root)
	}
	for _, c := range p.Cfg.Content {
		if err := os.MkdirAll(filepath.Join(p.Root, folders[c]), 0o755); err != nil {
			return fmt.Errorf("pool %s: %w", p.Cfg.Storage, err)
		}
	}
	return nil
}

// Status implements storage.Pool.
func (p *Pool) Status(ctx context.Context) storage.Status {
	st, err := os.Stat(p.Root)
	if err != nil {
		return storage.Status{Reason: fmt.Sprintf("path %s: %v", p.Root, errors.Unwrap(err))}
	}
	if !st.IsDir() {
		return storage.Status{Reason: p.Root + " is not a directory"}
	}
	var fsst unix.Statfs_t
	if err := unix.Statfs(p.Root, &fsst); err != nil {
		return storage.Status{Reason: "statfs: " + err.Error()}
	}
	bs := uint64(fsst.Bsize)
	total, free, avail := fsst.Blocks*bs, fsst.Bfree*bs, fsst.Bavail*bs
	return storage.Status{Active: true, Total: total, Used: total - free, Avail: avail}
}

func (p *Pool) volID(name string) string { return p.Cfg.Storage + ":" + name }

// List implements storage.Pool.
func (p *Pool) List(ctx context.Context, content string, vmid int) ([]api.Volume, error) {
	out := []api.Volume{}
	for _, c := range p.Cfg.Content {
		if content != "" && c != content {
			continue
		}
		switch c {
		case api.ContentImages, api.ContentRootdir:
			if c == api.ContentRootdir && p.hasContent(api.ContentImages) && content == "" {
				continue // the images pass lists both
			}
			vols, err := p.listImages(ctx, content, vmid)
			if err != nil {
				return nil, err
			}
			out = append(out, vols...)
		default:
			if vmid != 0 {
				continue
			}
			vols, err := p.listFiles(c)
			if err != nil {
				return nil, err
			}
			out = append(out, vols...)
		}
	}
	return out, nil
}

func (p *Pool) listFiles(content string) ([]api.Volume, error) {
	dir := filepath.Join(p.Root, folders[content])
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []api.Volume
	seg := map[string]string{api.ContentISO: "iso", api.ContentVZTmpl: "vztmpl", api.ContentBackup: "backup", api.ContentSnippets: "snippets"}[content]
	for _, e := range ents {
		if !e.Type().IsRegular() || storage.ValidateVolName(e.Name()) != nil {
			continue // temp files of running uploads start with a dot
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, api.Volume{VolID: p.volID(seg + "/" + e.Name()), Content: content, Format: fileFormat(e.Name()),
			Size: uint64(info.Size()), Used: Used(info), CTime: info.ModTime().UTC()})
	}
	return out, nil
}

func fileFormat(name string) string {
	switch {
	case strings.HasSuffix(name, ".iso") || strings.HasSuffix(name, ".img"):
		return "iso"
	case strings.Contains(name, ".tar"):
		return "tar"
	}
	return "raw"
}

// Used returns the bytes a file occupies on disk (sparse files less than
// their size).
func Used(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Blocks) * 512
	}
	return uint64(info.Size())
}

func (p *Pool) listImages(ctx context.Context, content string, vmid int) ([]api.Volume, error) {
	base := filepath.Join(p.Root, "images")
	owners, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", base, err)
	}
	var out []api.Volume
	for _, o := range owners {
		id, err := strconv.Atoi(o.Name())
		if err != nil || !o.IsDir() || (vmid != 0 && id != vmid) {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(base, o.Name()))
		if err != nil {
			continue
		}
		for _, e := range ents {
			name := o.Name() + "/" + e.Name()
			_, c, _, err := RelPath(name)
			if err != nil || (content != "" && c != content) {
				continue
			}
			v, err := p.describe(ctx, name)
			if err != nil {
				continue // vanished meanwhile, or not ours
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// describe reads one guest volume's size, format and backing file.
func (p *Pool) describe(ctx context.Context, name string) (api.Volume, error) {
	path, err := p.Abs(name)
	if err != nil {
		return api.Volume{}, err
	}
	info, err := os.Lstat(path)
	if err != nil {
		return api.Volume{}, storage.ErrNotFound
	}
	_, c, id, _ := RelPath(name)
	v := api.Volume{VolID: p.volID(name), Content: c, VMID: storage.VMIDFromName(filepath.Base(name)), CTime: info.ModTime().UTC()}
	if v.VMID == 0 {
		v.VMID = id
	}
	if info.IsDir() {
		v.Format = api.FormatSubvol
		v.Used = DirUsage(path)
		return v, nil
	}
	if !info.Mode().IsRegular() {
		return api.Volume{}, fmt.Errorf("%s is not a regular file", name)
	}
	qi, err := QemuImgInfo(ctx, path)
	if err != nil {
		return api.Volume{}, err
	}
	v.Format, v.Size, v.Used = qi.Format, qi.VirtualSize, Used(info)
	if qi.BackingFile != "" {
		if rel, err := filepath.Rel(filepath.Join(p.Root, "images"), qi.BackingFile); err == nil && !strings.HasPrefix(rel, "..") {
			v.Parent = p.volID(filepath.ToSlash(rel))
		}
	}
	return v, nil
}

// DirUsage sums the disk usage of a directory tree.
func DirUsage(path string) uint64 {
	var n uint64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil {
			if info, err := d.Info(); err == nil {
				n += Used(info)
			}
		}
		return nil
	})
	return n
}

// Alloc implements storage.Pool.
func (p *Pool) Alloc(ctx context.Context, req storage.AllocRequest) (api.Volume, error) {
	if req.Content == "" {
		req.Content = api.ContentImages
	}
	if !p.hasContent(req.Content) {
		return api.Volume{}, errs.Invalid("content", "pool %s does not hold %s", p.Cfg.Storage, req.Content)
	}
	dir := filepath.Join(p.Root, "images", strconv.Itoa(req.VMID))
	if _, err := storage.Resolve(p.Root, "images/"+strconv.Itoa(req.VMID)); err != nil {
		return api.Volume{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return api.Volume{}, fmt.Errorf("allocate: %w", err)
	}
	if req.Content == api.ContentRootdir {
		if req.Format == "" {
			req.Format = api.FormatSubvol
		}
		if req.Format != api.FormatSubvol {
			return api.Volume{}, errs.Invalid("format", "container root filesystems are subvol volumes")
		}
		return p.allocSubvol(ctx, dir, req)
	}
	if req.Format == "" {
		req.Format = api.FormatQcow2
	}
	if req.Format != api.FormatQcow2 && req.Format != api.FormatRaw {
		return api.Volume{}, errs.Invalid("format", "disk images are qcow2 or raw")
	}
	ext := "." + req.Format
	claim := func(file string) error {
		f, err := os.OpenFile(filepath.Join(dir, file), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return storage.ErrExists
		}
		if err != nil {
			return fmt.Errorf("allocate: %w", err)
		}
		return f.Close()
	}
	var file string
	var err error
	if req.Name != "" {
		file = req.Name
		if !strings.HasSuffix(file, ext) {
			file += ext
		}
		if err := checkOwnedName(file, req.VMID); err != nil {
			return api.Volume{}, err
		}
		if err := claim(file); errors.Is(err, storage.ErrExists) {
			return api.Volume{}, errs.Conflict("volume %s:%d/%s already exists", p.Cfg.Storage, req.VMID, file)
		} else if err != nil {
			return api.Volume{}, err
		}
	} else if file, err = storage.NextDiskName("vm", req.VMID, ext, claim); err != nil {
		return api.Volume{}, err
	}
	path := filepath.Join(dir, file)
	if err := QemuImg(ctx, "create", "-q", "-f", req.Format, path, strconv.FormatUint(req.Size, 10)); err != nil {
		os.Remove(path)
		return api.Volume{}, err
	}
	return p.describe(ctx, strconv.Itoa(req.VMID)+"/"+file)
}

// checkOwnedName: a named disk must still name its owner, so ownership
// can always be read off the volume name.
func checkOwnedName(file string, vmid int) error {
	if storage.VMIDFromName(file) != vmid {
		return errs.Invalid("name", "disk names must be vm-%d-disk-<n>, base-%d-disk-<n> or subvol-%d-disk-<n>", vmid, vmid, vmid)
	}
	return nil
}

func (p *Pool) allocSubvol(ctx context.Context, dir string, req storage.AllocRequest) (api.Volume, error) {
	create := func(path string) error {
		if p.Subvol != nil {
			if _, err := os.Lstat(path); err == nil {
				return storage.ErrExists
			}
			return p.Subvol.Create(ctx, path)
		}
		err := os.Mkdir(path, 0o755)
		if errors.Is(err, fs.ErrExist) {
			return storage.ErrExists
		}
		return err
	}
	var file string
	var err error
	if req.Name != "" {
		file = req.Name
		if err := checkOwnedName(file, req.VMID); err != nil {
			return api.Volume{}, err
		}
		if err := create(filepath.Join(dir, file)); errors.Is(err, storage.ErrExists) {
			return api.Volume{}, errs.Conflict("volume %s:%d/%s already exists", p.Cfg.Storage, req.VMID, file)
		} else if err != nil {
			return api.Volume{}, fmt.Errorf("allocate: %w", err)
		}
	} else if file, err = storage.NextDiskName("subvol", req.VMID, "", func(n string) error { return create(filepath.Join(dir, n)) }); err != nil {
		return api.Volume{}, fmt.Errorf("allocate: %w", err)
	}
	v, err := p.describe(ctx, strconv.Itoa(req.VMID)+"/"+file)
	v.Size = req.Size
	return v, err
}

// Free implements storage.Pool. A base volume that linked clones still
// use is refused: removing it would destroy the clones.
func (p *Pool) Free(ctx context.Context, name string) error {
	path, err := p.Abs(name)
	if err != nil {
		return err
	}
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return storage.ErrNotFound
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		if p.Subvol != nil {
			return p.Subvol.Delete(ctx, path)
		}
		freeSubvolSnapshots(path)
		return os.RemoveAll(path)
	}
	if strings.HasPrefix(filepath.Base(name), "base-") {
		vols, err := p.listImages(ctx, api.ContentImages, 0)
		if err != nil {
			return err
		}
		for _, v := range vols {
			if v.Parent == p.volID(name) {
				return errs.Conflict("base volume %s is used by linked clone %s", p.volID(name), v.VolID)
			}
		}
	}
	return os.Remove(path)
}

// Resize implements storage.Pool (grow only: shrinking loses data).
func (p *Pool) Resize(ctx context.Context, name string, size uint64) error {
	v, err := p.describe(ctx, name)
	if err != nil {
		return err
	}
	if v.Format == api.FormatSubvol {
		return fmt.Errorf("resize: %w for directories", storage.ErrNotSupported)
	}
	if size < v.Size {
		return errs.Invalid("size", "shrinking a disk is not supported (now %d bytes)", v.Size)
	}
	path, _ := p.Abs(name)
	return QemuImg(ctx, "resize", "-q", "-f", v.Format, path, strconv.FormatUint(size, 10))
}

// Path implements storage.Pool.
func (p *Pool) Path(ctx context.Context, name string) (string, error) {
	path, err := p.Abs(name)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(path); err != nil {
		return "", storage.ErrNotFound
	}
	return path, nil
}

var snapRe = func(s string) bool {
	return storage.ValidateVolName(s) == nil && !strings.Contains(s, "/") && len(s) <= 40
}

func (p *Pool) qcow2(ctx context.Context, name, snap string) (string, error) {
	if !snapRe(snap) {
		return "", errs.Invalid("snapshot", "invalid snapshot name %q", snap)
	}
	v, err := p.describe(ctx, name)
	if err != nil {
		return "", err
	}
	if v.Format != api.FormatQcow2 {
		return "", fmt.Errorf("snapshots of %s volumes: %w (qcow2 only)", v.Format, storage.ErrNotSupported)
	}
	return p.Abs(name)
}

// Snapshot takes an offline internal qcow2 snapshot. Running VMs snapshot
// through QMP instead (VM driver).
func (p *Pool) Snapshot(ctx context.Context, name, snap string) error {
	if dir, ok := p.subvolDir(name); ok {
		return p.snapshotSubvol(ctx, name, dir, snap)
	}
	path, err := p.qcow2(ctx, name, snap)
	if err != nil {
		return err
	}
	return QemuImg(ctx, "snapshot", "-c", snap, path)
}

// Rollback implements storage.Pool.
func (p *Pool) Rollback(ctx context.Context, name, snap string) error {
	if dir, ok := p.subvolDir(name); ok {
		return p.rollbackSubvol(ctx, name, dir, snap)
	}
	path, err := p.qcow2(ctx, name, snap)
	if err != nil {
		return err
	}
	return QemuImg(ctx, "snapshot", "-a", snap, path)
}

// DeleteSnapshot implements storage.Pool.
func (p *Pool) DeleteSnapshot(ctx context.Context, name, snap string) error {
	if dir, ok := p.subvolDir(name); ok {
		return p.deleteSubvolSnapshot(name, dir, snap)
	}
	path, err := p.qcow2(ctx, name, snap)
	if err != nil {
		return err
	}
	return QemuImg(ctx, "snapshot", "-d", snap, path)
}

// Clone implements storage.Pool: linked clones are qcow2 overlays on a
// base- volume; full clones are converted copies.
func (p *Pool) Clone(ctx context.Context, src string, vmid int, linked bool) (api.Volume, error) {
	sv, err := p.describe(ctx, src)
	if err != nil {
		return api.Volume{}, err
	}
	if sv.Format == api.FormatSubvol {
		if dir, ok := p.subvolDir(src); ok {
			return p.cloneSubvol(ctx, src, dir, vmid, linked)
		}
		return api.Volume{}, fmt.Errorf("clone of directories: %w on dir storage", storage.ErrNotSupported)
	}
	if linked && !strings.HasPrefix(filepath.Base(src), "base-") {
		return api.Volume{}, errs.Invalid("source", "linked clones need a base volume (a template's disk), not %s", src)
	}
	srcPath, _ := p.Abs(src)
	dst, err := p.Alloc(ctx, storage.AllocRequest{VMID: vmid, Size: sv.Size, Format: api.FormatQcow2})
	if err != nil {
		return api.Volume{}, err
	}
	dstName := strings.TrimPrefix(dst.VolID, p.Cfg.Storage+":")
	dstPath, _ := p.Abs(dstName)
	if linked {
		err = QemuImg(ctx, "create", "-q", "-f", "qcow2", "-b", srcPath, "-F", sv.Format, dstPath)
	} else {
		err = QemuImg(ctx, "convert", "-q", "-f", sv.Format, "-O", "qcow2", srcPath, dstPath)
	}
	if err != nil {
		os.Remove(dstPath)
		return api.Volume{}, err
	}
	return p.describe(ctx, dstName)
}

// Export implements storage.Pool.
func (p *Pool) Export(ctx context.Context, name string, w io.Writer) error {
	path, err := p.Path(ctx, name)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// MakeBase renames vm-<id>-disk-<n> to base-<id>-disk-<n> without
// replacing anything (link, then unlink) and makes it read-only.
func (p *Pool) MakeBase(ctx context.Context, name string) (api.Volume, error) {
	path, err := p.Abs(name)
	if err != nil {
		return api.Volume{}, err
	}
	if dir, ok := p.subvolDir(name); ok {
		return p.makeBaseSubvol(ctx, name, dir)
	}
	dirName, file := filepath.Split(name)
	base, ok := storage.BaseName(file)
	if !ok {
		return api.Volume{}, errs.Invalid("volume", "%s is not a vm- disk", name)
	}
	dst := filepath.Join(filepath.Dir(path), base)
	if err := os.Link(path, dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return api.Volume{}, storage.ErrExists
		}
		return api.Volume{}, fmt.Errorf("make base: %w", err)
	}
	if err := os.Remove(path); err != nil {
		os.Remove(dst)
		return api.Volume{}, fmt.Errorf("make base: %w", err)
	}
	os.Chmod(dst, 0o444)
	return p.describe(ctx, dirName+base)
}
