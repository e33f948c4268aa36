package btrfs

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
)

var allContent = []string{api.ContentImages, api.ContentRootdir, api.ContentISO, api.ContentVZTmpl, api.ContentBackup, api.ContentSnippets}

// mountBtrfs makes a 1 GiB sparse file, formats it as btrfs and mounts it
// through a loop device in a temporary directory; it is unmounted and
// removed when the test ends. Tests skip, saying why, where that cannot
// work (not root, no btrfs-progs, no btrfs module, no loop devices).
func mountBtrfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP reason: mounting a loop-device btrfs needs root")
	}
	if _, err := tool(); err != nil {
		t.Skipf("SKIP reason: %v (apt-get install btrfs-progs)", err)
	}
	mkfs := ""
	for _, d := range append(slices.Clone(toolDirs), filepath.SplitList(os.Getenv("PATH"))...) {
		if _, err := os.Stat(filepath.Join(d, "mkfs.btrfs")); err == nil {
			mkfs = filepath.Join(d, "mkfs.btrfs")
			break
		}
	}
	if mkfs == "" {
		t.Skip("SKIP reason: mkfs.btrfs not found (apt-get install btrfs-progs)")
	}
	if fss, _ := os.ReadFile("/proc/filesystems"); !bytes.Contains(fss, []byte("btrfs")) {
		exec.Command("modprobe", "btrfs").Run()
		if fss, _ := os.ReadFile("/proc/filesystems"); !bytes.Contains(fss, []byte("btrfs")) {
			t.Skip("SKIP reason: the kernel has no btrfs support (modprobe btrfs failed)")
		}
	}
	tmp := t.TempDir()
	img, mnt := filepath.Join(tmp, "btrfs.img"), filepath.Join(tmp, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", img).CombinedOutput(); err != nil {
		t.Skipf("SKIP reason: mkfs.btrfs failed: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("SKIP reason: cannot mount a loop-device btrfs here: %v: %s", err, bytes.TrimSpace(out))
	}
	// Registered after TempDir, so it runs before the removal.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; unmounting lazily", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	return mnt
}

func newPool(t *testing.T) *Pool {
	t.Helper()
	mnt := mountBtrfs(t)
	cfg := api.Storage{Storage: "tank", Type: "btrfs", Path: mnt, Content: allContent}
	if err := (Plugin{}).Validate(&cfg); err != nil {
		t.Fatal(err)
	}
	sp, err := Plugin{}.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return sp.(*Pool)
}

// isSubvolume asks btrfs itself.
func isSubvolume(t *testing.T, path string) bool {
	t.Helper()
	bin, err := tool()
	if err != nil {
		t.Fatal(err)
	}
	return exec.Command(bin, "subvolume", "show", path).Run() == nil
}

// subvolumes lists every subvolume path of the filesystem at mnt.
func subvolumes(t *testing.T, mnt string) string {
	t.Helper()
	bin, _ := tool()
	out, err := exec.Command(bin, "subvolume", "list", mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("subvolume list: %v: %s", err, out)
	}
	return string(out)
}

func volName(v api.Volume) string { return strings.TrimPrefix(v.VolID, "tank:") }

func alloc(t *testing.T, p *Pool, req storage.AllocRequest) api.Volume {
	t.Helper()
	v, err := p.Alloc(context.Background(), req)
	if err != nil {
		t.Fatalf("alloc %+v: %v", req, err)
	}
	return v
}

// writeVol writes data at off into a raw disk, or into file "f" of a
// container subvolume.
func writeVol(t *testing.T, p *Pool, name string, off int64, data []byte) {
	t.Helper()
	path, err := p.Path(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.IsDir() {
		if err := os.WriteFile(filepath.Join(path, "f"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

func readVol(t *testing.T, p *Pool, name string, off int64, n int) []byte {
	t.Helper()
	path, err := p.Path(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.IsDir() {
		b, err := os.ReadFile(filepath.Join(path, "f"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestCapsAndValidate(t *testing.T) {
	caps := Plugin{}.Caps()
	if slices.Contains(caps.Formats, api.FormatQcow2) || !caps.Snapshots || !caps.LinkedClones {
		t.Fatalf("caps %+v", caps)
	}
	for _, tc := range []struct {
		path string
		ok   bool
	}{{"/srv/btrfs", true}, {"/srv/btrfs/", true}, {"srv", false}, {"/", false}, {"/srv/../etc", false}, {"", false}} {
		cfg := api.Storage{Storage: "tank", Type: "btrfs", Path: tc.path, Content: allContent}
		if err := (Plugin{}).Validate(&cfg); (err == nil) != tc.ok {
			t.Errorf("path %q: err %v", tc.path, err)
		}
	}
	cfg := api.Storage{Storage: "tank", Type: "btrfs", Path: "/srv/btrfs", Content: allContent, Shared: true}
	if err := (Plugin{}).Validate(&cfg); errs.KindOf(err) != errs.KindInvalid {
		t.Errorf("shared: %v", err)
	}
}

func TestMissingTool(t *testing.T) {
	old := toolDirs
	toolDirs = nil
	t.Cleanup(func() { toolDirs = old })
	t.Setenv("PATH", t.TempDir())
	err := createSubvol(context.Background(), filepath.Join(t.TempDir(), "x"))
	if !errors.Is(err, ErrNoTool) || !strings.Contains(err.Error(), "btrfs-progs") {
		t.Fatalf("got %v", err)
	}
}

func TestStatusNotBtrfs(t *testing.T) {
	d := t.TempDir()
	if ok, err := isBtrfs(d); err != nil || ok {
		t.Skipf("SKIP reason: the temporary directory %s is on btrfs (or statfs failed: %v)", d, err)
	}
	sp, _ := Plugin{}.Open(api.Storage{Storage: "tank", Type: "btrfs", Path: d, Content: allContent})
	st := sp.Status(context.Background())
	if st.Active || !strings.Contains(st.Reason, "not a btrfs filesystem") {
		t.Fatalf("status %+v", st)
	}
	if err := sp.Activate(context.Background()); err == nil || !strings.Contains(err.Error(), "not a btrfs filesystem") {
		t.Fatalf("activate: %v", err)
	}
	if ents, _ := os.ReadDir(d); len(ents) != 0 {
		t.Fatalf("activate on a non-btrfs path created %v", ents)
	}
	sp, _ = Plugin{}.Open(api.Storage{Storage: "tank", Type: "btrfs", Path: filepath.Join(d, "missing"), Content: allContent})
	if st := sp.Status(context.Background()); st.Active || st.Reason == "" {
		t.Fatalf("missing path: %+v", st)
	}
}

func TestStatusBtrfs(t *testing.T) {
	p := newPool(t)
	st := p.Status(context.Background())
	if !st.Active || st.Total == 0 || st.Avail == 0 || st.Avail > st.Total {
		t.Fatalf("status %+v", st)
	}
}

func TestAllocRaw(t *testing.T) {
	p := newPool(t)
	ctx := context.Background()
	alloc(t, p, storage.AllocRequest{VMID: 100, Name: "vm-100-disk-5", Size: 1 << 20}) // for the conflict case
	for _, tc := range []struct {
		name string
		req  storage.AllocRequest
		want string // volume name, or "" when it must fail with kind
		kind errs.Kind
	}{
		{"default", storage.AllocRequest{VMID: 100, Size: 64 << 20}, "100/vm-100-disk-0.raw", 0},
		{"explicit raw", storage.AllocRequest{VMID: 100, Size: 3 << 20, Format: "raw", Content: "images"}, "100/vm-100-disk-1.raw", 0},
		{"named", storage.AllocRequest{VMID: 100, Name: "vm-100-disk-7", Size: 1 << 30}, "100/vm-100-disk-7.raw", 0},
		{"named with ext", storage.AllocRequest{VMID: 100, Name: "base-100-disk-3.raw", Size: 1 << 20}, "100/base-100-disk-3.raw", 0},
		{"other guest", storage.AllocRequest{VMID: 101, Size: 1 << 20}, "101/vm-101-disk-0.raw", 0},
		{"qcow2", storage.AllocRequest{VMID: 100, Format: "qcow2", Size: 1 << 20}, "", errs.KindInvalid},
		{"subvol format for images", storage.AllocRequest{VMID: 100, Format: "subvol", Size: 1 << 20}, "", errs.KindInvalid},
		{"subvol name for a disk", storage.AllocRequest{VMID: 100, Name: "subvol-100-disk-9", Size: 1 << 20}, "", errs.KindInvalid},
		{"foreign owner", storage.AllocRequest{VMID: 100, Name: "vm-101-disk-9", Size: 1 << 20}, "", errs.KindInvalid},
		{"traversal name", storage.AllocRequest{VMID: 100, Name: "../vm-100-disk-9", Size: 1 << 20}, "", errs.KindInvalid},
		{"taken", storage.AllocRequest{VMID: 100, Name: "vm-100-disk-5", Size: 1 << 20}, "", errs.KindConflict},
		{"iso content", storage.AllocRequest{VMID: 100, Content: "iso", Size: 1 << 20}, "", errs.KindInvalid},
		{"bad vmid", storage.AllocRequest{VMID: 7, Size: 1 << 20}, "", errs.KindInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := p.Alloc(ctx, tc.req)
			if tc.want == "" {
				if errs.KindOf(err) != tc.kind {
					t.Fatalf("got %v, %v; want kind %d", v, err, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if volName(v) != tc.want || v.Format != "raw" || v.Content != "images" || v.Size != tc.req.Size || v.VMID != tc.req.VMID {
				t.Fatalf("got %+v", v)
			}
			path, err := p.Path(ctx, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(path) != "disk.raw" {
				t.Fatalf("path %s", path)
			}
			st, err := os.Stat(path)
			if err != nil || uint64(st.Size()) != tc.req.Size {
				t.Fatalf("stat %s: %v %v", path, st, err)
			}
			if !isSubvolume(t, filepath.Dir(path)) {
				t.Fatalf("%s is not a subvolume", filepath.Dir(path))
			}
			if v.Used > 1<<20 {
				t.Fatalf("not sparse: %d bytes used", v.Used)
			}
		})
	}
}

func TestAllocRootdir(t *testing.T) {
	p := newPool(t)
	ctx := context.Background()
	v := alloc(t, p, storage.AllocRequest{VMID: 200, Content: "rootdir", Size: 8 << 30})
	if volName(v) != "200/subvol-200-disk-0" || v.Format != "subvol" || v.Content != "rootdir" || v.VMID != 200 {
		t.Fatalf("got %+v", v)
	}
	path, err := p.Path(ctx, volName(v))
	if err != nil {
		t.Fatal(err)
	}
	if !isSubvolume(t, path) {
		t.Fatalf("%s is not a subvolume", path)
	}
	if _, err := p.Alloc(ctx, storage.AllocRequest{VMID: 200, Content: "rootdir", Format: "raw"}); errs.KindOf(err) != errs.KindInvalid {
		t.Fatalf("raw rootdir: %v", err)
	}
	for _, tc := range []struct {
		name string
		kind errs.Kind
	}{{"subvol-200-disk-0", errs.KindConflict}, {"vm-200-disk-0", errs.KindInvalid}, {"base-200-disk-0", errs.KindInvalid}, {"subvol-201-disk-0", errs.KindInvalid}} {
		if _, err := p.Alloc(ctx, storage.AllocRequest{VMID: 200, Content: "rootdir", Name: tc.name}); errs.KindOf(err) != tc.kind {
			t.Errorf("name %s: %v", tc.name, err)
		}
	}
	if v, err := p.Alloc(ctx, storage.AllocRequest{VMID: 200, Content: "rootdir", Name: "basevol-200-disk-1"}); err != nil || volName(v) != "200/basevol-200-disk-1" {
		t.Errorf("basevol: %+v %v", v, err)
	}
}

func TestConcurrentAlloc(t *testing.T) {
	p := newPool(t)
	const n = 8
	var wg sync.WaitGroup
	names := make([]string, 2*n)
	errc := make(chan error, 2*n)
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := storage.AllocRequest{VMID: 100, Size: 1 << 20}
			if i%2 == 1 {
				req.Content = "rootdir"
			}
			v, err := p.Alloc(context.Background(), req)
			if err != nil {
				errc <- err
				return
			}
			names[i] = volName(v)
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Fatalf("name %s handed out twice: %v", n, names)
		}
		seen[n] = true
	}
	vols, err := p.List(context.Background(), "", 100)
	if err != nil || len(vols) != 2*n {
		t.Fatalf("list: %d volumes, %v", len(vols), err)
	}
}

func TestSnapshotRollback(t *testing.T) {
	p := newPool(t)
	ctx := context.Background()
	for _, tc := range []struct {
		kind string
		req  storage.AllocRequest
	}{
		{"raw", storage.AllocRequest{VMID: 100, Size: 16 << 20}},
		{"subvol", storage.AllocRequest{VMID: 100, Content: "rootdir"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			name := volName(alloc(t, p, tc.req))
			v1, v2, v3 := []byte("first version"), []byte("second version"), []byte("third version")
			writeVol(t, p, name, 4096, v1)
			if err := p.Snapshot(ctx, name, "s1"); err != nil {
				t.Fatal(err)
			}
			if err := p.Snapshot(ctx, name, "s1"); errs.KindOf(err) != errs.KindConflict {
				t.Fatalf("duplicate snapshot: %v", err)
			}
			writeVol(t, p, name, 4096, v2)
			if err := p.Snapshot(ctx, name, "s2"); err != nil {
				t.Fatal(err)
			}
			writeVol(t, p, name, 4096, v3)

			// Any snapshot, not only the latest.
			for _, step := range []struct {
				snap string
				want []byte
			}{{"s1", v1}, {"s2", v2}, {"s1", v1}} {
				if err := p.Rollback(ctx, name, step.snap); err != nil {
					t.Fatal(err)
				}
				if got := readVol(t, p, name, 4096, len(step.want)); !bytes.Equal(got, step.want) {
					t.Fatalf("after rollback to %s: %q", step.snap, got)
				}
			}
			path, _ := p.Path(ctx, name)
			if tc.kind == "raw" {
				path = filepath.Dir(path)
			}
			if !isSubvolume(t, path) {
				t.Fatal("rolled back volume is not a subvolume")
			}
			// Snapshots are read-only and hidden; no temporaries remain.
			if err := os.WriteFile(filepath.Join(path+"@s1", "x"), nil, 0o644); err == nil {
				t.Fatal("snapshot is writable")
			}
			vols, _ := p.List(ctx, "", 100)
			for _, v := range vols {
				if strings.Contains(v.VolID, "@") {
					t.Fatalf("snapshot listed: %s", v.VolID)
				}
			}
			ents, _ := os.ReadDir(filepath.Dir(path))
			for _, e := range ents {
				if strings.Contains(e.Name(), "@.") || strings.HasPrefix(e.Name(), ".") {
					t.Fatalf("temporary left behind: %s", e.Name())
				}
			}

			if err := p.DeleteSnapshot(ctx, name, "s1"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(path + "@s1"); err == nil {
				t.Fatal("snapshot still there")
			}
			if err := p.Rollback(ctx, name, "s1"); errs.KindOf(err) != errs.KindNotFound {
				t.Fatalf("rollback to deleted snapshot: %v", err)
			}
			if err := p.DeleteSnapshot(ctx, name, "s1"); errs.KindOf(err) != errs.KindNotFound {
				t.Fatalf("delete deleted snapshot: %v", err)
			}
			for _, bad := range []string{"", "../x", "a/b", ".x", "a@b", "-x", strings.Repeat("s", 41)} {
				if err := p.Snapshot(ctx, name, bad); errs.KindOf(err) != errs.KindInvalid {
					t.Fatalf("snapshot name %q: %v", bad, err)
				}
			}
			if err := p.Snapshot(ctx, "100/vm-100-disk-99.raw", "s1"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("snapshot of missing volume: %v", err)
			}
		})
	}
	if _, err := p.Import(ctx, "iso", "a.iso", strings.NewReader("x"), false); err != nil {
		t.Fatal(err)
	}
	if err := p.Snapshot(ctx, "iso/a.iso", "s1"); !errors.Is(err, storage.ErrNotSupported) {
		t.Fatalf("snapshot of an iso: %v", err)
	}
}

func TestCloneLinked(t *testing.T) {
	p := newPool(t)
	ctx := context.Background()
	base := volName(alloc(t, p, storage.AllocRequest{VMID: 100, Name: "base-100-disk-0", Size: 64 << 20}))
	data := randBytes(4 << 20)
	writeVol(t, p, base, 1<<20, data)

	start := time.Now()
	c, err := p.Clone(ctx, base, 101, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("linked clone of a 64 MiB disk: %v", time.Since(start))
	if volName(c) != "101/vm-101-disk-0.raw" || c.Size != 64<<20 || c.VMID != 101 || c.Format != "raw" {
		t.Fatalf("clone %+v", c)
	}
	if got := readVol(t, p, volName(c), 1<<20, len(data)); !bytes.Equal(got, data) {
		t.Fatal("clone data differs from base")
	}
	writeVol(t, p, volName(c), 1<<20, []byte("written to the clone"))
	if got := readVol(t, p, base, 1<<20, len(data)); !bytes.Equal(got, data) {
		t.Fatal("writing to the clone changed the base")
	}
	cp, _ := p.Path(ctx, volName(c))
	if !isSubvolume(t, filepath.Dir(cp)) {
		t.Fatal("clone is not a subvolume")
	}
	// A second clone for the same guest gets the next name.
	if c2, err := p.Clone(ctx, base, 101, true); err != nil || volName(c2) != "101/vm-101-disk-1.raw" {
		t.Fatalf("second clone: %+v %v", c2, err)
	}

	vm := volName(alloc(t, p, storage.AllocRequest{VMID: 100, Size: 1 << 20}))
	if _, err := p.Clone(ctx, vm, 101, true); errs.KindOf(err) != errs.KindInvalid {
		t.Fatalf("linked clone of a non-base volume: %v", err)
	}
	if _, err := p.Clone(ctx, "100/base-100-disk-9.raw", 101, true); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("clone of a missing volume: %v", err)
	}

	// Container templates.
	bv := volName(alloc(t, p, storage.AllocRequest{VMID: 100, Name: "basevol-100-disk-0", Content: "rootdir"}))
	writeVol(t, p, bv, 0, []byte("rootfs"))
	cv, err := p.Clone(ctx, bv, 102, true)
	if err != nil {
		t.Fatal(err)
	}
	if volName(cv) != "102/subvol-102-disk-0" || cv.Format != "subvol" || cv.Content != "rootdir" {
		t.Fatalf("clone %+v", cv)
	}
	if got := readVol(t, p, volName(cv), 0, 0); string(got) != "rootfs" {
		t.Fatalf("clone content %q", got)
	}

	// btrfs clones do not depend on their base: freeing it is safe.
	if err := p.Free(ctx, base); err != nil {
		t.Fatal(err)
	}
	if got := readVol(t, p, volName(c), 0, 1<<20); len(got) != 1<<20 {
		t.Fatal("clone unreadable after freeing its base")
	}
	if got := readVol(t, p, volName(c), 2<<20, 1<<20); !bytes.Equal(got, data[1<<20:2<<20]) {
		t.Fatal("clone data changed after freeing its base")
	}
}

func TestCloneFull(t *testing.T) {
	p := newPool(t)
	ctx := context.Background()
	src := volName(alloc(t, p, storage.AllocRequest{VMID: 100, Size: 8 << 20}))
	writeVol(t, p, src, 0, []byte("source data"))
	c, err := p.Clone(ctx, src, 103, false)
	if err != nil {
		t.Fatal(err)
	}
	if volName(c) != "103/vm-103-disk-0.raw" || c.Size != 8<<20 {
		t.Fatalf("clone %+v", c)
	}
	writeVol(t, p, src, 0, []byte("SOURCE DATA"))
	if got := readVol(t, p, volName(c), 0, 11); string(got) != "source data" {
		t.Fatalf("clone sees writes to its source: %q", got)
	}
	sv := volName(alloc(t, p, storage.AllocRequest{VMID: 100, Content: "rootdir"}))
	writeVol(t, p, sv, 0, []byte("ct"))
	cv, err := p.Clone(ctx, sv, 103, false)
	if err != nil || volName(cv) != "103/subvol-103-disk-0" {
		t.Fatalf("clone %+v %v", cv, err)
	}
}

func TestFree(t *testing.T) {
	p := newPool(t)
	ctx := context.Background()
	for _, req := range []storage.AllocRequest{{VMID: 100, Size: 1 << 20}, {VMID: 100, Content: "rootdir"}} {
		name := volName(alloc(t, p, req))
		for _, s := range []string{"s1", "s2"} {
			if err := p.Snapshot(ctx, name, s); err != nil {
				t.Fatal(err)
			}
		}
		stem := strings.TrimSuffix(filepath.Base(name), ".raw")
		if err := p.Free(ctx, name); err != nil {
			t.Fatal(err)
		}
		if list := subvolumes(t, p.Root); strings.Contains(list, stem) {
			t.Fatalf("subvolumes of %s remain:\n%s", name, list)
		}
		if ents, _ := os.ReadDir(filepath.Join(p.Root, "images", "100")); len(ents) != 0 {
			t.Fatalf("left behind: %v", ents)
		}
		if err := p.Free(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("second free: %v", err)
		}
		if _, err := p.Path(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("path after free: %v", err)
		}
	}
	// Snapshots of disk-1 must survive freeing disk-10's and vice versa.
	for range 11 {
		alloc(t, p, storage.AllocRequest{VMID: 104, Size: 1 << 20})
	}
	if err := p.Snapshot(ctx, "104/vm-104-disk-1.raw", "keep"); err != nil {
		t.Fatal(err)
	}
	if err := p.Free(ctx, "104/vm-104-disk-10.raw"); err != nil {
		t.Fatal(err)
	}
	if !isDir(filepath.Join(p.Root, "images/104/vm-104-disk-1@keep")) {
		t.Fatal("freeing disk-10 removed a snapshot of disk-1")
	}
	if _, err := p.Import(ctx, "iso", "a.iso", strings.NewReader("x"), false); err != nil {
		t.Fatal(err)
	}
	if err := p.Free(ctx, "iso/a.iso"); err != nil {
		t.Fatal(err)
	}
}

func TestList(t *testing.T) {
	p := newPool(t)
	ctx := context.Background()
	alloc(t, p, storage.AllocRequest{VMID: 100, Size: 1 << 20})
	alloc(t, p, storage.AllocRequest{VMID: 100, Size: 2 << 20})
	alloc(t, p, storage.AllocRequest{VMID: 100, Content: "rootdir"})
	alloc(t, p, storage.AllocRequest{VMID: 101, Name: "base-101-disk-0", Size: 3 << 20})
	if err := p.Snapshot(ctx, "100/vm-100-disk-0.raw", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Import(ctx, "iso", "debian.iso", strings.NewReader("iso"), false); err != nil {
		t.Fatal(err)
	}
	// Strays that are not volumes are ignored.
	os.WriteFile(filepath.Join(p.Root, "images/100/notes.txt"), nil, 0o644)
	os.Mkdir(filepath.Join(p.Root, "images/100/vm-100-disk-9"), 0o755) // no disk.raw

	for _, tc := range []struct {
		content string
		vmid    int
		want    map[string]int // volume name -> owner
	}{
		{"", 0, map[string]int{"100/vm-100-disk-0.raw": 100, "100/vm-100-disk-1.raw": 100, "100/subvol-100-disk-0": 100, "101/base-101-disk-0.raw": 101, "iso/debian.iso": 0}},
		{"images", 100, map[string]int{"100/vm-100-disk-0.raw": 100, "100/vm-100-disk-1.raw": 100}},
		{"rootdir", 0, map[string]int{"100/subvol-100-disk-0": 100}},
		{"", 101, map[string]int{"101/base-101-disk-0.raw": 101}},
		{"iso", 0, map[string]int{"iso/debian.iso": 0}},
		{"backup", 0, map[string]int{}},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.content, tc.vmid), func(t *testing.T) {
			vols, err := p.List(ctx, tc.content, tc.vmid)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, v := range vols {
				got[volName(v)] = v.VMID
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for _, v := range vols {
				if v.VolID == "tank:100/vm-100-disk-1.raw" && (v.Size != 2<<20 || v.Format != "raw" || v.Content != "images") {
					t.Fatalf("volume %+v", v)
				}
				if v.VolID == "tank:100/subvol-100-disk-0" && (v.Format != "subvol" || v.Content != "rootdir") {
					t.Fatalf("volume %+v", v)
				}
			}
		})
	}
}

func TestImportExport(t *testing.T) {
	p := newPool(t)
	ctx := context.Background()
	data := randBytes(3<<20 + 17)
	v, err := p.Import(ctx, "iso", "install.iso", bytes.NewReader(data), false)
	if err != nil {
		t.Fatal(err)
	}
	if v.VolID != "tank:iso/install.iso" || v.Size != uint64(len(data)) || v.Content != "iso" {
		t.Fatalf("imported %+v", v)
	}
	if _, err := p.Import(ctx, "iso", "install.iso", strings.NewReader("other"), false); errs.KindOf(err) != errs.KindConflict {
		t.Fatalf("import over an existing file: %v", err)
	}
	for _, bad := range []string{"../install.iso", "x/../../install.iso", ".hidden.iso", "install.exe"} {
		if _, err := p.Import(ctx, "iso", bad, strings.NewReader("x"), false); errs.KindOf(err) != errs.KindInvalid {
			t.Fatalf("import %q: %v", bad, err)
		}
	}
	var buf bytes.Buffer
	if err := p.Export(ctx, "iso/install.iso", &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("export: %v, %d bytes", err, buf.Len())
	}
	path, err := p.Path(ctx, "iso/install.iso")
	if err != nil || path != filepath.Join(p.Root, "template/iso/install.iso") {
		t.Fatalf("path %s %v", path, err)
	}
	if _, err := p.Import(ctx, "iso", "install.iso", strings.NewReader("new"), true); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := p.Export(ctx, "iso/install.iso", &buf); err != nil || buf.String() != "new" {
		t.Fatalf("export after overwrite: %v %q", err, buf.String())
	}

	disk := volName(alloc(t, p, storage.AllocRequest{VMID: 100, Size: 2 << 20}))
	writeVol(t, p, disk, 0, []byte("boot sector"))
	buf.Reset()
	if err := p.Export(ctx, disk, &buf); err != nil || buf.Len() != 2<<20 || !bytes.HasPrefix(buf.Bytes(), []byte("boot sector")) {
		t.Fatalf("export disk: %v %d", err, buf.Len())
	}
	ct := volName(alloc(t, p, storage.AllocRequest{VMID: 100, Content: "rootdir"}))
	if err := p.Export(ctx, ct, io.Discard); !errors.Is(err, storage.ErrNotSupported) {
		t.Fatalf("export subvol: %v", err)
	}
}

func TestResize(t *testing.T) {
	p := newPool(t)
	ctx := context.Background()
	disk := volName(alloc(t, p, storage.AllocRequest{VMID: 100, Size: 4 << 20}))
	if err := p.Resize(ctx, disk, 1<<30); err != nil {
		t.Fatal(err)
	}
	path, _ := p.Path(ctx, disk)
	if st, _ := os.Stat(path); st.Size() != 1<<30 {
		t.Fatalf("size %d", st.Size())
	}
	if err := p.Resize(ctx, disk, 1<<20); errs.KindOf(err) != errs.KindInvalid {
		t.Fatalf("shrink: %v", err)
	}
	ct := volName(alloc(t, p, storage.AllocRequest{VMID: 100, Content: "rootdir"}))
	if err := p.Resize(ctx, ct, 1<<30); !errors.Is(err, storage.ErrNotSupported) {
		t.Fatalf("resize subvol: %v", err)
	}
}

func TestPathTraversal(t *testing.T) {
	p := newPool(t)
	ctx := context.Background()
	// A guest folder that is a symlink out of the pool, with a disk behind it.
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(outside, "vm-105-disk-0"), 0o755)
	os.WriteFile(filepath.Join(outside, "vm-105-disk-0", "disk.raw"), []byte("secret"), 0o600)
	if err := os.Symlink(outside, filepath.Join(p.Root, "images", "105")); err != nil {
		t.Fatal(err)
	}
	// A disk whose disk.raw is a symlink to a host file.
	d := volName(alloc(t, p, storage.AllocRequest{VMID: 106, Size: 1 << 20}))
	dp, _ := p.Path(ctx, d)
	os.Remove(dp)
	if err := os.Symlink("/etc/passwd", dp); err != nil {
		t.Fatal(err)
	}

	names := []string{
		"../etc/passwd", "/etc/passwd", "100/../../etc/passwd", "100/vm-100-disk-0.raw/../../../x",
		"iso/../../../etc/passwd", "100/.hidden.raw", "100/vm-100-disk-0@s1.raw", "100/vm-100-disk-0",
		"99/vm-99-disk-0.raw", "0100/vm-100-disk-0.raw", "100/vm-100-disk-0.raw/disk.raw",
		"105/vm-105-disk-0.raw", d,
	}
	ops := map[string]func(name string) error{
		"path":     func(n string) error { _, err := p.Path(ctx, n); return err },
		"abs":      func(n string) error { _, err := p.Abs(n); return err },
		"free":     func(n string) error { return p.Free(ctx, n) },
		"resize":   func(n string) error { return p.Resize(ctx, n, 1<<30) },
		"export":   func(n string) error { return p.Export(ctx, n, io.Discard) },
		"snapshot": func(n string) error { return p.Snapshot(ctx, n, "s") },
		"rollback": func(n string) error { return p.Rollback(ctx, n, "s") },
		"clone":    func(n string) error { _, err := p.Clone(ctx, n, 107, false); return err },
	}
	for _, n := range names {
		for op, f := range ops {
			if n == d && (op == "abs" || op == "free") {
				continue // a fine name; disk.raw is checked where it is opened
			}
			err := f(n)
			switch {
			case err == nil:
				t.Errorf("%s %q succeeded", op, n)
			case n != d && errs.KindOf(err) != errs.KindInvalid:
				t.Errorf("%s %q: want a validation error, got %v", op, n, err) // rejected, not merely absent
			}
		}
	}
	// Freeing the tampered disk removes its subvolume, symlink included,
	// and nothing it points to.
	passwd, _ := os.ReadFile("/etc/passwd")
	if err := p.Free(ctx, d); err != nil {
		t.Errorf("free %s: %v", d, err)
	}
	if b, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(b, passwd) {
		t.Error("/etc/passwd changed")
	}
	if _, err := p.Alloc(ctx, storage.AllocRequest{VMID: 105, Size: 1 << 20}); err == nil {
		t.Error("alloc through a symlinked guest folder succeeded")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("something was created outside the pool: %v", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "vm-105-disk-0", "disk.raw")); string(b) != "secret" {
		t.Error("file outside the pool changed")
	}
}

// TestLinkedCloneSpeed: a linked clone of a 10 GiB template disk holding
// data must be usable in well under a second (the benchmark's budget).
func TestLinkedCloneSpeed(t *testing.T) {
	p := newPool(t)
	ctx := context.Background()
	base := volName(alloc(t, p, storage.AllocRequest{VMID: 100, Name: "base-100-disk-0", Size: 10 << 30}))
	chunk := randBytes(2 << 20)
	for _, off := range []int64{0, 1 << 30, 5 << 30, 10<<30 - 2<<20} {
		writeVol(t, p, base, off, chunk)
	}
	path, _ := p.Path(ctx, base)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Sync()
	f.Close()

	start := time.Now()
	c, err := p.Clone(ctx, base, 101, true)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// Usable: opened and read where the template has data.
	got := readVol(t, p, volName(c), 5<<30, len(chunk))
	usable := time.Since(start)
	t.Logf("linked clone of a 10 GiB raw template (8 MiB written): clone %v, usable %v", elapsed, usable)
	if !bytes.Equal(got, chunk) || c.Size != 10<<30 {
		t.Fatalf("clone content or size wrong: %+v", c)
	}
	if usable >= time.Second {
		t.Fatalf("linked clone took %v, want < 1s", usable)
	}
}
