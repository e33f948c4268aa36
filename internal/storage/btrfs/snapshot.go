package btrfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
)

// validSnap accepts snapshot names that are one safe path segment. They
// cannot contain "@" or start with a dot, so "<subvolume>@<snap>" is
// unambiguous and never collides with a temporary.
func validSnap(s string) bool {
	return len(s) <= 40 && !strings.Contains(s, "/") && storage.ValidateVolName(s) == nil
}

// snapTarget checks a snapshot request and returns the volume and the
// snapshot's path.
func (p *Pool) snapTarget(name, snap, op string) (guestVol, string, error) {
	if !validSnap(snap) {
		return guestVol{}, "", errs.Invalid("snapshot", "invalid snapshot name %q (letters, digits, . _ + - only; no leading dot; at most 40)", snap)
	}
	g, err := p.mustGuest(name, op)
	if err != nil {
		return guestVol{}, "", err
	}
	if err := p.exists(g); err != nil {
		return guestVol{}, "", err
	}
	return g, g.snapPath(snap), nil
}

// Snapshot takes a read-only btrfs snapshot of the volume's subvolume,
// instantly and whatever the volume's size. For a disk in use by a
// running VM it is crash-consistent only; consistent snapshots of running
// guests need the VM driver to freeze or pause the guest around it.
func (p *Pool) Snapshot(ctx context.Context, name, snap string) error {
	g, sp, err := p.snapTarget(name, snap, "snapshot")
	if err != nil {
		return err
	}
	if _, err := os.Lstat(sp); err == nil {
		return errs.Conflict("snapshot %s of %s:%s already exists", snap, p.Cfg.Storage, name)
	}
	tmp, err := snapshotTemp(ctx, g.subvol, filepath.Dir(g.subvol), g.stem+"@.snap-", true)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", name, err)
	}
	if err := claimRename(tmp, sp); err != nil {
		deleteSubvols(ctx, tmp)
		if errors.Is(err, storage.ErrExists) {
			return errs.Conflict("snapshot %s of %s:%s already exists", snap, p.Cfg.Storage, name)
		}
		return fmt.Errorf("snapshot %s: %w", name, err)
	}
	return nil
}

// Rollback replaces the volume's content by the snapshot's: a writable
// snapshot of the snapshot is taken and swapped with the current
// subvolume in one atomic rename, then the old content is deleted. The
// volume path exists at every moment, and the snapshot is kept (any
// snapshot can be rolled back to, not only the latest: btrfs snapshots
// are independent of each other). The guest must not be running: a VM
// holding disk.raw open would keep writing to the replaced file.
func (p *Pool) Rollback(ctx context.Context, name, snap string) error {
	g, sp, err := p.snapTarget(name, snap, "rollback")
	if err != nil {
		return err
	}
	if !isDir(sp) {
		return errs.NotFound("snapshot %s of %s:%s does not exist", snap, p.Cfg.Storage, name)
	}
	tmp, err := snapshotTemp(ctx, sp, filepath.Dir(g.subvol), g.stem+"@.rollback-", false)
	if err != nil {
		return fmt.Errorf("rollback %s to %s: %w", name, snap, err)
	}
	if err := exchange(tmp, g.subvol); err != nil {
		deleteSubvols(ctx, tmp)
		return fmt.Errorf("rollback %s to %s: %w", name, snap, err)
	}
	// tmp now holds the content from before the rollback.
	if err := deleteSubvols(ctx, tmp); err != nil {
		return fmt.Errorf("rolled back %s to %s, but deleting the replaced content %s failed (it is deleted with the volume): %w", name, snap, tmp, err)
	}
	return nil
}

// DeleteSnapshot implements storage.Pool.
func (p *Pool) DeleteSnapshot(ctx context.Context, name, snap string) error {
	_, sp, err := p.snapTarget(name, snap, "delete snapshot")
	if err != nil {
		return err
	}
	if !isDir(sp) {
		return errs.NotFound("snapshot %s of %s:%s does not exist", snap, p.Cfg.Storage, name)
	}
	if err := deleteSubvols(ctx, sp); err != nil {
		return fmt.Errorf("delete snapshot %s of %s: %w", snap, name, err)
	}
	return nil
}

// Clone implements storage.Pool with a writable btrfs snapshot of the
// source's subvolume, for disks and container subvolumes alike: instant
// and sharing every unchanged block with the source.
//
// Linked clones require a base volume (a template's, base- or basevol-)
// like on every storage, so the same requests work everywhere. Full
// clones are made the same way: a btrfs snapshot is already a semantically
// independent copy (writes to either side never show in the other, and
// the source can be freed), so copying the bytes would only cost time and
// space. The difference on btrfs is therefore none; neither reports a
// Parent, because neither depends on its source.
func (p *Pool) Clone(ctx context.Context, src string, vmid int, linked bool) (api.Volume, error) {
	g, err := p.mustGuest(src, "clone")
	if err != nil {
		return api.Volume{}, err
	}
	if err := p.exists(g); err != nil {
		return api.Volume{}, err
	}
	if linked && !strings.HasPrefix(g.stem, "base-") && !strings.HasPrefix(g.stem, "basevol-") {
		return api.Volume{}, errs.Invalid("source", "linked clones need a base volume (a template's disk), not %s", src)
	}
	d, err := p.ownerDir(vmid)
	if err != nil {
		return api.Volume{}, err
	}
	tmp, err := snapshotTemp(ctx, g.subvol, d, ".clone-", false)
	if err != nil {
		return api.Volume{}, fmt.Errorf("clone %s: %w", src, err)
	}
	prefix, ext := "vm", ".raw"
	if g.format == api.FormatSubvol {
		prefix, ext = "subvol", ""
	}
	stem, err := storage.NextDiskName(prefix, vmid, "", func(n string) error { return claimRename(tmp, filepath.Join(d, n)) })
	if err != nil {
		deleteSubvols(ctx, tmp)
		return api.Volume{}, fmt.Errorf("clone %s: %w", src, err)
	}
	ng, _, err := p.guest(strconv.Itoa(vmid) + "/" + stem + ext)
	if err != nil {
		return api.Volume{}, err
	}
	return p.describe(ng)
}

// MakeBase renames a disk's subvolume from vm-… to base-… (never over an
// existing one) and makes it read-only: clones snapshot it, nothing writes it.
func (p *Pool) MakeBase(ctx context.Context, name string) (api.Volume, error) {
	g, err := p.mustGuest(name, "make base")
	if err != nil {
		return api.Volume{}, err
	}
	base, ok := storage.BaseName(g.stem)
	if !ok {
		return api.Volume{}, errs.Invalid("volume", "%s is not a vm- disk", name)
	}
	dst := filepath.Join(filepath.Dir(g.subvol), base)
	if err := claimRename(g.subvol, dst); err != nil {
		return api.Volume{}, err
	}
	newName := strconv.Itoa(g.owner) + "/" + base
	if g.format == api.FormatRaw {
		newName += ".raw"
	}
	ng, _, err := p.guest(newName)
	if err != nil {
		return api.Volume{}, err
	}
	return p.describe(ng)
}
