package dir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
)

// Container root filesystems on a plain directory pool are directories:
// snapshots are full copies next to them ("<dir>@<snap>", a name no volume
// can have), rollbacks swap a fresh copy in atomically, full clones copy.
// Copies use cp -a (ownership, modes, links, xattrs) with reflinks where
// the filesystem has them.

// copyTree copies the content of src into the existing directory dst.
func copyTree(ctx context.Context, src, dst string) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	out, err := exec.CommandContext(cctx, "cp", "-a", "--reflink=auto", "--", src+"/.", dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy %s: %v: %s", src, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// copyToTemp copies src into a new hidden directory next to it.
func copyToTemp(ctx context.Context, src, prefix string) (string, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(src), prefix)
	if err != nil {
		return "", err
	}
	if err := copyTree(ctx, src, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if fi, err := os.Stat(src); err == nil {
		os.Chmod(tmp, fi.Mode().Perm())
		if st, ok := fi.Sys().(*unix.Stat_t); ok {
			os.Lchown(tmp, int(st.Uid), int(st.Gid))
		}
	}
	return tmp, nil
}

// subvolDir returns the directory of a subvol volume, or ok=false for
// other volumes (and for pools whose Subvol hook handles them).
func (p *Pool) subvolDir(name string) (string, bool) {
	if p.Subvol != nil {
		return "", false
	}
	path, err := p.Abs(name)
	if err != nil {
		return "", false
	}
	fi, err := os.Lstat(path)
	if err != nil || !fi.IsDir() {
		return "", false
	}
	return path, true
}

func subvolSnapPath(path, snap string) (string, error) {
	if !snapRe(snap) {
		return "", errs.Invalid("snapshot", "invalid snapshot name %q", snap)
	}
	return path + "@" + snap, nil
}

func (p *Pool) snapshotSubvol(ctx context.Context, name, path, snap string) error {
	sp, err := subvolSnapPath(path, snap)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(sp); err == nil {
		return errs.Conflict("snapshot %s of %s already exists", snap, p.volID(name))
	}
	tmp, err := copyToTemp(ctx, path, ".snap-")
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", name, err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, sp, unix.RENAME_NOREPLACE); err != nil {
		os.RemoveAll(tmp)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return errs.Conflict("snapshot %s of %s already exists", snap, p.volID(name))
		}
		return fmt.Errorf("snapshot %s: %w", name, err)
	}
	return nil
}

func (p *Pool) rollbackSubvol(ctx context.Context, name, path, snap string) error {
	sp, err := subvolSnapPath(path, snap)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(sp); err != nil || !fi.IsDir() {
		return errs.NotFound("snapshot %s of %s does not exist", snap, p.volID(name))
	}
	tmp, err := copyToTemp(ctx, sp, ".rollback-")
	if err != nil {
		return fmt.Errorf("rollback %s to %s: %w", name, snap, err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("rollback %s to %s: %w", name, snap, err)
	}
	return os.RemoveAll(tmp) // now the content from before the rollback
}

func (p *Pool) deleteSubvolSnapshot(name, path, snap string) error {
	sp, err := subvolSnapPath(path, snap)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(sp); err != nil || !fi.IsDir() {
		return errs.NotFound("snapshot %s of %s does not exist", snap, p.volID(name))
	}
	return os.RemoveAll(sp)
}

// freeSubvolSnapshots removes every snapshot of a directory volume.
func freeSubvolSnapshots(path string) {
	snaps, _ := filepath.Glob(path + "@*")
	for _, s := range snaps {
		os.RemoveAll(s)
	}
}

// cloneSubvol copies a directory volume into a new one for vmid.
func (p *Pool) cloneSubvol(ctx context.Context, src, path string, vmid int, linked bool) (api.Volume, error) {
	if linked {
		return api.Volume{}, fmt.Errorf("linked clones of directories: %w on dir storage", storage.ErrNotSupported)
	}
	dst, err := p.Alloc(ctx, storage.AllocRequest{VMID: vmid, Content: api.ContentRootdir, Format: api.FormatSubvol})
	if err != nil {
		return api.Volume{}, err
	}
	dstName := strings.TrimPrefix(dst.VolID, p.Cfg.Storage+":")
	dstPath, _ := p.Abs(dstName)
	if err := copyTree(ctx, path, dstPath); err != nil {
		os.RemoveAll(dstPath)
		return api.Volume{}, err
	}
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*unix.Stat_t); ok {
			os.Lchown(dstPath, int(st.Uid), int(st.Gid))
		}
	}
	return p.describe(ctx, dstName)
}

// makeBaseSubvol renames subvol-<id>-disk-<n> to basevol-<id>-disk-<n>.
func (p *Pool) makeBaseSubvol(ctx context.Context, name, path string) (api.Volume, error) {
	dirName, file := filepath.Split(name)
	base, ok := storage.BaseName(file)
	if !ok {
		return api.Volume{}, errs.Invalid("volume", "%s is not a subvol- volume", name)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, filepath.Join(filepath.Dir(path), base), unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return api.Volume{}, storage.ErrExists
		}
		return api.Volume{}, fmt.Errorf("make base: %w", err)
	}
	return p.describe(ctx, dirName+base)
}
