// Package iscsi is the storage plugin for the LUNs of one iSCSI target,
// used directly by QEMU's built-in initiator (libiscsi): guests open
// iscsi://portal/target/lun, so nodes need no kernel initiator, no
// iscsid and no block devices. The LUNs are provisioned by the target's
// administrator; corral lists them, sizes them, hands their URIs to QEMU
// and can stream their content, but cannot create, grow or delete them.
package iscsi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
)

// Plugin is the iscsi storage type.
type Plugin struct{}

// Caps implements storage.Plugin. A LUN is a raw block device the target
// owns, reachable from every node, so the pool is shared by nature and
// offers nothing that would need allocating space on the target.
func (Plugin) Caps() api.StorageCaps {
	return api.StorageCaps{
		Formats: []string{api.FormatRaw},
		Content: []string{api.ContentImages},
		Shared:  true,
	}
}

// Validate implements storage.Plugin. The portal is normalised to
// "host:port" so the URI QEMU gets always names its port.
func (Plugin) Validate(cfg *api.Storage) error {
	if cfg.Path != "" {
		return errs.Invalid("path", "not used by iscsi storage (set portal and target)")
	}
	if cfg.Portal == "" {
		return errs.Invalid("portal", "required for iscsi storage: host or host:port (default port %d)", DefaultPort)
	}
	pt, err := ParsePortal(cfg.Portal)
	if err != nil {
		return errs.Invalid("portal", "%v", err)
	}
	cfg.Portal = pt.String()
	if cfg.Target == "" {
		return errs.Invalid("target", "required for iscsi storage: the target's IQN")
	}
	if !ValidTargetName(cfg.Target) {
		return errs.Invalid("target", "%q is not an iSCSI target name (iqn.YYYY-MM.reversed.domain[:identifier], letters, digits, '.', '-' and ':')", cfg.Target)
	}
	if len(cfg.Content) != 1 || cfg.Content[0] != api.ContentImages {
		return errs.Invalid("content", "iscsi storage holds disk images only (content: [images])")
	}
	cfg.Shared = true
	return nil
}

// Open implements storage.Plugin; it never touches the network.
func (Plugin) Open(cfg api.Storage) (storage.Pool, error) {
	pt, err := ParsePortal(cfg.Portal)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", cfg.Storage, err)
	}
	if !ValidTargetName(cfg.Target) {
		return nil, fmt.Errorf("pool %s: invalid target name %q", cfg.Storage, cfg.Target)
	}
	return &Pool{cfg: cfg, portal: pt}, nil
}

// Pool is one iSCSI target seen from this node. It keeps no session open:
// every operation logs in, does its work and logs out, so a target that
// restarts or a portal that moves never leaves a stale session behind.
type Pool struct {
	cfg    api.Storage
	portal Portal
}

// statusTimeout bounds Activate, Status, List and Path as a whole: they
// run on API requests and must answer even when the portal blackholes.
const statusTimeout = 30 * time.Second

// lunRe is a volume name: "lun" and a LUN number without leading zeros.
var lunRe = regexp.MustCompile(`^lun(0|[1-9][0-9]{0,4})$`)

// lunOf parses a volume name into its LUN number.
func lunOf(name string) (uint16, error) {
	m := lunRe.FindStringSubmatch(name)
	if m == nil {
		return 0, errs.Invalid("volume", "iscsi volumes are named lun<N>, not %q", name)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n > 0xffff {
		return 0, errs.Invalid("volume", "LUN number out of range in %q", name)
	}
	return uint16(n), nil
}

// URI is what QEMU opens for a LUN: -drive file=iscsi://portal/target/N.
func (p *Pool) URI(lun uint16) string {
	return "iscsi://" + p.portal.String() + "/" + p.cfg.Target + "/" + strconv.Itoa(int(lun))
}

func (p *Pool) volName(lun uint16) string { return "lun" + strconv.Itoa(int(lun)) }

// lunInfo is one disk LUN of the target.
type lunInfo struct {
	lun   uint16
	size  uint64
	block uint32
}

// disks logs in and lists the target's disk LUNs with their sizes.
// Non-disk LUNs (tgt's LUN 0 controller, CD drives) are left out, and so
// are LUNs that answer with a SCSI error (offline, no medium): they are
// there but not usable now. Transport errors fail the whole listing.
func (p *Pool) disks(ctx context.Context) ([]lunInfo, error) {
	s, err := dial(ctx, p.portal, p.cfg.Target)
	if err != nil {
		return nil, err
	}
	defer s.close()
	luns, err := s.reportLUNs()
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", p.cfg.Target, err)
	}
	var out []lunInfo
	for _, l := range luns {
		disk, err := s.isDisk(l)
		if err == nil && disk {
			var li lunInfo
			li.size, li.block, err = s.capacity(l)
			li.lun = l
			if err == nil {
				out = append(out, li)
			}
		}
		var se *senseError
		if err != nil && !errors.As(err, &se) {
			return nil, fmt.Errorf("target %s: %w", p.cfg.Target, err)
		}
	}
	return out, nil
}

// Activate logs in to the target and, when it has a disk LUN, has
// qemu-img open it through QEMU's own initiator: that proves both that the
// target admits this node and that QEMU here can reach it (the iscsi
// block driver ships in a separate Debian package, qemu-block-extra).
func (p *Pool) Activate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	luns, err := p.disks(ctx)
	if err != nil {
		return fmt.Errorf("pool %s: %w", p.cfg.Storage, err)
	}
	if len(luns) == 0 {
		return nil
	}
	size, err := qemuImgSize(ctx, p.URI(luns[0].lun))
	if err != nil {
		return fmt.Errorf("pool %s: QEMU's initiator cannot open LUN %d: %w", p.cfg.Storage, luns[0].lun, err)
	}
	if size != luns[0].size {
		return fmt.Errorf("pool %s: QEMU sees LUN %d as %d bytes, the target reports %d", p.cfg.Storage, luns[0].lun, size, luns[0].size)
	}
	return nil
}

// Status implements storage.Pool. Total is the sum of the disk LUNs and
// all of it counts as used: the space was allocated on the target when
// the LUNs were made, and corral cannot carve new volumes out of it.
func (p *Pool) Status(ctx context.Context) storage.Status {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	luns, err := p.disks(ctx)
	if err != nil {
		return storage.Status{Reason: err.Error()}
	}
	var total uint64
	for _, l := range luns {
		total += l.size
	}
	return storage.Status{Active: true, Total: total, Used: total}
}

// List implements storage.Pool. LUNs belong to no guest (their names say
// nothing about an owner), so a listing for one guest is empty.
func (p *Pool) List(ctx context.Context, content string, vmid int) ([]api.Volume, error) {
	out := []api.Volume{}
	if (content != "" && content != api.ContentImages) || vmid != 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	luns, err := p.disks(ctx)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", p.cfg.Storage, err)
	}
	for _, l := range luns {
		out = append(out, api.Volume{
			VolID:   p.cfg.Storage + ":" + p.volName(l.lun),
			Content: api.ContentImages,
			Format:  api.FormatRaw,
			Size:    l.size,
			Used:    l.size,
		})
	}
	return out, nil
}

// find returns one disk LUN, or storage.ErrNotFound.
func (p *Pool) find(ctx context.Context, name string) (lunInfo, error) {
	lun, err := lunOf(name)
	if err != nil {
		return lunInfo{}, err
	}
	luns, err := p.disks(ctx)
	if err != nil {
		return lunInfo{}, fmt.Errorf("pool %s: %w", p.cfg.Storage, err)
	}
	for _, l := range luns {
		if l.lun == lun {
			return l, nil
		}
	}
	return lunInfo{}, fmt.Errorf("%s:%s: %w", p.cfg.Storage, name, storage.ErrNotFound)
}

// Path implements storage.Pool: the iscsi:// URI of an existing disk LUN,
// which QEMU opens with its own initiator.
func (p *Pool) Path(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	l, err := p.find(ctx, name)
	if err != nil {
		return "", err
	}
	return p.URI(l.lun), nil
}

// notSupported explains why an operation is refused: the target, not
// corral, decides which LUNs exist and how big they are.
func (p *Pool) notSupported(op string) error {
	return fmt.Errorf("%s on iscsi storage %s: %w (LUNs are created, resized and removed on the target by its administrator)", op, p.cfg.Storage, storage.ErrNotSupported)
}

// Alloc implements storage.Pool; see notSupported.
func (p *Pool) Alloc(ctx context.Context, req storage.AllocRequest) (api.Volume, error) {
	return api.Volume{}, p.notSupported("allocating a volume")
}

// Free implements storage.Pool; see notSupported.
func (p *Pool) Free(ctx context.Context, name string) error {
	return p.notSupported("freeing a volume")
}

// Resize implements storage.Pool; see notSupported.
func (p *Pool) Resize(ctx context.Context, name string, size uint64) error {
	return p.notSupported("resizing a volume")
}

// Snapshot implements storage.Pool; raw LUNs have no snapshots of their
// own (a running VM can still snapshot through QMP onto another pool).
func (p *Pool) Snapshot(ctx context.Context, name, snap string) error {
	return p.notSupported("snapshots")
}

// Rollback implements storage.Pool; see Snapshot.
func (p *Pool) Rollback(ctx context.Context, name, snap string) error {
	return p.notSupported("snapshots")
}

// DeleteSnapshot implements storage.Pool; see Snapshot.
func (p *Pool) DeleteSnapshot(ctx context.Context, name, snap string) error {
	return p.notSupported("snapshots")
}

// Clone implements storage.Pool; a clone would need a new LUN.
func (p *Pool) Clone(ctx context.Context, src string, vmid int, linked bool) (api.Volume, error) {
	return api.Volume{}, p.notSupported("cloning a volume")
}

// Import implements storage.Pool; the pool holds no files.
func (p *Pool) Import(ctx context.Context, content, filename string, r io.Reader, overwrite bool) (api.Volume, error) {
	return api.Volume{}, p.notSupported("importing a file")
}

// Export implements storage.Pool: it streams the whole LUN, read through
// corral's own initiator in chunks of the negotiated burst length
// (qemu-img cannot write raw output to a pipe). Reading a LUN that a
// running guest writes gives an inconsistent copy, as with any raw disk.
func (p *Pool) Export(ctx context.Context, name string, w io.Writer) error {
	lun, err := lunOf(name)
	if err != nil {
		return err
	}
	s, err := dial(ctx, p.portal, p.cfg.Target)
	if err != nil {
		return fmt.Errorf("export %s:%s: %w", p.cfg.Storage, name, err)
	}
	defer s.close()
	luns, err := s.reportLUNs()
	if err != nil {
		return fmt.Errorf("export %s:%s: %w", p.cfg.Storage, name, err)
	}
	found := false
	for _, l := range luns {
		found = found || l == lun
	}
	if found {
		found, err = s.isDisk(lun)
		if err != nil {
			return fmt.Errorf("export %s:%s: %w", p.cfg.Storage, name, err)
		}
	}
	if !found {
		return fmt.Errorf("%s:%s: %w", p.cfg.Storage, name, storage.ErrNotFound)
	}
	size, block, err := s.capacity(lun)
	if err != nil {
		return fmt.Errorf("export %s:%s: %w", p.cfg.Storage, name, err)
	}
	blocks := size / uint64(block)
	chunk := uint64(max(1, s.maxBurst/block))
	for lba := uint64(0); lba < blocks; lba += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(chunk, blocks-lba)
		data, err := s.read(lun, lba, uint32(n), block)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("export %s:%s: %w", p.cfg.Storage, name, err)
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("export %s:%s: %w", p.cfg.Storage, name, err)
		}
	}
	return nil
}

// qemuImgSize opens a LUN with qemu-img, i.e. with QEMU's own initiator,
// and returns its size. "-f raw" matters: without it qemu-img would
// probe the guest-written content for a format, and a guest that wrote a
// qcow2 header naming a backing file could make the node open it.
func qemuImgSize(ctx context.Context, uri string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-img", "info", "-U", "-f", "raw", "--output=json", uri)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin:/usr/sbin:/sbin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		if strings.Contains(msg, "Unknown protocol") {
			msg += " (install qemu-block-extra)"
		}
		return 0, fmt.Errorf("qemu-img info: %s", msg)
	}
	var info struct {
		VirtualSize uint64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return 0, fmt.Errorf("qemu-img info: %w", err)
	}
	return info.VirtualSize, nil
}
