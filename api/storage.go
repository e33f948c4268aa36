package api

import "time"

// Storage content types.
const (
	ContentImages   = "images"
	ContentRootdir  = "rootdir"
	ContentISO      = "iso"
	ContentVZTmpl   = "vztmpl"
	ContentBackup   = "backup"
	ContentSnippets = "snippets"
)

// Volume formats.
const (
	FormatRaw    = "raw"
	FormatQcow2  = "qcow2"
	FormatSubvol = "subvol" // a directory or btrfs subvolume holding a container root filesystem
)

// Storage is a cluster-wide storage pool definition. ACL path /storage/{storage}.
type Storage struct {
	Storage string   `json:"storage" minLength:"1" maxLength:"32" pattern:"^[a-z][a-z0-9_-]*$" doc:"pool ID"`
	Type    string   `json:"type" enum:"dir,btrfs,iscsi"`
	Content []string `json:"content" minItems:"1" maxItems:"6" uniqueItems:"true" doc:"images, rootdir, iso, vztmpl, backup, snippets"`
	Nodes   []string `json:"nodes,omitempty" maxItems:"64" doc:"nodes where the pool exists; empty means all"`
	Shared  bool     `json:"shared,omitempty" doc:"the same data is reachable from every node (dir: trusted as given)"`
	Disable bool     `json:"disable,omitempty"`
	Path    string   `json:"path,omitempty" maxLength:"512" doc:"dir, btrfs: mounted directory"`
	Portal  string   `json:"portal,omitempty" maxLength:"256" doc:"iscsi: host[:port]"`
	Target  string   `json:"target,omitempty" maxLength:"223" doc:"iscsi: target IQN"`
	Comment string   `json:"comment,omitempty" maxLength:"1024"`
	Digest  string   `json:"digest,omitempty" readOnly:"true"`
}

// StorageUpdate changes a pool; absent fields are kept. Type and ID never change.
type StorageUpdate struct {
	Content *[]string `json:"content,omitempty" minItems:"1" maxItems:"6" uniqueItems:"true"`
	Nodes   *[]string `json:"nodes,omitempty" maxItems:"64"`
	Shared  *bool     `json:"shared,omitempty"`
	Disable *bool     `json:"disable,omitempty"`
	Comment *string   `json:"comment,omitempty" maxLength:"1024"`
}

// StorageCaps says what a pool can do, so clients offer only what works.
type StorageCaps struct {
	Formats      []string `json:"formats"`
	Content      []string `json:"content" doc:"content types the plugin can hold"`
	Snapshots    bool     `json:"snapshots"`
	Clones       bool     `json:"clones"`
	LinkedClones bool     `json:"linked_clones"`
	Shared       bool     `json:"shared" doc:"always shared by nature (e.g. iscsi)"`
	Upload       bool     `json:"upload" doc:"accepts uploads of iso/vztmpl/backup/snippets files"`
	Resize       bool     `json:"resize"`
}

// StorageStatus is a pool's state on one node.
type StorageStatus struct {
	Storage string      `json:"storage"`
	Type    string      `json:"type"`
	Node    string      `json:"node"`
	Content []string    `json:"content"`
	Shared  bool        `json:"shared"`
	Enabled bool        `json:"enabled"`
	Active  bool        `json:"active"`
	Reason  string      `json:"reason,omitempty" doc:"why the pool is not active on this node"`
	Total   uint64      `json:"total"`
	Used    uint64      `json:"used"`
	Avail   uint64      `json:"avail"`
	Caps    StorageCaps `json:"caps"`
}

// Volume is one piece of content on a pool.
type Volume struct {
	VolID   string    `json:"volid" doc:"<storage>:<volname>"`
	Content string    `json:"content"`
	Format  string    `json:"format,omitempty"`
	Size    uint64    `json:"size" doc:"virtual size in bytes"`
	Used    uint64    `json:"used,omitempty" doc:"bytes allocated on the pool"`
	VMID    int       `json:"vmid,omitempty" doc:"owner guest"`
	Parent  string    `json:"parent,omitempty" doc:"base volume of a linked clone"`
	CTime   time.Time `json:"ctime"`
}

// VolumeCreate allocates a guest volume.
type VolumeCreate struct {
	VMID    int    `json:"vmid" minimum:"100" maximum:"999999999"`
	Name    string `json:"name,omitempty" maxLength:"128" pattern:"^[A-Za-z0-9][A-Za-z0-9._+-]*$" doc:"file name; default vm-<vmid>-disk-<n> (subvol-<vmid>-disk-<n> for rootdir)"`
	Size    string `json:"size" pattern:"^[0-9]+[KMGT]?$" doc:"size, bytes or with suffix K, M, G, T (binary)"`
	Format  string `json:"format,omitempty" enum:"raw,qcow2,subvol," doc:"default: qcow2 where supported, else raw; subvol for rootdir"`
	Content string `json:"content,omitempty" enum:"images,rootdir," doc:"default images"`
}

// VolumeClone clones a volume (linked: copy-on-write from a base volume).
type VolumeClone struct {
	Source string `json:"source" maxLength:"300" doc:"source volume ID on the same pool"`
	VMID   int    `json:"vmid" minimum:"100" maximum:"999999999"`
	Linked bool   `json:"linked,omitempty"`
}

// VolumeResize grows a volume.
type VolumeResize struct {
	Size string `json:"size" pattern:"^\\+?[0-9]+[KMGT]?$" doc:"new size, or +delta"`
}

// DownloadURL fetches a file into a pool as a task.
type DownloadURL struct {
	URL       string `json:"url" minLength:"8" maxLength:"2048" format:"uri"`
	Content   string `json:"content" enum:"iso,vztmpl,backup,snippets,images"`
	Filename  string `json:"filename" minLength:"1" maxLength:"200" pattern:"^[A-Za-z0-9][A-Za-z0-9._+-]*$"`
	SHA256    string `json:"sha256,omitempty" pattern:"^[0-9a-fA-F]{64}$"`
	Overwrite bool   `json:"overwrite,omitempty"`
}
