// Package btrfs is the storage plugin for a mounted btrfs filesystem.
// Container root filesystems are subvolumes, and each VM disk is a raw
// file alone in its own subvolume, so that snapshots, rollbacks and
// clones of any guest volume are `btrfs subvolume snapshot`: instant and
// copy-on-write whatever the volume's size.
//
// The layout follows Proxmox VE's btrfs storage, so administrators who
// know it find their way around:
//
//	images/<vmid>/vm-<vmid>-disk-<n>/disk.raw   volume <vmid>/vm-<vmid>-disk-<n>.raw
//	images/<vmid>/subvol-<vmid>-disk-<n>/       volume <vmid>/subvol-<vmid>-disk-<n>
//	images/<vmid>/<subvolume>@<snapshot>        read-only snapshot (not a volume)
//	template/iso, template/cache, dump, snippets  plain files, as on dir storage
//
// Plain files are handled by the embedded dir pool; everything touching
// guest volumes is overridden here.
//
// Temporaries are subvolumes named "<subvolume>@.<what>-<random>" or
// ".clone-<random>": neither is a valid volume or snapshot name, so they
// never collide with real ones and never appear in listings. A crash
// between the two steps of a clone can leave a ".clone-" subvolume behind;
// those of a volume's own are removed with the volume.
package btrfs

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

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/storage/dir"
)

// diskFile is the name of the raw image inside a disk's subvolume.
const diskFile = "disk.raw"

// Plugin is the btrfs storage type.
type Plugin struct{}

var _ storage.Plugin = Plugin{}

// Caps implements storage.Plugin. Disks are raw only: btrfs already gives
// what qcow2 would add (snapshots, thin provisioning, backing chains), and
// a copy-on-write format on a copy-on-write filesystem only costs speed.
func (Plugin) Caps() api.StorageCaps {
	return api.StorageCaps{
		Formats:      []string{api.FormatRaw, api.FormatSubvol},
		Content:      []string{api.ContentImages, api.ContentRootdir, api.ContentISO, api.ContentVZTmpl, api.ContentBackup, api.ContentSnippets},
		Snapshots:    true,
		Clones:       true,
		LinkedClones: true,
		Upload:       true,
		Resize:       true,
	}
}

// Validate implements storage.Plugin. A btrfs filesystem cannot be
// shared: it has no cluster locking, and two nodes mounting the same
// device destroy it, so "shared" (which would let guests migrate without
// moving their disks) is refused.
func (p Plugin) Validate(cfg *api.Storage) error {
	if cfg.Shared {
		return errs.Invalid("shared", "btrfs is a local filesystem; it cannot be shared between nodes")
	}
	return dir.ValidatePath(cfg, p.Caps())
}

// Open implements storage.Plugin.
func (Plugin) Open(cfg api.Storage) (storage.Pool, error) {
	return &Pool{Pool: &dir.Pool{Cfg: cfg, Root: cfg.Path, Subvol: subvolOps{}}}, nil
}

// Pool is a btrfs pool on this node. The embedded dir pool serves plain
// files (iso, vztmpl, backup, snippets) and creates rootdir subvolumes
// through its Subvol hook; every method that touches guest volumes is
// overridden because their layout differs from dir's.
type Pool struct {
	*dir.Pool
}

var _ storage.Pool = (*Pool)(nil)

// subvolOps makes dir's rootdir volumes btrfs subvolumes.
type subvolOps struct{}

func (subvolOps) Create(ctx context.Context, path string) error { return createSubvol(ctx, path) }

// Delete removes a subvolume with its snapshots, as Free does.
func (subvolOps) Delete(ctx context.Context, path string) error {
	snaps, err := snapshotsOf(path)
	if err != nil {
		return err
	}
	if err := deleteSubvols(ctx, snaps...); err != nil {
		return err
	}
	return deleteSubvols(ctx, path)
}

// guestVol is where a guest volume lives.
type guestVol struct {
	name    string // volume name, e.g. "100/vm-100-disk-0.raw"
	content string // images or rootdir
	format  string // raw or subvol
	owner   int    // the <vmid> folder
	stem    string // subvolume name, e.g. "vm-100-disk-0"
	subvol  string // absolute path of the subvolume, inside the pool
	file    string // raw: absolute path of disk.raw; "" for subvol
}

// guest maps a guest volume name to its paths. The subvolume path is
// resolved inside the pool (symlinks included); disk.raw is required to
// be a regular file wherever it is used, so it cannot lead outside either.
// ok is false for file volumes (iso/..., vztmpl/...), which belong to dir.
func (p *Pool) guest(name string) (g guestVol, ok bool, err error) {
	_, content, vmid, err := dir.RelPath(name)
	if err != nil {
		return guestVol{}, false, errs.Invalid("volume", "%v", err)
	}
	if content != api.ContentImages && content != api.ContentRootdir {
		return guestVol{}, false, nil
	}
	file := name[strings.IndexByte(name, '/')+1:]
	g = guestVol{name: name, content: content, owner: vmid, stem: file, format: api.FormatSubvol}
	if content == api.ContentImages {
		stem, found := strings.CutSuffix(file, ".raw")
		if !found || storage.ValidateVolName(stem) != nil {
			return guestVol{}, true, errs.Invalid("volume", "disk volumes on btrfs storage are <vmid>/<name>.raw, not %q", name)
		}
		g.stem, g.format = stem, api.FormatRaw
	}
	sub, err := storage.Resolve(p.Root, "images/"+strconv.Itoa(vmid)+"/"+g.stem)
	if err != nil {
		return guestVol{}, true, errs.Invalid("volume", "%v", err)
	}
	g.subvol = sub
	if g.format == api.FormatRaw {
		g.file = filepath.Join(sub, diskFile)
	}
	return g, true, nil
}

// mustGuest is guest for operations that exist only for guest volumes.
func (p *Pool) mustGuest(name, op string) (guestVol, error) {
	g, ok, err := p.guest(name)
	if err != nil {
		return guestVol{}, err
	}
	if !ok {
		return guestVol{}, fmt.Errorf("%s of %s: %w (guest volumes only)", op, name, storage.ErrNotSupported)
	}
	return g, nil
}

// snapPath is where snapshot snap of g lives: next to the subvolume, in
// the folder Resolve already checked.
func (g guestVol) snapPath(snap string) string { return g.subvol + "@" + snap }

// snapshotsOf lists the snapshots (and leftover temporaries) of the
// subvolume at path. "<stem>@" cannot be a prefix of another volume's
// subvolume or snapshot, since names never contain "@".
func snapshotsOf(path string) ([]string, error) {
	parent, stem := filepath.Split(path)
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil, fmt.Errorf("snapshots of %s: %w", path, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), stem+"@") {
			out = append(out, filepath.Join(parent, e.Name()))
		}
	}
	return out, nil
}

// Abs resolves a volume name to the path a consumer opens, guaranteed
// inside the pool. It shadows dir's Abs, which knows nothing of disks in
// subvolumes.
func (p *Pool) Abs(name string) (string, error) {
	g, ok, err := p.guest(name)
	if err != nil {
		return "", err
	}
	if !ok {
		return p.Pool.Abs(name)
	}
	if g.file != "" {
		return g.file, nil
	}
	return g.subvol, nil
}

// Activate checks the path is a btrfs filesystem before dir creates the
// content folders: if the filesystem is not mounted, creating folders
// would hide that and put volumes on the root filesystem.
func (p *Pool) Activate(ctx context.Context) error {
	if _, err := os.Stat(p.Root); err != nil {
		return fmt.Errorf("pool %s: path %s: %w", p.Cfg.Storage, p.Root, err)
	}
	ok, err := isBtrfs(p.Root)
	if err != nil {
		return fmt.Errorf("pool %s: %w", p.Cfg.Storage, err)
	}
	if !ok {
		return fmt.Errorf("pool %s: %s is not a btrfs filesystem (not mounted?)", p.Cfg.Storage, p.Root)
	}
	return p.Pool.Activate(ctx)
}

// Status implements storage.Pool: dir's figures, but inactive when the
// path is not on btrfs or btrfs-progs is missing, since then no guest
// volume operation can work.
func (p *Pool) Status(ctx context.Context) storage.Status {
	st := p.Pool.Status(ctx)
	if !st.Active {
		return st
	}
	ok, err := isBtrfs(p.Root)
	if err != nil {
		return storage.Status{Reason: err.Error()}
	}
	if !ok {
		return storage.Status{Reason: p.Root + " is not a btrfs filesystem"}
	}
	if _, err := tool(); err != nil {
		return storage.Status{Reason: err.Error()}
	}
	return st
}

// List implements storage.Pool.
func (p *Pool) List(ctx context.Context, content string, vmid int) ([]api.Volume, error) {
	out := []api.Volume{}
	guestDone := false
	for _, c := range p.Cfg.Content {
		if content != "" && c != content {
			continue
		}
		switch c {
		case api.ContentImages, api.ContentRootdir:
			if guestDone {
				continue
			}
			guestDone = content == "" // one pass lists both kinds
			vols, err := p.listGuest(content, vmid)
			if err != nil {
				return nil, err
			}
			out = append(out, vols...)
		default:
			vols, err := p.Pool.List(ctx, c, vmid)
			if err != nil {
				return nil, err
			}
			out = append(out, vols...)
		}
	}
	return out, nil
}

// listGuest lists guest volumes of one kind ("" for both). Entries that
// are not volumes (snapshots, temporaries, stray files) are skipped.
func (p *Pool) listGuest(content string, vmid int) ([]api.Volume, error) {
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
			if !e.IsDir() || storage.ValidateVolName(e.Name()) != nil {
				continue
			}
			name := o.Name() + "/" + e.Name()
			if _, c, _, _ := dir.RelPath(name); c == api.ContentImages {
				name += ".raw" // the subvolume of a disk
			}
			g, ok, err := p.guest(name)
			if err != nil || !ok || (content != "" && g.content != content) {
				continue
			}
			v, err := p.describe(g)
			if err != nil {
				continue // vanished meanwhile, or not a disk subvolume
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// describe reads one guest volume's size and usage.
func (p *Pool) describe(g guestVol) (api.Volume, error) {
	v := api.Volume{VolID: p.Cfg.Storage + ":" + g.name, Content: g.content, Format: g.format, VMID: storage.VMIDFromName(g.stem)}
	if v.VMID == 0 {
		v.VMID = g.owner
	}
	if g.format == api.FormatSubvol {
		info, err := os.Lstat(g.subvol)
		if err != nil || !info.IsDir() {
			return api.Volume{}, fmt.Errorf("%s: %w", v.VolID, storage.ErrNotFound)
		}
		v.CTime, v.Used = info.ModTime().UTC(), dir.DirUsage(g.subvol)
		return v, nil
	}
	info, err := p.diskInfo(g)
	if err != nil {
		return api.Volume{}, err
	}
	v.Size, v.Used, v.CTime = uint64(info.Size()), dir.Used(info), info.ModTime().UTC()
	return v, nil
}

// diskInfo checks that a raw disk's subvolume and disk.raw exist and that
// disk.raw is a regular file (a symlink could point outside the pool).
func (p *Pool) diskInfo(g guestVol) (fs.FileInfo, error) {
	if !isDir(g.subvol) {
		return nil, fmt.Errorf("%s:%s: %w", p.Cfg.Storage, g.name, storage.ErrNotFound)
	}
	info, err := os.Lstat(g.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s:%s: %w", p.Cfg.Storage, g.name, storage.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", g.file)
	}
	return info, nil
}

// exists checks a guest volume is there, whatever its kind.
func (p *Pool) exists(g guestVol) error {
	if g.format == api.FormatRaw {
		_, err := p.diskInfo(g)
		return err
	}
	if !isDir(g.subvol) {
		return fmt.Errorf("%s:%s: %w", p.Cfg.Storage, g.name, storage.ErrNotFound)
	}
	return nil
}

// ownerDir resolves and creates images/<vmid>.
func (p *Pool) ownerDir(vmid int) (string, error) {
	if vmid < 100 {
		return "", errs.Invalid("vmid", "guest IDs start at 100, not %d", vmid)
	}
	d, err := storage.Resolve(p.Root, "images/"+strconv.Itoa(vmid))
	if err != nil {
		return "", errs.Invalid("vmid", "%v", err)
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("allocate: %w", err)
	}
	return d, nil
}

// Alloc implements storage.Pool. A disk is a new subvolume holding a
// sparse raw file of the requested size; creating the subvolume is the
// atomic claim of the name. Rootdir volumes go through dir, whose Subvol
// hook makes them subvolumes.
func (p *Pool) Alloc(ctx context.Context, req storage.AllocRequest) (api.Volume, error) {
	if req.Content == "" {
		req.Content = api.ContentImages
	}
	if !slices.Contains(p.Cfg.Content, req.Content) {
		return api.Volume{}, errs.Invalid("content", "pool %s does not hold %s", p.Cfg.Storage, req.Content)
	}
	if req.VMID < 100 {
		return api.Volume{}, errs.Invalid("vmid", "guest IDs start at 100, not %d", req.VMID)
	}
	if req.Content == api.ContentRootdir {
		return p.allocRootdir(ctx, req)
	}
	if req.Content != api.ContentImages {
		return api.Volume{}, errs.Invalid("content", "guest volumes are images or rootdir")
	}
	if req.Format == "" {
		req.Format = api.FormatRaw
	}
	if req.Format != api.FormatRaw {
		return api.Volume{}, errs.Invalid("format", "disks on btrfs storage are raw (btrfs itself provides snapshots and clones)")
	}
	d, err := p.ownerDir(req.VMID)
	if err != nil {
		return api.Volume{}, err
	}
	claim := func(stem string) error { return createSubvol(ctx, filepath.Join(d, stem)) }
	var stem string
	if req.Name != "" {
		stem = strings.TrimSuffix(req.Name, ".raw")
		if err := checkDiskName(stem, req.VMID); err != nil {
			return api.Volume{}, err
		}
		if err := claim(stem); errors.Is(err, storage.ErrExists) {
			return api.Volume{}, errs.Conflict("volume %s:%d/%s.raw already exists", p.Cfg.Storage, req.VMID, stem)
		} else if err != nil {
			return api.Volume{}, fmt.Errorf("allocate: %w", err)
		}
	} else if stem, err = storage.NextDiskName("vm", req.VMID, "", claim); err != nil {
		return api.Volume{}, fmt.Errorf("allocate: %w", err)
	}
	sub := filepath.Join(d, stem)
	if err := createDisk(filepath.Join(sub, diskFile), req.Size); err != nil {
		if derr := deleteSubvols(ctx, sub); derr != nil {
			err = fmt.Errorf("%w (and removing the subvolume failed: %v)", err, derr)
		}
		return api.Volume{}, fmt.Errorf("allocate: %w", err)
	}
	g, _, err := p.guest(strconv.Itoa(req.VMID) + "/" + stem + ".raw")
	if err != nil {
		return api.Volume{}, err
	}
	return p.describe(g)
}

// allocRootdir lets dir create the subvolume through the Subvol hook.
// Names are checked first: dir would accept vm-/base- names for a
// container, which this layout reads as disk subvolumes.
func (p *Pool) allocRootdir(ctx context.Context, req storage.AllocRequest) (api.Volume, error) {
	if req.Name != "" && !strings.HasPrefix(req.Name, "subvol-") && !strings.HasPrefix(req.Name, "basevol-") {
		return api.Volume{}, errs.Invalid("name", "container volume names must be subvol-%d-disk-<n> or basevol-%d-disk-<n>", req.VMID, req.VMID)
	}
	v, err := p.Pool.Alloc(ctx, req)
	if err != nil {
		return api.Volume{}, err
	}
	g, _, err := p.guest(strings.TrimPrefix(v.VolID, p.Cfg.Storage+":"))
	if err != nil {
		return api.Volume{}, err
	}
	if v, err = p.describe(g); err != nil {
		return api.Volume{}, err
	}
	v.Size = req.Size // nominal: without quotas a subvolume has no size
	return v, nil
}

// createDisk makes a sparse raw file: blocks are allocated on first
// write, which is what thin provisioning means on btrfs.
func createDisk(path string, size uint64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkDiskName: a named disk must name its owner, so ownership can be
// read off the volume name, and must not look like a container subvolume
// (subvol-/basevol-), which the name mapping would then misread.
func checkDiskName(stem string, vmid int) error {
	if storage.ValidateVolName(stem) != nil || strings.Contains(stem, "/") ||
		storage.VMIDFromName(stem) != vmid || strings.HasPrefix(stem, "subvol-") || strings.HasPrefix(stem, "basevol-") {
		return errs.Invalid("name", "disk names must be vm-%d-disk-<n> or base-%d-disk-<n>", vmid, vmid)
	}
	return nil
}

// Free implements storage.Pool. A guest volume is deleted with all its
// snapshots (Proxmox does the same: they cannot be used without it). The
// snapshots go first, so a failure leaves the volume itself intact and
// Free can be retried. Freeing a base volume is allowed even while linked
// clones exist: a btrfs snapshot shares extents with its source but does
// not depend on it, so the clones keep working.
func (p *Pool) Free(ctx context.Context, name string) error {
	g, ok, err := p.guest(name)
	if err != nil {
		return err
	}
	if !ok {
		return p.Pool.Free(ctx, name)
	}
	if !isDir(g.subvol) {
		return fmt.Errorf("%s:%s: %w", p.Cfg.Storage, name, storage.ErrNotFound)
	}
	snaps, err := snapshotsOf(g.subvol)
	if err != nil {
		return err
	}
	if err := deleteSubvols(ctx, snaps...); err != nil {
		return fmt.Errorf("free %s: snapshots: %w", name, err)
	}
	if err := deleteSubvols(ctx, g.subvol); err != nil {
		return fmt.Errorf("free %s: %w", name, err)
	}
	return nil
}

// Resize implements storage.Pool for raw disks (grow only: shrinking
// loses data). Container subvolumes have no size without btrfs quotas,
// which corral does not manage.
func (p *Pool) Resize(ctx context.Context, name string, size uint64) error {
	g, err := p.mustGuest(name, "resize")
	if err != nil {
		return err
	}
	if g.format == api.FormatSubvol {
		return fmt.Errorf("resize of container subvolumes: %w (no btrfs quotas)", storage.ErrNotSupported)
	}
	info, err := p.diskInfo(g)
	if err != nil {
		return err
	}
	if size < uint64(info.Size()) {
		return errs.Invalid("size", "shrinking a disk is not supported (now %d bytes)", info.Size())
	}
	if err := os.Truncate(g.file, int64(size)); err != nil {
		return fmt.Errorf("resize %s: %w", name, err)
	}
	return nil
}

// Path implements storage.Pool: disk.raw for disks, the subvolume for
// container root filesystems.
func (p *Pool) Path(ctx context.Context, name string) (string, error) {
	g, ok, err := p.guest(name)
	if err != nil {
		return "", err
	}
	if !ok {
		return p.Pool.Path(ctx, name)
	}
	if err := p.exists(g); err != nil {
		return "", err
	}
	if g.file != "" {
		return g.file, nil
	}
	return g.subvol, nil
}

// ctxReader stops a copy when the request or task is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// Export implements storage.Pool. Raw disks stream their image; a
// container subvolume is a tree, not a stream (backups cover that).
func (p *Pool) Export(ctx context.Context, name string, w io.Writer) error {
	g, ok, err := p.guest(name)
	if err != nil {
		return err
	}
	if !ok {
		return p.Pool.Export(ctx, name, w)
	}
	if g.format == api.FormatSubvol {
		return fmt.Errorf("export of container subvolumes: %w", storage.ErrNotSupported)
	}
	if _, err := p.diskInfo(g); err != nil {
		return err
	}
	f, err := os.Open(g.file)
	if err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	defer f.Close()
	if _, err := io.Copy(w, ctxReader{ctx, f}); err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	return nil
}
