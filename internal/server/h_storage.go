package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/task"
)

type StorageParam struct {
	Storage string `path:"storage" maxLength:"32"`
}
type NodeStorageParam struct {
	NodeParam
	StorageParam
}
type VolumeParam struct {
	NodeStorageParam
	Volume string `path:"volume" maxLength:"300" doc:"volume name or full volume ID (URL-escape the /)"`
}
type storagesOut struct{ Body []api.Storage }
type storageOut struct {
	ETag string `header:"ETag"`
	Body api.Storage
}
type storageCreateIn struct{ Body api.Storage }
type storageUpdateIn struct {
	StorageParam
	IfMatchParam
	Body api.StorageUpdate
}
type storageDeleteIn struct {
	StorageParam
	IfMatchParam
	Force bool `query:"force" doc:"remove the definition even though guest volumes remain (data is kept)"`
}
type storageStatusesOut struct{ Body []api.StorageStatus }
type storageStatusOut struct{ Body api.StorageStatus }
type contentIn struct {
	NodeStorageParam
	Content string `query:"content" enum:"images,rootdir,iso,vztmpl,backup,snippets,"`
	VMID    int    `query:"vmid" minimum:"0" maximum:"999999999"`
}
type volumesOut struct{ Body []api.Volume }
type volumeOut struct{ Body api.Volume }
type allocIn struct {
	NodeStorageParam
	Body api.VolumeCreate
}
type freeIn struct {
	VolumeParam
	Force bool `query:"force" doc:"free a volume owned by a guest (administrators)"`
}
type resizeIn struct {
	VolumeParam
	Body api.VolumeResize
}
type cloneIn struct {
	NodeStorageParam
	Body api.VolumeClone
}
type snapIn struct {
	VolumeParam
	Body struct {
		Name string `json:"name" minLength:"1" maxLength:"40" pattern:"^[A-Za-z0-9][A-Za-z0-9_-]*$"`
	}
}
type snapNameIn struct {
	VolumeParam
	Snap string `path:"snap" maxLength:"40"`
}
type uploadIn struct {
	NodeStorageParam
	Content   string `query:"content" required:"true" enum:"iso,vztmpl,backup,snippets"`
	Filename  string `query:"filename" required:"true" minLength:"1" maxLength:"200"`
	SHA256    string `query:"sha256" pattern:"^([0-9a-fA-F]{64})?$" doc:"verified before the file appears"`
	Overwrite bool   `query:"overwrite"`
}
type downloadIn struct {
	NodeStorageParam
	Body api.DownloadURL
}

type bodyKey struct{}

// streamBody hands the raw request body to operations marked "stream":
// uploads are copied to disk as they arrive, never held in memory.
func (s *Server) streamBody(ctx huma.Context, next func(huma.Context)) {
	if ctx.Operation().Metadata["stream"] == true {
		ctx = huma.WithValue(ctx, bodyKey{}, ctx.BodyReader())
	}
	next(ctx)
}

// volName accepts "name" or "<storage>:name" and validates it.
func volName(storageID, v string) (string, error) {
	if strings.Contains(v, ":") {
		id, err := storage.ParseVolID(v)
		if err != nil {
			return "", errs.Invalid("volume", "%v", err)
		}
		if id.Storage != storageID {
			return "", errs.Invalid("volume", "volume %s is not on storage %s", v, storageID)
		}
		return id.Name, nil
	}
	if err := storage.ValidateVolName(v); err != nil {
		return "", errs.Invalid("volume", "%v", err)
	}
	return v, nil
}

// storageErr maps plugin sentinel errors.
func storageErr(err error) error {
	switch {
	case errors.Is(err, storage.ErrNotSupported):
		return &errs.Error{Kind: errs.KindInvalid, Msg: err.Error()}
	case errors.Is(err, storage.ErrNotFound):
		return errs.NotFound("%v", err)
	case errors.Is(err, storage.ErrExists):
		return errs.Conflict("%v", err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return errs.NoSpace("%v", err)
	case err == nil || errs.KindOf(err) != 0:
		return err
	}
	// Storage failures carry the tool's own message (qemu-img, btrfs, the
	// filesystem): the administrator needs it, not "internal error".
	return errs.Backend(err)
}

// hashCheck verifies a sha256 when the stream ends: the importer sees
// an error instead of EOF, so a corrupt file never appears.
type hashCheck struct {
	r    io.Reader
	h    hash.Hash
	want string
	n    int64
	log  *task.Log
	next int64
}

func (c *hashCheck) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.want != "" { // hashing costs as much as the copy: only when asked
		c.h.Write(p[:n])
	}
	c.n += int64(n)
	if c.log != nil && c.n >= c.next {
		c.log.Printf("received %d MiB", c.n>>20)
		c.next += 64 << 20
	}
	if err == io.EOF && c.want != "" {
		if got := hex.EncodeToString(c.h.Sum(nil)); !strings.EqualFold(got, c.want) {
			return n, fmt.Errorf("%w: got %s, want %s", errChecksum, got, c.want)
		}
	}
	return n, err
}

// auditPrivs: whoever may administer, allocate on or audit a pool may see it.
var auditPrivs = []string{"Datastore.Audit", "Datastore.Allocate", "Datastore.AllocateSpace"}

// errChecksum marks a stream whose sha256 did not match.
var errChecksum = errors.New("sha256 mismatch")

func (s *Server) storageRoutes() {
	tags := []string{"storage"}
	sp := "/storage/{storage}"
	register(s, huma.Operation{OperationID: "list-storage", Method: "GET", Path: "/storage", Summary: "List storage pool definitions", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, _ *struct{}) (*storagesOut, error) {
			c := caller(ctx)
			out := []api.Storage{}
			for _, p := range s.Storage.List() {
				if c.Ev.Any("/storage/"+p.Storage, auditPrivs...) {
					out = append(out, p)
				}
			}
			return &storagesOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "create-storage", Method: "POST", Path: "/storage", Summary: "Define a storage pool", Tags: tags, DefaultStatus: 201},
		Perm{Path: "/storage", Privs: []string{"Datastore.Allocate"}}, func(ctx context.Context, in *storageCreateIn) (*storageOut, error) {
			p, err := s.Storage.Create(ctx, in.Body)
			if err != nil {
				return nil, err
			}
			return &storageOut{ETag: etag(p.Digest), Body: p}, nil
		})
	register(s, huma.Operation{OperationID: "get-storage", Method: "GET", Path: sp, Summary: "Get a storage pool definition", Tags: tags},
		Perm{Path: sp, Privs: auditPrivs, Any: true}, func(ctx context.Context, in *StorageParam) (*storageOut, error) {
			p, err := s.Storage.Get(in.Storage)
			if err != nil {
				return nil, err
			}
			return &storageOut{ETag: etag(p.Digest), Body: p}, nil
		})
	register(s, huma.Operation{OperationID: "update-storage", Method: "PUT", Path: sp, Summary: "Change a storage pool definition", Tags: tags},
		Perm{Path: sp, Privs: []string{"Datastore.Allocate"}}, func(ctx context.Context, in *storageUpdateIn) (*storageOut, error) {
			p, err := s.Storage.Update(ctx, in.Storage, ifMatch(in.IfMatch), in.Body)
			if err != nil {
				return nil, err
			}
			return &storageOut{ETag: etag(p.Digest), Body: p}, nil
		})
	register(s, huma.Operation{OperationID: "delete-storage", Method: "DELETE", Path: sp, Summary: "Remove a storage pool definition (the data stays)", Tags: tags, DefaultStatus: 204},
		Perm{Path: sp, Privs: []string{"Datastore.Allocate"}}, func(ctx context.Context, in *storageDeleteIn) (*struct{}, error) {
			return nil, s.Storage.Delete(ctx, in.Storage, ifMatch(in.IfMatch), in.Force)
		})

	nsp := "/nodes/{node}/storage"
	register(s, huma.Operation{OperationID: "list-node-storage", Method: "GET", Path: nsp, Summary: "Status of every pool on a node", Tags: tags},
		Perm{Authenticated: true}, func(ctx context.Context, in *NodeParam) (*storageStatusesOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			c := caller(ctx)
			out := []api.StorageStatus{}
			for _, p := range s.Storage.List() {
				if c.Ev.Any("/storage/"+p.Storage, auditPrivs...) {
					out = append(out, s.Storage.Status(ctx, p))
				}
			}
			return &storageStatusesOut{Body: out}, nil
		})
	register(s, huma.Operation{OperationID: "get-node-storage-status", Method: "GET", Path: nsp + "/{storage}/status", Summary: "Status of one pool on a node", Tags: tags},
		Perm{Path: sp, Privs: auditPrivs, Any: true}, func(ctx context.Context, in *NodeStorageParam) (*storageStatusOut, error) {
			if err := s.local(in.Node); err != nil {
				return nil, err
			}
			p, err := s.Storage.Get(in.Storage)
			if err != nil {
				return nil, err
			}
			return &storageStatusOut{Body: s.Storage.Status(ctx, p)}, nil
		})
	pool := func(ctx context.Context, node, id string) (storage.Pool, error) {
		if err := s.local(node); err != nil {
			return nil, err
		}
		return s.Storage.Pool(ctx, id)
	}
	// onVolume resolves a volume of a pool on this node and runs fn under
	// the pool's lock: the shape every mutating volume operation shares.
	onVolume := func(ctx context.Context, in VolumeParam, fn func(p storage.Pool, name string) error) error {
		name, err := volName(in.Storage, in.Volume)
		if err != nil {
			return err
		}
		if err := needGuest(ctx, in.Storage, name, "VM.Config.Disk"); err != nil {
			return err
		}
		p, err := pool(ctx, in.Node, in.Storage)
		if err != nil {
			return err
		}
		defer s.Storage.Lock(in.Storage)()
		return storageErr(fn(p, name))
	}
	register(s, huma.Operation{OperationID: "list-content", Method: "GET", Path: nsp + "/{storage}/content", Summary: "List volumes on a pool", Tags: tags},
		Perm{Path: sp, Privs: auditPrivs, Any: true}, func(ctx context.Context, in *contentIn) (*volumesOut, error) {
			p, err := pool(ctx, in.Node, in.Storage)
			if err != nil {
				return nil, err
			}
			vols, err := p.List(ctx, in.Content, in.VMID)
			if err != nil {
				return nil, storageErr(err)
			}
			return &volumesOut{Body: vols}, nil
		})
	register(s, huma.Operation{OperationID: "alloc-volume", Method: "POST", Path: nsp + "/{storage}/content", Summary: "Allocate a guest volume", Tags: tags, DefaultStatus: 201},
		Perm{Path: sp, Privs: []string{"Datastore.AllocateSpace"}}, func(ctx context.Context, in *allocIn) (*volumeOut, error) {
			size, err := storage.ParseSize(in.Body.Size)
			if err != nil {
				return nil, errs.Invalid("size", "%v", err)
			}
			if err := needGuestID(ctx, in.Body.VMID, "VM.Config.Disk", "to allocate a volume in its name"); err != nil {
				return nil, err
			}
			p, err := pool(ctx, in.Node, in.Storage)
			if err != nil {
				return nil, err
			}
			defer s.Storage.Lock(in.Storage)()
			v, err := p.Alloc(ctx, storage.AllocRequest{VMID: in.Body.VMID, Name: in.Body.Name, Size: size, Format: in.Body.Format, Content: in.Body.Content})
			if err != nil {
				return nil, storageErr(err)
			}
			return &volumeOut{Body: v}, nil
		})
	vp := nsp + "/{storage}/content/{volume}"
	register(s, huma.Operation{OperationID: "get-volume", Method: "GET", Path: vp, Summary: "Describe a volume", Tags: tags},
		Perm{Path: sp, Privs: auditPrivs, Any: true}, func(ctx context.Context, in *VolumeParam) (*volumeOut, error) {
			name, err := volName(in.Storage, in.Volume)
			if err != nil {
				return nil, err
			}
			p, err := pool(ctx, in.Node, in.Storage)
			if err != nil {
				return nil, err
			}
			vols, err := p.List(ctx, "", 0)
			if err != nil {
				return nil, storageErr(err)
			}
			for _, v := range vols {
				if v.VolID == in.Storage+":"+name {
					return &volumeOut{Body: v}, nil
				}
			}
			return nil, errs.NotFound("volume %s:%s does not exist", in.Storage, name)
		})
	register(s, huma.Operation{OperationID: "free-volume", Method: "DELETE", Path: vp, Summary: "Free a volume", Description: "Volumes owned by a guest need force and Datastore.Allocate: normally the guest's own operations free them.", Tags: tags, DefaultStatus: 204},
		Perm{Path: sp, Privs: []string{"Datastore.AllocateSpace"}}, func(ctx context.Context, in *freeIn) (*struct{}, error) {
			name, err := volName(in.Storage, in.Volume)
			if err != nil {
				return nil, err
			}
			if owner := (storage.VolID{Storage: in.Storage, Name: name}).Owner(); owner != 0 {
				if err := needGuest(ctx, in.Storage, name, "VM.Config.Disk"); err != nil {
					return nil, err
				}
				if !in.Force {
					return nil, errs.Conflict("volume %s:%s belongs to guest %d; free it through the guest, or as an administrator with force", in.Storage, name, owner)
				}
				if !caller(ctx).Ev.Has("/storage/"+in.Storage, "Datastore.Allocate") {
					return nil, errs.Forbidden("permission denied: Datastore.Allocate required on /storage/%s to force-free a guest volume", in.Storage)
				}
			}
			p, err := pool(ctx, in.Node, in.Storage)
			if err != nil {
				return nil, err
			}
			defer s.Storage.Lock(in.Storage)()
			return nil, storageErr(p.Free(ctx, name))
		})
	register(s, huma.Operation{OperationID: "resize-volume", Method: "PUT", Path: vp + "/size", Summary: "Grow a volume", Tags: tags},
		Perm{Path: sp, Privs: []string{"Datastore.AllocateSpace"}}, func(ctx context.Context, in *resizeIn) (*volumeOut, error) {
			name, err := volName(in.Storage, in.Volume)
			if err != nil {
				return nil, err
			}
			if err := needGuest(ctx, in.Storage, name, "VM.Config.Disk"); err != nil {
				return nil, err
			}
			p, err := pool(ctx, in.Node, in.Storage)
			if err != nil {
				return nil, err
			}
			// Hold the pool lock from reading the size to resizing, so two
			// "+delta" requests both count.
			defer s.Storage.Lock(in.Storage)()
			var cur uint64
			vols, err := p.List(ctx, "", 0)
			if err != nil {
				return nil, storageErr(err)
			}
			found := false
			for _, v := range vols {
				if v.VolID == in.Storage+":"+name {
					cur, found = v.Size, true
				}
			}
			if !found {
				return nil, errs.NotFound("volume %s:%s does not exist", in.Storage, name)
			}
			size, err := storage.ParseSize(strings.TrimPrefix(in.Body.Size, "+"))
			if err != nil {
				return nil, errs.Invalid("size", "%v", err)
			}
			if strings.HasPrefix(in.Body.Size, "+") {
				size += cur
			}
			if err := p.Resize(ctx, name, size); err != nil {
				return nil, storageErr(err)
			}
			vols, _ = p.List(ctx, "", 0)
			for _, v := range vols {
				if v.VolID == in.Storage+":"+name {
					return &volumeOut{Body: v}, nil
				}
			}
			return nil, errs.NotFound("volume vanished")
		})
	register(s, huma.Operation{OperationID: "clone-volume", Method: "POST", Path: nsp + "/{storage}/clone", Summary: "Clone a volume (linked: copy-on-write from a base volume)", Tags: tags, DefaultStatus: 201},
		Perm{Path: sp, Privs: []string{"Datastore.AllocateSpace"}}, func(ctx context.Context, in *cloneIn) (*volumeOut, error) {
			name, err := volName(in.Storage, in.Body.Source)
			if err != nil {
				return nil, errs.Invalid("source", "%v", err)
			}
			// Reading a guest's disk out is what cloning the guest is.
			if err := needGuest(ctx, in.Storage, name, "VM.Clone"); err != nil {
				return nil, err
			}
			if err := needGuestID(ctx, in.Body.VMID, "VM.Config.Disk", "to create a volume in its name"); err != nil {
				return nil, err
			}
			p, err := pool(ctx, in.Node, in.Storage)
			if err != nil {
				return nil, err
			}
			defer s.Storage.Lock(in.Storage)()
			v, err := p.Clone(ctx, name, in.Body.VMID, in.Body.Linked)
			if err != nil {
				return nil, storageErr(err)
			}
			return &volumeOut{Body: v}, nil
		})
	register(s, huma.Operation{OperationID: "snapshot-volume", Method: "POST", Path: vp + "/snapshots", Summary: "Snapshot a volume (offline)", Tags: tags, DefaultStatus: 204},
		Perm{Path: sp, Privs: []string{"Datastore.AllocateSpace"}}, func(ctx context.Context, in *snapIn) (*struct{}, error) {
			return nil, onVolume(ctx, in.VolumeParam, func(p storage.Pool, name string) error { return p.Snapshot(ctx, name, in.Body.Name) })
		})
	register(s, huma.Operation{OperationID: "rollback-volume", Method: "POST", Path: vp + "/snapshots/{snap}/rollback", Summary: "Roll a volume back to a snapshot (offline)", Tags: tags, DefaultStatus: 204},
		Perm{Path: sp, Privs: []string{"Datastore.AllocateSpace"}}, func(ctx context.Context, in *snapNameIn) (*struct{}, error) {
			return nil, onVolume(ctx, in.VolumeParam, func(p storage.Pool, name string) error { return p.Rollback(ctx, name, in.Snap) })
		})
	register(s, huma.Operation{OperationID: "delete-volume-snapshot", Method: "DELETE", Path: vp + "/snapshots/{snap}", Summary: "Delete a volume snapshot", Tags: tags, DefaultStatus: 204},
		Perm{Path: sp, Privs: []string{"Datastore.AllocateSpace"}}, func(ctx context.Context, in *snapNameIn) (*struct{}, error) {
			return nil, onVolume(ctx, in.VolumeParam, func(p storage.Pool, name string) error { return p.DeleteSnapshot(ctx, name, in.Snap) })
		})

	up := huma.Operation{OperationID: "upload", Method: "POST", Path: nsp + "/{storage}/upload", Tags: tags, DefaultStatus: 201,
		Summary:     "Upload an ISO, container template, backup or snippet (raw request body, streamed to disk)",
		Metadata:    map[string]any{"stream": true},
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}}}
	register(s, up, Perm{Path: sp, Privs: []string{"Datastore.AllocateSpace"}}, func(ctx context.Context, in *uploadIn) (*volumeOut, error) {
		body, _ := ctx.Value(bodyKey{}).(io.Reader)
		if body == nil {
			return nil, errs.Invalid("body", "missing request body")
		}
		p, err := pool(ctx, in.Node, in.Storage)
		if err != nil {
			return nil, err
		}
		v, err := p.Import(ctx, in.Content, in.Filename, &hashCheck{r: body, h: sha256.New(), want: in.SHA256}, in.Overwrite)
		if err != nil {
			if errors.Is(err, errChecksum) {
				return nil, errs.Invalid("sha256", "%v", err)
			}
			return nil, storageErr(err)
		}
		return &volumeOut{Body: v}, nil
	})
	register(s, huma.Operation{OperationID: "download-url", Method: "POST", Path: nsp + "/{storage}/download-url", Summary: "Fetch a file from an HTTP(S) URL into a pool, as a task",
		Description: "The node itself fetches the URL, so this also needs Sys.Modify on /nodes/{node} (as on Proxmox): it lets the caller make the node open connections.", Tags: tags, DefaultStatus: 202},
		Perm{Path: sp, Privs: []string{"Datastore.AllocateTemplate"}}, func(ctx context.Context, in *downloadIn) (*taskRefOut, error) {
			d := in.Body
			if !caller(ctx).Ev.Has("/nodes/"+in.Node, "Sys.Modify") {
				return nil, errs.Forbidden("permission denied: Sys.Modify required on /nodes/%s to make the node fetch a URL", in.Node)
			}
			if !strings.HasPrefix(d.URL, "http://") && !strings.HasPrefix(d.URL, "https://") {
				return nil, errs.Invalid("url", "only http and https URLs")
			}
			if err := storage.CheckFilename(d.Content, d.Filename); err != nil {
				return nil, err
			}
			cfg, err := s.Storage.Get(in.Storage)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(cfg.Content, d.Content) {
				return nil, errs.Invalid("content", "pool %s does not hold %s", in.Storage, d.Content)
			}
			p, err := pool(ctx, in.Node, in.Storage)
			if err != nil {
				return nil, err
			}
			upid, err := s.Tasks.Start(ctx, "download", in.Storage, caller(ctx).String(), func(ctx context.Context, l *task.Log) error {
				l.Printf("downloading %s to %s:%s/%s", d.URL, in.Storage, d.Content, d.Filename)
				req, err := http.NewRequestWithContext(ctx, "GET", d.URL, nil)
				if err != nil {
					return err
				}
				hc := &http.Client{Timeout: 6 * time.Hour}
				resp, err := hc.Do(req)
				if err != nil {
					return fmt.Errorf("download: %w", err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != 200 {
					return fmt.Errorf("download: server answered %s", resp.Status)
				}
				l.Printf("size: %d bytes", resp.ContentLength)
				v, err := p.Import(ctx, d.Content, d.Filename, &hashCheck{r: resp.Body, h: sha256.New(), want: d.SHA256, log: l}, d.Overwrite)
				if err != nil {
					return err
				}
				l.Printf("stored %s (%d bytes)", v.VolID, v.Size)
				return nil
			})
			if err != nil {
				return nil, err
			}
			return &taskRefOut{Body: api.TaskRef{Task: upid}}, nil
		})
}

// needGuest: an operation on a guest's volume (storage.VolID.Owner)
// needs priv on the owning guest on top of the pool privilege of the
// operation: Datastore.AllocateSpace on a pool is no right over the
// guests whose disks live there.
func needGuest(ctx context.Context, storageID, name, priv string) error {
	owner := (storage.VolID{Storage: storageID, Name: name}).Owner()
	if owner == 0 {
		return nil
	}
	return needGuestID(ctx, owner, priv, fmt.Sprintf("%s:%s is its volume", storageID, name))
}

// needGuestID requires priv on /vms/<vmid> (0: no guest, nothing needed).
func needGuestID(ctx context.Context, vmid int, priv, why string) error {
	if vmid == 0 {
		return nil
	}
	path := "/vms/" + strconv.Itoa(vmid)
	if !caller(ctx).Ev.Has(path, priv) {
		return errs.Forbidden("permission denied: %s required on %s (guest %d: %s)", priv, path, vmid, why)
	}
	return nil
}
