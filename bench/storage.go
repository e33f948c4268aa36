package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

// Volumes of the clone benchmark: the 10 GiB template disk with
// 64 MiB written into it, owned by VM 900 (dir) and 901 (btrfs); clones
// go to 910 and 911.
const (
	cloneBaseSize  = "10G"
	cloneBaseBytes = 10 << 30
	cloneWrite     = "64M"
	dirBaseVMID    = 900
	dirCloneVMID   = 910
	btrfsBaseVMID  = 901
	btrfsCloneVMID = 911
	btrfsPoolID    = "benchbtrfs"
	btrfsImageSize = 12 << 30
)

// Targets from the storage issue.
const (
	targetUploadRatio = 0.70
	targetCloneTime   = time.Second
)

// storageResult is the storage phase.
type storageResult struct {
	fsType      string // of the data dir, where both copies land
	uploadBytes int64
	cp, upload  []time.Duration // alternating runs
	anchor      []time.Duration // the same body to a minimal HTTPS server in the bench
	sha256MBps  float64         // SHA-256 throughput of this CPU, which every upload pays

	dirBase         string // path of the dir base image
	dirAPI, dirHand []time.Duration
	dirInfo         []time.Duration // one `qemu-img info` of the base, for scale
	dirBacking      string          // backing file qemu-img reported for the API's clones

	btrfsSkip         string // why the btrfs series did not run
	btrfsAPI, btrfsHd []time.Duration
	btrfsVersion      string
}

func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

// storagePhase starts a fresh daemon and runs the upload and clone
// benchmarks against its "local" dir pool and a loop-mounted btrfs pool.
func (l *lab) storagePhase(ctx context.Context) (storageResult, error) {
	var r storageResult
	n, err := l.newNode("storage")
	if err != nil {
		return r, err
	}
	logf("storage: starting a fresh daemon")
	if _, err := n.start(ctx); err != nil {
		return r, err
	}
	defer n.stop()
	c, err := n.client()
	if err != nil {
		return r, err
	}
	defer c.Close()
	if _, err := c.Login(ctx, "admin@corral", l.password); err != nil {
		return r, err
	}
	pool := filepath.Join(n.dataDir, "storage") // the "local" pool's path
	r.fsType = fsType(pool)
	if err := l.measureUpload(ctx, c, pool, &r); err != nil {
		return r, fmt.Errorf("upload: %w", err)
	}
	if err := l.measureDirClones(ctx, c, pool, &r); err != nil {
		return r, fmt.Errorf("dir linked clones: %w", err)
	}
	err = l.measureBtrfsClones(ctx, c, &r)
	if errors.Is(err, errSkip) {
		r.btrfsSkip = skipReason(err)
		logf("storage: btrfs skipped: %s", r.btrfsSkip)
		err = nil
	}
	if err != nil {
		return r, fmt.Errorf("btrfs linked clones: %w", err)
	}
	return r, n.stop()
}

// makeRandomFile writes size bytes of pseudo-random data (incompressible,
// ChaCha8) to path and syncs it.
func makeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{'c', 'o', 'r', 'r', 'a', 'l'})
	if _, err := io.CopyN(f, rng, size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// measureUpload times `cp SRC DST && sync DST` and the upload API with
// the same file, alternately, deleting the result after each run.
func (l *lab) measureUpload(ctx context.Context, c *client.Client, pool string, r *storageResult) error {
	src := filepath.Join(l.root, "upload-source.iso")
	logf("storage: writing %d MiB of random data to %s", l.cfg.uploadSize>>20, src)
	if err := makeRandomFile(src, l.cfg.uploadSize); err != nil {
		return err
	}
	defer os.Remove(src)
	r.uploadBytes = l.cfg.uploadSize
	// Warm the page cache with the source, so both sides read it from
	// memory (dropping caches is not possible reliably here).
	if _, err := runCmd(ctx, "cat", src); err != nil {
		return err
	}
	r.sha256MBps = sha256Rate()
	// The upload lands in the pool's iso folder; cp writes next to it.
	isoDir := filepath.Join(pool, "template", "iso")
	if err := os.MkdirAll(isoDir, 0o755); err != nil {
		return err
	}
	const name = "bench-upload.iso"
	cpDst := filepath.Join(isoDir, ".cp-bench.iso")
	anchorDst := filepath.Join(isoDir, ".anchor-bench.iso")
	anchor := startUploadAnchor(anchorDst)
	defer anchor.Close()
	tr := newTransport(false, 1)
	tr.ExpectContinueTimeout = time.Second // as the corral client's transport
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	for i := range l.cfg.uploadRuns {
		d, err := runCmd(ctx, "cp", src, cpDst)
		if err != nil {
			return err
		}
		ds, err := runCmd(ctx, "sync", cpDst) // fsync(2) of that one file
		if err != nil {
			return err
		}
		os.Remove(cpDst)
		r.cp = append(r.cp, d+ds)

		f, err := os.Open(src)
		if err != nil {
			return err
		}
		start := time.Now()
		v, err := c.Upload(ctx, nodeName, "local", "iso", name, f, l.cfg.uploadSize, "", false)
		du := time.Since(start)
		f.Close()
		if err != nil {
			return err
		}
		if v.Size != uint64(l.cfg.uploadSize) {
			return fmt.Errorf("uploaded %s has %d bytes, want %d", v.VolID, v.Size, l.cfg.uploadSize)
		}
		if err := c.FreeVolume(ctx, nodeName, "local", "iso/"+name, false); err != nil {
			return err
		}
		r.upload = append(r.upload, du)

		da, err := uploadToAnchor(ctx, hc, anchor.URL, src, l.cfg.uploadSize)
		if err != nil {
			return fmt.Errorf("HTTPS anchor: %w", err)
		}
		os.Remove(anchorDst)
		r.anchor = append(r.anchor, da)
		logf("storage: run %d/%d: cp+sync %s (%.0f MB/s), API upload %s (%.0f MB/s), HTTPS anchor %s (%.0f MB/s)", i+1, l.cfg.uploadRuns,
			msShort(d+ds), mbps(r.uploadBytes, d+ds), msShort(du), mbps(r.uploadBytes, du), msShort(da), mbps(r.uploadBytes, da))
	}
	return nil
}

// startUploadAnchor is the upload with nothing of corral's behind it: a
// minimal net/http server (HTTPS, HTTP/2) in the bench process that
// copies the request body into dst with a 1 MiB buffer, as the dir pool's
// import does, and fsyncs it. The difference to the API is corral's own
// cost (routing, authentication, hashing, the pool); the difference to cp
// is the cost of moving the bytes through TLS and HTTP on this machine.
func startUploadAnchor(dst string) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Create(dst)
		if err == nil {
			_, err = io.CopyBuffer(f, r.Body, make([]byte, 1<<20))
			if serr := f.Sync(); err == nil {
				err = serr
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	return srv
}

// uploadToAnchor sends the file as the corral client does (raw body,
// Content-Length, Expect: 100-continue) and times it until the answer.
func uploadToAnchor(ctx context.Context, hc *http.Client, url, src string, size int64) (time.Duration, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, struct{ io.Reader }{f})
	if err != nil {
		return 0, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Expect", "100-continue")
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != http.StatusCreated {
		return d, fmt.Errorf("status %s", resp.Status)
	}
	return d, nil
}

// sha256Rate hashes 256 MiB in memory and returns MB/s: the server hashes
// every upload as it streams (to check a given sha256), so this bounds
// what the copy loop can reach on this CPU.
func sha256Rate() float64 {
	buf := make([]byte, 1<<20)
	h := sha256.New()
	start := time.Now()
	for range 256 {
		h.Write(buf)
	}
	return mbps(256<<20, time.Since(start))
}

// qemuImgInfo is the part of `qemu-img info --output=json` checked here.
type qemuImgInfo struct {
	Format          string `json:"format"`
	VirtualSize     int64  `json:"virtual-size"`
	BackingFilename string `json:"backing-filename"`
}

func imgInfo(ctx context.Context, path string) (qemuImgInfo, error) {
	var info qemuImgInfo
	out, err := cmdOutput(ctx, "qemu-img", "info", "--output=json", "-U", path)
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal([]byte(out), &info)
}

// measureDirClones allocates the qcow2 base on the local pool, writes
// 64 MiB into it and times linked clones through the API against
// `qemu-img create -b` by hand.
func (l *lab) measureDirClones(ctx context.Context, c *client.Client, pool string, r *storageResult) error {
	logf("storage: dir: allocating a %s qcow2 base volume, writing %s into it", cloneBaseSize, cloneWrite)
	base, err := c.AllocVolume(ctx, nodeName, "local", api.VolumeCreate{VMID: dirBaseVMID, Name: fmt.Sprintf("base-%d-disk-0", dirBaseVMID), Size: cloneBaseSize, Format: api.FormatQcow2})
	if err != nil {
		return err
	}
	_, baseName, _ := client.SplitVolID(base.VolID)
	r.dirBase = filepath.Join(pool, "images", baseName) // names are <vmid>/<file>
	if _, err := runCmd(ctx, "qemu-io", "-f", "qcow2", "-c", "write 0 "+cloneWrite, r.dirBase); err != nil {
		return err
	}
	hand := filepath.Join(l.root, "hand-clone.qcow2")
	for i := range l.cfg.cloneRuns {
		start := time.Now()
		v, err := c.CloneVolume(ctx, nodeName, "local", api.VolumeClone{Source: baseName, VMID: dirCloneVMID, Linked: true})
		d := time.Since(start)
		if err != nil {
			return err
		}
		_, cloneName, _ := client.SplitVolID(v.VolID)
		info, err := imgInfo(ctx, filepath.Join(pool, "images", cloneName))
		if err != nil {
			return err
		}
		if info.BackingFilename != r.dirBase || info.VirtualSize != cloneBaseBytes {
			return fmt.Errorf("clone %s: backing %q, size %d; want %q, %d", v.VolID, info.BackingFilename, info.VirtualSize, r.dirBase, int64(cloneBaseBytes))
		}
		r.dirBacking = info.BackingFilename
		if err := c.FreeVolume(ctx, nodeName, "local", v.VolID, true); err != nil {
			return err
		}
		r.dirAPI = append(r.dirAPI, d)

		dh, err := runCmd(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", r.dirBase, "-F", "qcow2", hand)
		if err != nil {
			return err
		}
		os.Remove(hand)
		r.dirHand = append(r.dirHand, dh)
		di, err := runCmd(ctx, "qemu-img", "info", "--output=json", r.dirBase)
		if err != nil {
			return err
		}
		r.dirInfo = append(r.dirInfo, di)
		logf("storage: dir clone %d/%d: API %s, qemu-img by hand %s", i+1, l.cfg.cloneRuns, ms(d), ms(dh))
	}
	return nil
}

// mountBtrfs makes a sparse image file, formats it and loop-mounts it,
// registering the unmount and the loop device's release with the lab.
func (l *lab) mountBtrfs(ctx context.Context) (string, error) {
	if os.Geteuid() != 0 {
		return "", skipf("mounting a loop-device btrfs needs root")
	}
	for _, tool := range []string{"mkfs.btrfs", "btrfs", "losetup", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", skipf("%s not found (apt-get install btrfs-progs util-linux)", tool)
		}
	}
	if fss, _ := os.ReadFile("/proc/filesystems"); !bytes.Contains(fss, []byte("btrfs")) {
		exec.CommandContext(ctx, "modprobe", "btrfs").Run()
		if fss, _ := os.ReadFile("/proc/filesystems"); !bytes.Contains(fss, []byte("btrfs")) {
			return "", skipf("the kernel has no btrfs support (modprobe btrfs failed)")
		}
	}
	img, mnt := filepath.Join(l.root, "btrfs.img"), filepath.Join(l.root, "btrfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(img)
	if err != nil {
		return "", err
	}
	err = f.Truncate(btrfsImageSize) // sparse
	f.Close()
	if err != nil {
		return "", err
	}
	if _, err := runCmd(ctx, "mkfs.btrfs", "-q", img); err != nil {
		return "", skipf("mkfs.btrfs failed: %v", err)
	}
	dev, err := cmdOutput(ctx, "losetup", "--find", "--show", img)
	if err != nil {
		return "", skipf("no loop device: %v", err)
	}
	l.atClose(func() { undo("losetup", "-d", dev) })
	if _, err := runCmd(ctx, "mount", "-t", "btrfs", dev, mnt); err != nil {
		return "", skipf("cannot mount a loop-device btrfs here: %v", err)
	}
	l.atClose(func() {
		if undo("umount", mnt) != nil {
			undo("umount", "-l", mnt)
		}
	})
	logf("storage: btrfs on %s (%s, %d GiB sparse) mounted at %s", dev, img, btrfsImageSize>>30, mnt)
	return mnt, nil
}

// measureBtrfsClones defines a btrfs pool on a loop device and times
// linked clones of a raw base through the API against a `btrfs subvolume
// snapshot` by hand.
func (l *lab) measureBtrfsClones(ctx context.Context, c *client.Client, r *storageResult) error {
	mnt, err := l.mountBtrfs(ctx)
	if err != nil {
		return err
	}
	if out, err := cmdOutput(ctx, "btrfs", "--version"); err == nil {
		r.btrfsVersion = firstLine(out)
	}
	if _, err := c.CreateStorage(ctx, api.Storage{Storage: btrfsPoolID, Type: "btrfs", Path: mnt, Content: []string{api.ContentImages, api.ContentRootdir}}); err != nil {
		return err
	}
	logf("storage: btrfs: allocating a %s raw base volume, writing %s into it", cloneBaseSize, cloneWrite)
	base, err := c.AllocVolume(ctx, nodeName, btrfsPoolID, api.VolumeCreate{VMID: btrfsBaseVMID, Name: fmt.Sprintf("base-%d-disk-0", btrfsBaseVMID), Size: cloneBaseSize, Format: api.FormatRaw})
	if err != nil {
		return err
	}
	_, baseName, _ := client.SplitVolID(base.VolID)
	// A disk on btrfs is a subvolume images/<vmid>/<name> holding disk.raw.
	subvol := func(vmid int, volName string) string {
		return filepath.Join(mnt, "images", fmt.Sprint(vmid), trimExt(filepath.Base(volName)))
	}
	baseSub := subvol(btrfsBaseVMID, baseName)
	baseFile := filepath.Join(baseSub, "disk.raw")
	if _, err := runCmd(ctx, "qemu-io", "-f", "raw", "-c", "write 0 "+cloneWrite, baseFile); err != nil {
		return err
	}
	// Commit the written data now, so the first snapshot does not pay for it.
	if _, err := runCmd(ctx, "btrfs", "filesystem", "sync", mnt); err != nil {
		return err
	}
	want, err := readHead(baseFile)
	if err != nil {
		return err
	}
	hand := filepath.Join(mnt, "hand-snapshot")
	for i := range l.cfg.cloneRuns {
		start := time.Now()
		v, err := c.CloneVolume(ctx, nodeName, btrfsPoolID, api.VolumeClone{Source: baseName, VMID: btrfsCloneVMID, Linked: true})
		d := time.Since(start)
		if err != nil {
			return err
		}
		_, cloneName, _ := client.SplitVolID(v.VolID)
		cloneFile := filepath.Join(subvol(btrfsCloneVMID, cloneName), "disk.raw")
		if err := sameDisk(cloneFile, want); err != nil {
			return fmt.Errorf("clone %s: %w", v.VolID, err)
		}
		if err := c.FreeVolume(ctx, nodeName, btrfsPoolID, v.VolID, true); err != nil {
			return err
		}
		r.btrfsAPI = append(r.btrfsAPI, d)

		dh, err := runCmd(ctx, "btrfs", "subvolume", "snapshot", baseSub, hand)
		if err != nil {
			return err
		}
		if _, err := runCmd(ctx, "btrfs", "subvolume", "delete", hand); err != nil {
			return err
		}
		r.btrfsHd = append(r.btrfsHd, dh)
		logf("storage: btrfs clone %d/%d: API %s, btrfs subvolume snapshot by hand %s", i+1, l.cfg.cloneRuns, ms(d), ms(dh))
	}
	if err := c.FreeVolume(ctx, nodeName, btrfsPoolID, base.VolID, true); err != nil {
		return err
	}
	return c.DeleteStorage(ctx, btrfsPoolID, true)
}

func trimExt(name string) string { return name[:len(name)-len(filepath.Ext(name))] }

// readHead returns the first 64 KiB of a disk image.
func readHead(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 64<<10)
	_, err = io.ReadFull(f, b)
	return b, err
}

// sameDisk checks that a clone is usable: a 10 GiB disk whose first
// bytes are the base's.
func sameDisk(path string, head []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() != cloneBaseBytes {
		return fmt.Errorf("%s has %d bytes, want %d", path, fi.Size(), int64(cloneBaseBytes))
	}
	got, err := readHead(path)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, head) {
		return fmt.Errorf("%s does not start with the base's data", path)
	}
	return nil
}
