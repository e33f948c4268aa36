package test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

func storageClient(t *testing.T, n *Node) *client.Client { return n.Admin() }

func alloc(c *client.Client, pool string, v api.VolumeCreate) (api.Volume, error) {
	var out api.Volume
	_, err := c.Do(bg, "POST", client.PathJoin("nodes", "n1", "storage", pool, "content"), nil, v, &out)
	return out, err
}

func contentOf(t *testing.T, c *client.Client, pool, content string) []api.Volume {
	t.Helper()
	var out []api.Volume
	q := url.Values{}
	if content != "" {
		q.Set("content", content)
	}
	if _, err := c.Do(bg, "GET", client.PathJoin("nodes", "n1", "storage", pool, "content"), q, nil, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func rss(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func TestStorageDefaultPoolAndVolumes(t *testing.T) {
	n := StartNode(t)
	c := storageClient(t, n)
	var pools []api.StorageStatus
	if _, err := c.Do(bg, "GET", "/nodes/n1/storage", nil, nil, &pools); err != nil {
		t.Fatal(err)
	}
	if len(pools) != 1 || pools[0].Storage != "local" || !pools[0].Active || pools[0].Total == 0 || !pools[0].Caps.LinkedClones {
		t.Fatalf("default pool: %+v", pools)
	}

	v, err := alloc(c, "local", api.VolumeCreate{VMID: 100, Size: "10G"})
	if err != nil || v.VolID != "local:100/vm-100-disk-0.qcow2" || v.Size != 10<<30 || v.Format != "qcow2" || v.VMID != 100 {
		t.Fatalf("alloc: %+v %v", v, err)
	}
	// Concurrent allocations never share a name.
	var mu sync.Mutex
	names := map[string]bool{v.VolID: true}
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := alloc(c, "local", api.VolumeCreate{VMID: 100, Size: "1M", Format: "raw"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil || names[v.VolID] {
				t.Errorf("concurrent alloc: %+v %v", v, err)
			}
			names[v.VolID] = true
		}()
	}
	wg.Wait()
	if got := len(contentOf(t, c, "local", "images")); got != 7 {
		t.Fatalf("%d images listed, want 7", got)
	}
	// Container root filesystem.
	ct, err := alloc(c, "local", api.VolumeCreate{VMID: 200, Size: "8G", Content: "rootdir"})
	if err != nil || ct.Format != "subvol" || ct.VolID != "local:200/subvol-200-disk-0" {
		t.Fatalf("rootdir alloc: %+v %v", ct, err)
	}
	// Bad input: field named, nothing written.
	bad := []struct {
		body  api.VolumeCreate
		field string
	}{
		{api.VolumeCreate{VMID: 100, Size: "10X"}, "size"},
		{api.VolumeCreate{VMID: 5, Size: "1G"}, "vmid"},
		{api.VolumeCreate{VMID: 100, Size: "1G", Format: "vmdk"}, "format"},
		{api.VolumeCreate{VMID: 100, Size: "1G", Name: "../../etc/x"}, "name"},
		{api.VolumeCreate{VMID: 100, Size: "1G", Name: "vm-101-disk-0"}, "name"},
	}
	for _, b := range bad {
		_, err := alloc(c, "local", b.body)
		var p *api.Problem
		if !errors.As(err, &p) || p.Status != 422 || !hasField(*p, b.field) {
			t.Errorf("alloc %+v: %v (want 422 on %s)", b.body, err, b.field)
		}
	}
	if got := len(contentOf(t, c, "local", "images")); got != 7 {
		t.Fatalf("bad allocations wrote volumes: %d", got)
	}
	// Path traversal through the volume path parameter.
	for _, vol := range []string{"../../../etc/passwd", "local:../x", "100/../../x", "other:100/vm-100-disk-0.qcow2"} {
		_, err := c.Do(bg, "DELETE", client.PathJoin("nodes", "n1", "storage", "local", "content", vol), nil, nil, nil)
		if client.StatusOf(err) != 422 {
			t.Errorf("free %q: %v, want 422", vol, err)
		}
	}
	// Guest-owned volumes need force.
	vp := client.PathJoin("nodes", "n1", "storage", "local", "content", "100/vm-100-disk-0.qcow2")
	if _, err := c.Do(bg, "DELETE", vp, nil, nil, nil); client.StatusOf(err) != 409 {
		t.Fatalf("free owned without force: %v", err)
	}
	if _, err := c.Do(bg, "DELETE", vp, url.Values{"force": {"true"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(n.DataDir, "storage", "images", "100", "vm-100-disk-0.qcow2")); !os.IsNotExist(err) {
		t.Fatalf("freed volume still on disk: %v", err)
	}
	// Linked clone from a base volume.
	base, err := alloc(c, "local", api.VolumeCreate{VMID: 300, Size: "1G", Name: "base-300-disk-0"})
	if err != nil {
		t.Fatal(err)
	}
	var clone api.Volume
	if _, err := c.Do(bg, "POST", "/nodes/n1/storage/local/clone", nil, api.VolumeClone{Source: base.VolID, VMID: 301, Linked: true}, &clone); err != nil {
		t.Fatal(err)
	}
	if clone.Parent != base.VolID || clone.VMID != 301 || clone.Size != 1<<30 {
		t.Fatalf("linked clone: %+v", clone)
	}
	// The base can't be freed while the clone uses it.
	bp := client.PathJoin("nodes", "n1", "storage", "local", "content", strings.TrimPrefix(base.VolID, "local:"))
	if _, err := c.Do(bg, "DELETE", bp, url.Values{"force": {"true"}}, nil, nil); client.StatusOf(err) != 409 {
		t.Fatalf("free base in use: %v", err)
	}
	// Offline qcow2 snapshot and resize.
	cp := client.PathJoin("nodes", "n1", "storage", "local", "content", strings.TrimPrefix(clone.VolID, "local:"))
	if _, err := c.Do(bg, "POST", cp+"/snapshots", nil, map[string]string{"name": "before"}, nil); err != nil {
		t.Fatal(err)
	}
	var resized api.Volume
	if _, err := c.Do(bg, "PUT", cp+"/size", nil, api.VolumeResize{Size: "+1G"}, &resized); err != nil || resized.Size != 2<<30 {
		t.Fatalf("resize: %+v %v", resized, err)
	}
	if _, err := c.Do(bg, "PUT", cp+"/size", nil, api.VolumeResize{Size: "1M"}, nil); client.StatusOf(err) != 422 {
		t.Fatalf("shrink: %v", err)
	}
}

func TestStoragePoolsValidationAndInactive(t *testing.T) {
	n := StartNode(t)
	c := storageClient(t, n)
	bad := []struct {
		cfg   api.Storage
		field string
	}{
		{api.Storage{Storage: "p1", Type: "dir", Path: "relative/path", Content: []string{"iso"}}, "path"},
		{api.Storage{Storage: "p1", Type: "dir", Content: []string{"iso"}}, "path"},
		{api.Storage{Storage: "P1", Type: "dir", Path: "/srv/x", Content: []string{"iso"}}, "storage"},
		{api.Storage{Storage: "p1", Type: "zfs", Path: "/srv/x", Content: []string{"iso"}}, "type"},
		{api.Storage{Storage: "p1", Type: "dir", Path: "/srv/x", Content: []string{"movies"}}, "content[0]"},
		{api.Storage{Storage: "p1", Type: "dir", Path: "/srv/x", Content: []string{}}, "content"},
		{api.Storage{Storage: "p1", Type: "dir", Path: "/srv/../etc", Content: []string{"iso"}}, "path"},
	}
	for _, b := range bad {
		_, err := c.Do(bg, "POST", "/storage", nil, b.cfg, nil)
		var p *api.Problem
		if !errors.As(err, &p) || p.Status != 422 || !hasField(*p, b.field) {
			t.Errorf("create %+v: %v (want 422 on %s)", b.cfg, err, b.field)
		}
	}
	var list []api.Storage
	c.Do(bg, "GET", "/storage", nil, nil, &list)
	if len(list) != 1 {
		t.Fatalf("bad pools were written: %+v", list)
	}
	// A pool whose path is missing is inactive with a reason; nothing else breaks.
	missing := filepath.Join(t.TempDir(), "not-mounted")
	if _, err := c.Do(bg, "POST", "/storage", nil, api.Storage{Storage: "gone", Type: "dir", Path: missing, Content: []string{"iso", "images"}}, nil); err != nil {
		t.Fatal(err)
	}
	var st api.StorageStatus
	if _, err := c.Do(bg, "GET", "/nodes/n1/storage/gone/status", nil, nil, &st); err != nil || st.Active || !strings.Contains(st.Reason, "not-mounted") {
		t.Fatalf("missing pool status: %+v %v", st, err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatal("an unmounted pool path was created")
	}
	var all []api.StorageStatus
	if _, err := c.Do(bg, "GET", "/nodes/n1/storage", nil, nil, &all); err != nil || len(all) != 2 {
		t.Fatalf("node storage with a broken pool: %+v %v", all, err)
	}
	if _, err := alloc(c, "gone", api.VolumeCreate{VMID: 100, Size: "1G"}); client.StatusOf(err) != 409 {
		t.Fatalf("alloc on inactive pool: %v", err)
	}
	// Privileges: audit can list but not allocate.
	c.CreateUser(bg, api.UserCreate{UserID: "aud@corral", Password: "aud-password"})
	c.UpdateACL(bg, api.ACLUpdate{Entries: []api.ACLEntry{{Path: "/storage/local", User: "aud@corral", Role: "Auditor"}}})
	aud := n.Login("aud@corral", "aud-password")
	contentOf(t, aud, "local", "")
	if _, err := alloc(aud, "local", api.VolumeCreate{VMID: 100, Size: "1G"}); client.StatusOf(err) != 403 {
		t.Fatalf("auditor alloc: %v", err)
	}
	var seen []api.Storage
	aud.Do(bg, "GET", "/storage", nil, nil, &seen)
	if len(seen) != 1 || seen[0].Storage != "local" {
		t.Fatalf("auditor sees pools %+v", seen)
	}
	// Deleting a definition with guest volumes needs force.
	alloc(c, "local", api.VolumeCreate{VMID: 100, Size: "1M"})
	if _, err := c.Do(bg, "DELETE", "/storage/local", nil, nil, nil); client.StatusOf(err) != 409 {
		t.Fatalf("delete pool in use: %v", err)
	}
}

func TestStorageUploadAndDownload(t *testing.T) {
	n := StartNode(t)
	c := storageClient(t, n)
	up := func(q url.Values, body io.Reader) (api.Volume, error) {
		var v api.Volume
		_, err := c.Do(bg, "POST", "/nodes/n1/storage/local/upload", q, body, &v, client.WithHeader("Content-Type", "application/octet-stream"))
		return v, err
	}
	isoDir := filepath.Join(n.DataDir, "storage", "template", "iso")
	leftovers := func() []string {
		ents, _ := os.ReadDir(isoDir)
		var out []string
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				out = append(out, e.Name())
			}
		}
		return out
	}

	// 300 MiB streamed: memory stays flat.
	const size = 300 << 20
	h := sha256.New()
	before := rss(t, n.cmd.Process.Pid)
	src := io.TeeReader(io.LimitReader(rand.Reader, size), h)
	pr, pw := io.Pipe()
	go func() { _, err := io.Copy(pw, src); pw.CloseWithError(err) }()
	v, err := up(url.Values{"content": {"iso"}, "filename": {"big.iso"}}, pr)
	if err != nil || v.VolID != "local:iso/big.iso" || v.Size != size {
		t.Fatalf("upload: %+v %v", v, err)
	}
	after := rss(t, n.cmd.Process.Pid)
	if grow := after - before; grow > 64<<20 {
		t.Fatalf("daemon RSS grew by %d MiB during a 300 MiB upload", grow>>20)
	}
	t.Logf("RSS before %d MiB, after %d MiB", before>>20, after>>20)
	f, _ := os.Open(filepath.Join(isoDir, "big.iso"))
	h2 := sha256.New()
	io.Copy(h2, f)
	f.Close()
	if !bytes.Equal(h.Sum(nil), h2.Sum(nil)) {
		t.Fatal("uploaded file differs")
	}
	// Existing name without overwrite: refused, file untouched.
	if _, err := up(url.Values{"content": {"iso"}, "filename": {"big.iso"}}, strings.NewReader("x")); client.StatusOf(err) != 409 {
		t.Fatalf("overwrite without flag: %v", err)
	}
	// Checksum mismatch: refused, nothing left.
	_, err = up(url.Values{"content": {"iso"}, "filename": {"sum.iso"}, "sha256": {strings.Repeat("0", 64)}}, strings.NewReader("hello"))
	if client.StatusOf(err) != 422 {
		t.Fatalf("bad sha256: %v", err)
	}
	sum := sha256.Sum256([]byte("hello"))
	if _, err := up(url.Values{"content": {"iso"}, "filename": {"sum.iso"}, "sha256": {hex.EncodeToString(sum[:])}}, strings.NewReader("hello")); err != nil {
		t.Fatalf("good sha256: %v", err)
	}
	// Bad names and content types.
	for _, q := range []url.Values{
		{"content": {"iso"}, "filename": {"../evil.iso"}},
		{"content": {"iso"}, "filename": {".hidden.iso"}},
		{"content": {"iso"}, "filename": {"notaniso.txt"}},
		{"content": {"vztmpl"}, "filename": {"x.iso"}},
		{"content": {"images"}, "filename": {"x.raw"}},
	} {
		if _, err := up(q, strings.NewReader("x")); client.StatusOf(err) != 422 {
			t.Errorf("upload %v: %v, want 422", q, err)
		}
	}
	if l := leftovers(); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}

	// download-url from a local server, as a task.
	payload := bytes.Repeat([]byte("corral"), 100000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write(payload)
	}))
	defer srv.Close()
	psum := sha256.Sum256(payload)
	var ref api.TaskRef
	if _, err := c.Do(bg, "POST", "/nodes/n1/storage/local/download-url", nil, api.DownloadURL{URL: srv.URL + "/t.tar.zst", Content: "vztmpl", Filename: "t.tar.zst", SHA256: hex.EncodeToString(psum[:])}, &ref); err != nil {
		t.Fatal(err)
	}
	task, err := c.WaitTask(bg, ref.Task)
	if err != nil || task.Status != api.TaskOK {
		t.Fatalf("download task: %+v %v", task, err)
	}
	got, _ := os.ReadFile(filepath.Join(n.DataDir, "storage", "template", "cache", "t.tar.zst"))
	if !bytes.Equal(got, payload) {
		t.Fatal("downloaded file differs")
	}
	c.Do(bg, "POST", "/nodes/n1/storage/local/download-url", nil, api.DownloadURL{URL: srv.URL + "/missing", Content: "iso", Filename: "m.iso"}, &ref)
	task, _ = c.WaitTask(bg, ref.Task)
	if task.Status != api.TaskFailed || !strings.Contains(task.ExitMsg, "404") {
		t.Fatalf("failed download: %+v", task)
	}
	if _, err := os.Stat(filepath.Join(isoDir, "m.iso")); !os.IsNotExist(err) {
		t.Fatal("failed download left a file")
	}
}
