// Package storage is corral's storage layer: cluster-wide pool
// definitions, the plugin interface every storage type implements, volume
// IDs, and the node-local operations on volumes. One package per plugin
// lives below it (dir, btrfs, iscsi); each registers itself in plugins/.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/corral-project/corral/api"
)

// ErrNotSupported is returned for operations a plugin lacks; the API
// reports capabilities so clients rarely see it.
var ErrNotSupported = errors.New("not supported by this storage type")

// ErrExists means a volume of that name already exists.
var ErrExists = errors.New("volume already exists")

// ErrNotFound means the volume does not exist.
var ErrNotFound = errors.New("volume does not exist")

// Plugin is one storage type. It validates pool definitions and opens a
// pool on this node.
type Plugin interface {
	// Caps says what pools of this type can do.
	Caps() api.StorageCaps
	// Validate checks and normalises the type-specific options of cfg.
	// It must not touch the host: definitions are cluster-wide.
	Validate(cfg *api.Storage) error
	// Open returns the node-local handle of a pool. It must be cheap and
	// must not fail because the pool is unavailable (Status says that).
	Open(cfg api.Storage) (Pool, error)
}

// AllocRequest describes a new guest volume.
type AllocRequest struct {
	VMID    int
	Name    string // optional; the pool picks vm-<vmid>-disk-<n>
	Size    uint64 // bytes
	Format  string
	Content string // images or rootdir
}

// Status of a pool on this node.
type Status struct {
	Active             bool
	Reason             string
	Total, Used, Avail uint64
}

// Pool is a storage pool opened on this node. Methods take volume names
// (the part after "<storage>:"), already validated by ParseVolID.
type Pool interface {
	// Activate makes the pool usable (create folders, log in, mount).
	Activate(ctx context.Context) error
	Status(ctx context.Context) Status
	// List returns the volumes of one content type ("" for all) owned by
	// vmid (0 for any).
	List(ctx context.Context, content string, vmid int) ([]api.Volume, error)
	Alloc(ctx context.Context, req AllocRequest) (api.Volume, error)
	Free(ctx context.Context, name string) error
	Resize(ctx context.Context, name string, size uint64) error
	// Path is what a consumer opens: a file path, a directory, or a URI
	// such as iscsi://portal/iqn/lun for QEMU's own initiator.
	Path(ctx context.Context, name string) (string, error)
	Snapshot(ctx context.Context, name, snap string) error
	Rollback(ctx context.Context, name, snap string) error
	DeleteSnapshot(ctx context.Context, name, snap string) error
	// Clone copies src into a new volume for vmid; linked clones share
	// unchanged blocks with src.
	Clone(ctx context.Context, src string, vmid int, linked bool) (api.Volume, error)
	// Import writes a file-like volume (iso, vztmpl, backup, snippets)
	// from r. It must leave nothing behind on error and never replace an
	// existing volume unless overwrite.
	Import(ctx context.Context, content, filename string, r io.Reader, overwrite bool) (api.Volume, error)
	// Export streams a volume's content.
	Export(ctx context.Context, name string, w io.Writer) error
}

var (
	regMu   sync.RWMutex
	plugins = map[string]Plugin{}
)

// Register makes a plugin available under its type name.
func Register(typ string, p Plugin) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := plugins[typ]; dup {
		panic("storage: plugin " + typ + " registered twice")
	}
	plugins[typ] = p
}

// Lookup returns the plugin for a type.
func Lookup(typ string) (Plugin, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	p, ok := plugins[typ]
	return p, ok
}

// Types lists the registered plugin types.
func Types() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	var out []string
	for t := range plugins {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// NextDiskName returns the first "<prefix>-<vmid>-disk-<n><ext>" for which
// claim succeeds. claim must fail with ErrExists when the name is taken;
// doing the claim atomically (O_EXCL, lvcreate, ...) is what makes two
// concurrent allocations never get the same name.
func NextDiskName(prefix string, vmid int, ext string, claim func(name string) error) (string, error) {
	for n := 0; n < 1000; n++ {
		name := fmt.Sprintf("%s-%d-disk-%d%s", prefix, vmid, n, ext)
		err := claim(name)
		if errors.Is(err, ErrExists) {
			continue
		}
		if err != nil {
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("guest %d has 1000 disks on this pool already", vmid)
}

// VMIDFromName extracts the owner of "vm-<id>-disk-N", "base-<id>-disk-N"
// or "subvol-<id>-disk-N" volume file names, 0 if none.
func VMIDFromName(name string) int {
	var id, n int
	for _, pre := range []string{"vm", "base", "subvol", "basevol"} {
		if k, _ := fmt.Sscanf(name, pre+"-%d-disk-%d", &id, &n); k == 2 && id > 0 {
			return id
		}
	}
	return 0
}

// Now is the clock for creation times (tests may fix it).
var Now = func() time.Time { return time.Now().UTC() }

// Baser is implemented by pools that can turn a guest disk into a base
// volume (a template's disk, "base-<vmid>-disk-<n>"), from which linked
// clones are made. The rename is what makes the disk's role visible to
// every later operation: the pools refuse linked clones from anything else.
type Baser interface {
	MakeBase(ctx context.Context, name string) (api.Volume, error)
}

// BaseName returns the base name of a guest volume: base- for a vm- disk,
// basevol- for a subvol- container root filesystem.
func BaseName(file string) (string, bool) {
	if rest, ok := strings.CutPrefix(file, "vm-"); ok {
		return "base-" + rest, true
	}
	if rest, ok := strings.CutPrefix(file, "subvol-"); ok {
		return "basevol-" + rest, true
	}
	return "", false
}
