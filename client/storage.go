package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/corral-project/corral/api"
)

// SplitVolID splits a volume ID "<storage>:<name>" at its first colon. ok
// is false when s has no colon or either part is empty.
func SplitVolID(s string) (storage, name string, ok bool) {
	storage, name, found := strings.Cut(s, ":")
	if !found || storage == "" || name == "" {
		return "", "", false
	}
	return storage, name, true
}

// volRef names a volume in error messages: the volume argument as given if
// it is already a full volume ID, else "<storage>:<volume>".
func volRef(storage, volume string) string {
	if strings.Contains(volume, ":") {
		return volume
	}
	return storage + ":" + volume
}

// volumePath is the path of one volume. volume may be a name
// ("100/vm-100-disk-0.qcow2") or a full volume ID ("local:100/..."); the
// server accepts both. Either way it holds a '/', so it is escaped as one
// path segment.
func volumePath(node, storage, volume string, rest ...string) string {
	return PathJoin(append([]string{"nodes", node, "storage", storage, "content", volume}, rest...)...)
}

// ---- pool definitions ----

// Storages lists the storage pool definitions the caller may see.
func (c *Client) Storages(ctx context.Context) ([]api.Storage, error) {
	var out []api.Storage
	if _, err := c.Do(ctx, http.MethodGet, "/storage", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list storage: %w", err)
	}
	return out, nil
}

// Storage returns one pool definition; its Digest can be passed to
// WithIfMatch.
func (c *Client) Storage(ctx context.Context, id string) (*api.Storage, error) {
	var s api.Storage
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("storage", id), nil, nil, &s); err != nil {
		return nil, fmt.Errorf("get storage %s: %w", id, err)
	}
	return &s, nil
}

// CreateStorage defines a pool and returns the definition as stored.
func (c *Client) CreateStorage(ctx context.Context, s api.Storage) (*api.Storage, error) {
	s.Digest = "" // read-only
	var out api.Storage
	if _, err := c.Do(ctx, http.MethodPost, "/storage", nil, s, &out); err != nil {
		return nil, fmt.Errorf("create storage %s: %w", s.Storage, err)
	}
	return &out, nil
}

// UpdateStorage changes the fields set in u; pass WithIfMatch to make the
// change conditional on the definition's digest.
func (c *Client) UpdateStorage(ctx context.Context, id string, u api.StorageUpdate, opts ...RequestOption) (*api.Storage, error) {
	var out api.Storage
	if _, err := c.Do(ctx, http.MethodPut, PathJoin("storage", id), nil, u, &out, opts...); err != nil {
		return nil, fmt.Errorf("update storage %s: %w", id, err)
	}
	return &out, nil
}

// DeleteStorage removes a pool definition; the data on it is kept. While
// guest volumes remain on the pool the server refuses unless force.
func (c *Client) DeleteStorage(ctx context.Context, id string, force bool, opts ...RequestOption) error {
	if _, err := c.Do(ctx, http.MethodDelete, PathJoin("storage", id), forceQuery(force), nil, nil, opts...); err != nil {
		return fmt.Errorf("delete storage %s: %w", id, err)
	}
	return nil
}

func forceQuery(force bool) url.Values {
	if !force {
		return nil
	}
	return url.Values{"force": {"true"}}
}

// ---- pools on a node ----

// NodeStorage returns the status of every pool the caller may see on node.
func (c *Client) NodeStorage(ctx context.Context, node string) ([]api.StorageStatus, error) {
	var out []api.StorageStatus
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("nodes", node, "storage"), nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list storage of node %s: %w", node, err)
	}
	return out, nil
}

// StorageStatus returns the status of one pool on node. A pool that is not
// usable there is reported inactive with a reason, not as an error.
func (c *Client) StorageStatus(ctx context.Context, node, id string) (*api.StorageStatus, error) {
	var s api.StorageStatus
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("nodes", node, "storage", id, "status"), nil, nil, &s); err != nil {
		return nil, fmt.Errorf("get status of storage %s on %s: %w", id, node, err)
	}
	return &s, nil
}

// Content lists the volumes on a pool; content ("" for all) and vmid (0
// for all) filter the list.
func (c *Client) Content(ctx context.Context, node, id, content string, vmid int) ([]api.Volume, error) {
	q := url.Values{}
	if content != "" {
		q.Set("content", content)
	}
	if vmid != 0 {
		q.Set("vmid", strconv.Itoa(vmid))
	}
	var out []api.Volume
	if _, err := c.Do(ctx, http.MethodGet, PathJoin("nodes", node, "storage", id, "content"), q, nil, &out); err != nil {
		return nil, fmt.Errorf("list content of storage %s on %s: %w", id, node, err)
	}
	return out, nil
}

// AllocVolume allocates a guest volume on a pool.
func (c *Client) AllocVolume(ctx context.Context, node, id string, v api.VolumeCreate) (*api.Volume, error) {
	var out api.Volume
	if _, err := c.Do(ctx, http.MethodPost, PathJoin("nodes", node, "storage", id, "content"), nil, v, &out); err != nil {
		return nil, fmt.Errorf("allocate volume on storage %s: %w", id, err)
	}
	return &out, nil
}

// Volume describes one volume. volume is its name on the pool or its full
// volume ID, as with every volume argument below.
func (c *Client) Volume(ctx context.Context, node, id, volume string) (*api.Volume, error) {
	var out api.Volume
	if _, err := c.Do(ctx, http.MethodGet, volumePath(node, id, volume), nil, nil, &out); err != nil {
		return nil, fmt.Errorf("get volume %s: %w", volRef(id, volume), err)
	}
	return &out, nil
}

// FreeVolume deletes a volume. Volumes owned by a guest need force (and
// Datastore.Allocate): normally the guest's own operations free them.
func (c *Client) FreeVolume(ctx context.Context, node, id, volume string, force bool) error {
	if _, err := c.Do(ctx, http.MethodDelete, volumePath(node, id, volume), forceQuery(force), nil, nil); err != nil {
		return fmt.Errorf("free volume %s: %w", volRef(id, volume), err)
	}
	return nil
}

// ResizeVolume grows a volume to size ("20G"), or by size when it starts
// with "+" ("+5G"), and returns the resized volume.
func (c *Client) ResizeVolume(ctx context.Context, node, id, volume, size string) (*api.Volume, error) {
	var out api.Volume
	if _, err := c.Do(ctx, http.MethodPut, volumePath(node, id, volume, "size"), nil, api.VolumeResize{Size: size}, &out); err != nil {
		return nil, fmt.Errorf("resize volume %s: %w", volRef(id, volume), err)
	}
	return &out, nil
}

// CloneVolume copies cl.Source (on the same pool) for guest cl.VMID; a
// linked clone is copy-on-write from a base volume.
func (c *Client) CloneVolume(ctx context.Context, node, id string, cl api.VolumeClone) (*api.Volume, error) {
	var out api.Volume
	if _, err := c.Do(ctx, http.MethodPost, PathJoin("nodes", node, "storage", id, "clone"), nil, cl, &out); err != nil {
		return nil, fmt.Errorf("clone volume %s: %w", volRef(id, cl.Source), err)
	}
	return &out, nil
}

// SnapshotVolume takes an offline snapshot of a volume.
func (c *Client) SnapshotVolume(ctx context.Context, node, id, volume, snap string) error {
	body := struct {
		Name string `json:"name"`
	}{snap}
	if _, err := c.Do(ctx, http.MethodPost, volumePath(node, id, volume, "snapshots"), nil, body, nil); err != nil {
		return fmt.Errorf("snapshot volume %s: %w", volRef(id, volume), err)
	}
	return nil
}

// RollbackVolume rolls a volume back to a snapshot (offline).
func (c *Client) RollbackVolume(ctx context.Context, node, id, volume, snap string) error {
	if _, err := c.Do(ctx, http.MethodPost, volumePath(node, id, volume, "snapshots", snap, "rollback"), nil, nil, nil); err != nil {
		return fmt.Errorf("roll volume %s back to %s: %w", volRef(id, volume), snap, err)
	}
	return nil
}

// DeleteVolumeSnapshot deletes a volume snapshot.
func (c *Client) DeleteVolumeSnapshot(ctx context.Context, node, id, volume, snap string) error {
	if _, err := c.Do(ctx, http.MethodDelete, volumePath(node, id, volume, "snapshots", snap), nil, nil, nil); err != nil {
		return fmt.Errorf("delete snapshot %s of volume %s: %w", snap, volRef(id, volume), err)
	}
	return nil
}

// ---- uploads and downloads ----

// Upload streams r to a pool as file filename of the given content type
// (iso, vztmpl, backup or snippets) and returns the new volume. size is the
// number of bytes r will yield, sent as Content-Length; a negative size
// means unknown (the body is sent chunked). sha256, when not empty, is the
// hex digest the server verifies before the file appears; overwrite
// replaces an existing file of that name.
//
// r is read once, as the request is sent, and is never closed. Unlike the
// other helpers the request is not bounded by the client's Timeout, which
// would cut a large upload short: it is bounded by ctx only.
func (c *Client) Upload(ctx context.Context, node, id, content, filename string, r io.Reader, size int64, sha256 string, overwrite bool) (*api.Volume, error) {
	q := url.Values{"content": {content}, "filename": {filename}}
	if sha256 != "" {
		q.Set("sha256", sha256)
	}
	if overwrite {
		q.Set("overwrite", "true")
	}
	var out api.Volume
	if err := c.doUpload(ctx, PathJoin("nodes", node, "storage", id, "upload"), q, r, size, &out); err != nil {
		return nil, fmt.Errorf("upload %s to storage %s: %w", filename, id, err)
	}
	return &out, nil
}

// readerOnly hides every method of a reader but Read, so that net/http
// neither closes the caller's reader nor rewinds it.
type readerOnly struct{ io.Reader }

// doUpload sends a raw request body without the client's per-request
// timeout and decodes the JSON answer into out, as Do does.
func (c *Client) doUpload(ctx context.Context, path string, query url.Values, r io.Reader, size int64, out any) error {
	const method = http.MethodPost
	opts := []RequestOption{WithHeader("Content-Type", "application/octet-stream")}
	var body io.Reader = http.NoBody
	if r != nil && size != 0 {
		body = readerOnly{r}
		// Lets the server refuse (bad name, no permission, file exists)
		// before a large body is sent for nothing.
		opts = append(opts, WithHeader("Expect", "100-continue"))
	}
	req, err := c.newRequest(ctx, method, path, query, body, opts)
	if err != nil {
		return err
	}
	if body == http.NoBody {
		req.ContentLength = 0
	} else if size > 0 {
		req.ContentLength = size
	} else {
		req.ContentLength = -1 // unknown: chunked
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("%s %s: response larger than %d bytes", method, path, maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeProblem(resp.StatusCode, resp.Header.Get("Content-Type"), data)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

// DownloadURL makes node fetch an http(s) URL into a pool, as a task, and
// returns the task's UPID; follow it with FollowTaskLog or WaitTask.
func (c *Client) DownloadURL(ctx context.Context, node, id string, d api.DownloadURL) (string, error) {
	return c.taskRef(ctx, http.MethodPost, PathJoin("nodes", node, "storage", id, "download-url"), nil, d, fmt.Sprintf("download %s to storage %s", d.URL, id))
}
