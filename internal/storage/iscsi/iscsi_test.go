package iscsi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
)

const testIQN = "iqn.2024-01.org.corral-project.test:san1"

func TestValidate(t *testing.T) {
	base := func() api.Storage {
		return api.Storage{Storage: "san1", Type: "iscsi", Content: []string{"images"}, Portal: "127.0.0.1", Target: testIQN}
	}
	ok := []struct {
		portal, want string
		target       string
	}{
		{"127.0.0.1", "127.0.0.1:3260", testIQN},
		{"127.0.0.1:3261", "127.0.0.1:3261", testIQN},
		{"san.example.org", "san.example.org:3260", testIQN},
		{"SAN-1.example.org:65535", "SAN-1.example.org:65535", testIQN},
		{"san", "san:3260", "iqn.2003-01.org.linux-iscsi.host:sn.1234abcd"},
		{"[::1]", "[::1]:3260", "iqn.2024-12.com.example"},
		{"[2001:DB8::1]:3260", "[2001:db8::1]:3260", "iqn.2024-01.org.corral.test:UPPER-case.ok:x"},
		{"10.0.0.1", "10.0.0.1:3260", "eui.02004567A425678D"},
		{"10.0.0.1", "10.0.0.1:3260", "naa.52004567BA64678D"},
	}
	for _, c := range ok {
		cfg := base()
		cfg.Portal, cfg.Target = c.portal, c.target
		if err := (Plugin{}).Validate(&cfg); err != nil {
			t.Errorf("portal %q target %q: %v", c.portal, c.target, err)
			continue
		}
		if cfg.Portal != c.want || !cfg.Shared {
			t.Errorf("portal %q: normalised to %q shared=%v, want %q shared", c.portal, cfg.Portal, cfg.Shared, c.want)
		}
	}

	bad := []struct {
		name  string
		edit  func(*api.Storage)
		field string
	}{
		{"no portal", func(c *api.Storage) { c.Portal = "" }, "portal"},
		{"url", func(c *api.Storage) { c.Portal = "iscsi://127.0.0.1" }, "portal"},
		{"credentials", func(c *api.Storage) { c.Portal = "user%pw@127.0.0.1" }, "portal"},
		{"path in portal", func(c *api.Storage) { c.Portal = "127.0.0.1/iqn.x" }, "portal"},
		{"query", func(c *api.Storage) { c.Portal = "127.0.0.1?x=1" }, "portal"},
		{"space", func(c *api.Storage) { c.Portal = "127.0.0.1 " }, "portal"},
		{"port 0", func(c *api.Storage) { c.Portal = "127.0.0.1:0" }, "portal"},
		{"port too big", func(c *api.Storage) { c.Portal = "127.0.0.1:65536" }, "portal"},
		{"port leading zero", func(c *api.Storage) { c.Portal = "127.0.0.1:03260" }, "portal"},
		{"port sign", func(c *api.Storage) { c.Portal = "127.0.0.1:+3260" }, "portal"},
		{"empty port", func(c *api.Storage) { c.Portal = "127.0.0.1:" }, "portal"},
		{"bare ipv6", func(c *api.Storage) { c.Portal = "::1" }, "portal"},
		{"ipv6 zone", func(c *api.Storage) { c.Portal = "[fe80::1%eth0]" }, "portal"},
		{"ipv4 in brackets", func(c *api.Storage) { c.Portal = "[127.0.0.1]" }, "portal"},
		{"unterminated bracket", func(c *api.Storage) { c.Portal = "[::1" }, "portal"},
		{"junk after bracket", func(c *api.Storage) { c.Portal = "[::1]x" }, "portal"},
		{"short ipv4", func(c *api.Storage) { c.Portal = "127.1" }, "portal"},
		{"octal ipv4", func(c *api.Storage) { c.Portal = "0127.0.0.1" }, "portal"},
		{"hex host", func(c *api.Storage) { c.Portal = "0x7f000001" }, "portal"},
		{"numeric tld", func(c *api.Storage) { c.Portal = "host.123" }, "portal"},
		{"underscore", func(c *api.Storage) { c.Portal = "san_1.example" }, "portal"},
		{"leading dash", func(c *api.Storage) { c.Portal = "-san.example" }, "portal"},
		{"empty label", func(c *api.Storage) { c.Portal = "san..example" }, "portal"},
		{"trailing dot", func(c *api.Storage) { c.Portal = "san.example." }, "portal"},
		{"too long with port", func(c *api.Storage) { c.Portal = strings.Repeat("a.", 125) + "abc" }, "portal"},
		{"no target", func(c *api.Storage) { c.Target = "" }, "target"},
		{"not iqn", func(c *api.Storage) { c.Target = "san1" }, "target"},
		{"bad month", func(c *api.Storage) { c.Target = "iqn.2024-13.org.example:x" }, "target"},
		{"no domain", func(c *api.Storage) { c.Target = "iqn.2024-01:x" }, "target"},
		{"slash", func(c *api.Storage) { c.Target = "iqn.2024-01.org.example:a/1" }, "target"},
		{"percent", func(c *api.Storage) { c.Target = "iqn.2024-01.org.example:a%20" }, "target"},
		{"at", func(c *api.Storage) { c.Target = "iqn.2024-01.org.example:a@b" }, "target"},
		{"space in iqn", func(c *api.Storage) { c.Target = "iqn.2024-01.org.example:a b" }, "target"},
		{"empty identifier", func(c *api.Storage) { c.Target = "iqn.2024-01.org.example:" }, "target"},
		{"short eui", func(c *api.Storage) { c.Target = "eui.1234" }, "target"},
		{"too long", func(c *api.Storage) { c.Target = "iqn.2024-01.org.example:" + strings.Repeat("a", 200) }, "target"},
		{"path", func(c *api.Storage) { c.Path = "/srv" }, "path"},
		{"iso content", func(c *api.Storage) { c.Content = []string{"images", "iso"} }, "content"},
		{"rootdir only", func(c *api.Storage) { c.Content = []string{"rootdir"} }, "content"},
	}
	for _, c := range bad {
		cfg := base()
		c.edit(&cfg)
		err := (Plugin{}).Validate(&cfg)
		var e *errs.Error
		if !errors.As(err, &e) || e.Kind != errs.KindInvalid || len(e.Fields) != 1 || e.Fields[0].Field != c.field {
			t.Errorf("%s: got %v, want an invalid %s", c.name, err, c.field)
		}
	}
}

func TestCaps(t *testing.T) {
	c := Plugin{}.Caps()
	if !c.Shared || c.Snapshots || c.Clones || c.LinkedClones || c.Upload || c.Resize ||
		len(c.Formats) != 1 || c.Formats[0] != "raw" || len(c.Content) != 1 || c.Content[0] != "images" {
		t.Fatalf("caps %+v", c)
	}
}

func TestLUNNames(t *testing.T) {
	for _, n := range []string{"lun0", "lun1", "lun65535"} {
		if _, err := lunOf(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	for _, n := range []string{"lun", "lun01", "lun65536", "lun-1", "LUN1", "lun1x", "1", "100/vm-100-disk-0.raw", "lun 1"} {
		if _, err := lunOf(n); err == nil {
			t.Errorf("%s accepted", n)
		}
	}
}

func TestParseSense(t *testing.T) {
	fixed := append([]byte{0, 18}, 0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x25, 0x00, 0, 0, 0, 0)
	var se *senseError
	if err := parseSense(fixed); !errors.As(err, &se) || se.key != 5 || se.asc != 0x25 {
		t.Errorf("fixed: %v", err)
	}
	desc := []byte{0, 8, 0x72, 0x06, 0x29, 0x00, 0, 0, 0, 0}
	if err := parseSense(desc); !errors.As(err, &se) || se.key != 6 || se.asc != 0x29 {
		t.Errorf("descriptor: %v", err)
	}
	if err := parseSense(nil); !errors.As(err, &se) {
		t.Errorf("empty: %v", err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func openPool(t *testing.T, portal string) *Pool {
	t.Helper()
	cfg := api.Storage{Storage: "san1", Type: "iscsi", Content: []string{"images"}, Portal: portal, Target: testIQN}
	if err := (Plugin{}).Validate(&cfg); err != nil {
		t.Fatal(err)
	}
	p, err := Plugin{}.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Pool)
}

func TestPortalDown(t *testing.T) {
	p := openPool(t, "127.0.0.1:"+strconv.Itoa(freePort(t)))
	ctx := context.Background()
	st := p.Status(ctx)
	if st.Active || !strings.Contains(st.Reason, "connection refused") {
		t.Fatalf("status of a closed port: %+v", st)
	}
	if err := p.Activate(ctx); err == nil {
		t.Fatal("Activate succeeded on a closed port")
	}
	if _, err := p.List(ctx, "", 0); err == nil {
		t.Fatal("List succeeded on a closed port")
	}
}

// TestSilentPortal: a peer that accepts TCP but never answers must not
// hang Status; the per-read deadline ends the wait.
func TestSilentPortal(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	old := ioTimeout
	ioTimeout = 300 * time.Millisecond
	defer func() { ioTimeout = old }()
	p := openPool(t, l.Addr().String())
	start := time.Now()
	st := p.Status(context.Background())
	if st.Active || st.Reason == "" || time.Since(start) > 5*time.Second {
		t.Fatalf("status %+v after %v", st, time.Since(start))
	}
}

func TestNotSupported(t *testing.T) {
	p := openPool(t, "127.0.0.1:1")
	ctx := context.Background()
	_, err := p.Alloc(ctx, storage.AllocRequest{VMID: 100, Size: 1 << 20, Format: "raw", Content: "images"})
	checks := map[string]error{
		"alloc":    err,
		"free":     p.Free(ctx, "lun1"),
		"resize":   p.Resize(ctx, "lun1", 1<<30),
		"snapshot": p.Snapshot(ctx, "lun1", "s"),
		"rollback": p.Rollback(ctx, "lun1", "s"),
		"delsnap":  p.DeleteSnapshot(ctx, "lun1", "s"),
	}
	_, checks["clone"] = p.Clone(ctx, "lun1", 101, false)
	_, checks["import"] = p.Import(ctx, "iso", "x.iso", strings.NewReader("x"), false)
	for op, err := range checks {
		if !errors.Is(err, storage.ErrNotSupported) || !strings.Contains(err.Error(), "target") {
			t.Errorf("%s: %v", op, err)
		}
	}
	if vols, err := p.List(ctx, "iso", 0); err != nil || len(vols) != 0 {
		t.Errorf("list iso: %v %v", vols, err)
	}
	if _, err := p.Path(ctx, "lun01"); errs.KindOf(err) != errs.KindInvalid {
		t.Errorf("path of a bad name: %v", err)
	}
}

// tgtd is a private userspace iSCSI target for one test: its portal is
// on 127.0.0.1 only and its control socket has its own number, so it
// neither collides with a system tgtd nor is reachable from elsewhere.
type tgtd struct {
	t       *testing.T
	cmd     *exec.Cmd
	control string
	port    int
	log     string // tgtd's output, shown when it fails to start
	exited  chan struct{}
}

// startTgtd starts tgtd or skips the test, saying why.
func startTgtd(t *testing.T) *tgtd {
	t.Helper()
	if os.Geteuid() != 0 {
		skip(t, "tgtd needs root")
	}
	for _, bin := range []string{"tgtd", "tgtadm", "qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(bin); err != nil {
			skip(t, bin+" not installed (Debian packages tgt, qemu-utils, qemu-block-extra)")
		}
	}
	d := &tgtd{t: t, port: freePort(t), log: filepath.Join(t.TempDir(), "tgtd.log")}
	// The control "port" only names tgtd's unix socket
	// (/var/run/tgtd/socket.N, N at most 32767); pick one no other
	// instance uses.
	for n := 20000 + os.Getpid()%10000; ; n++ {
		if _, err := os.Stat(fmt.Sprintf("/var/run/tgtd/socket.%d", n)); errors.Is(err, os.ErrNotExist) {
			d.control = strconv.Itoa(n)
			break
		}
	}
	d.cmd = exec.Command("tgtd", "-f", "-C", d.control, "--iscsi", "portal=127.0.0.1:"+strconv.Itoa(d.port))
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		skip(t, "cannot start tgtd: "+err.Error())
	}
	d.exited = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := exec.Command("tgtadm", "-C", d.control, "--lld", "iscsi", "--mode", "target", "--op", "show").Run()
		c, derr := net.DialTimeout("tcp", d.addr(), time.Second)
		if err == nil && derr == nil {
			c.Close()
			break
		}
		select {
		case <-d.exited:
			skip(t, fmt.Sprintf("tgtd exited at start; log:\n%s", d.logText()))
		default:
		}
		if time.Now().After(deadline) {
			skip(t, fmt.Sprintf("tgtd did not come up: %v / %v; log:\n%s", err, derr, d.logText()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

func skip(t *testing.T, reason string) {
	t.Helper()
	fmt.Println("SKIP reason: " + reason)
	t.Skip("SKIP reason: " + reason)
}

func (d *tgtd) logText() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

func (d *tgtd) addr() string { return "127.0.0.1:" + strconv.Itoa(d.port) }

func (d *tgtd) adm(args ...string) {
	d.t.Helper()
	out, err := exec.Command("tgtadm", append([]string{"-C", d.control, "--lld", "iscsi"}, args...)...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("tgtadm %v: %v: %s", args, err, out)
	}
}

// stop kills tgtd (it ignores SIGTERM while targets exist) and removes
// the control socket it leaves behind.
func (d *tgtd) stop() {
	d.cmd.Process.Kill()
	<-d.exited
	os.Remove("/var/run/tgtd/socket." + d.control)
	os.Remove("/var/run/tgtd/socket." + d.control + ".lock")
}

func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

func TestTarget(t *testing.T) {
	d := startTgtd(t)
	dir := t.TempDir()
	lun1, lun2 := filepath.Join(dir, "lun1.img"), filepath.Join(dir, "lun2.img")
	sparse(t, lun1, 64<<20)
	sparse(t, lun2, 32<<20)
	d.adm("--mode", "target", "--op", "new", "--tid", "1", "--targetname", testIQN)
	d.adm("--mode", "logicalunit", "--op", "new", "--tid", "1", "--lun", "1", "--backing-store", lun1)
	d.adm("--mode", "logicalunit", "--op", "new", "--tid", "1", "--lun", "2", "--backing-store", lun2)
	d.adm("--mode", "target", "--op", "bind", "--tid", "1", "--initiator-address", "127.0.0.1")
	// A second target on the same portal that refuses us: corral must
	// only ever log in to its own.
	d.adm("--mode", "target", "--op", "new", "--tid", "2", "--targetname", "iqn.2024-01.org.corral-project.test:other")
	d.adm("--mode", "logicalunit", "--op", "new", "--tid", "2", "--lun", "1", "--backing-store", lun2)
	d.adm("--mode", "target", "--op", "bind", "--tid", "2", "--initiator-address", "127.0.0.2")

	ctx := context.Background()
	p := openPool(t, d.addr())
	if err := p.Activate(ctx); err != nil {
		t.Fatalf("activate: %v", err)
	}
	st := p.Status(ctx)
	if !st.Active || st.Total != 96<<20 || st.Used != st.Total || st.Avail != 0 {
		t.Fatalf("status %+v, want active with 96 MiB used", st)
	}

	vols, err := p.List(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 2 || vols[0].VolID != "san1:lun1" || vols[0].Size != 64<<20 ||
		vols[1].VolID != "san1:lun2" || vols[1].Size != 32<<20 ||
		vols[0].Format != "raw" || vols[0].Content != "images" {
		t.Fatalf("list: %+v", vols)
	}
	for _, v := range vols {
		if _, err := storage.ParseVolID(v.VolID); err != nil {
			t.Errorf("listed volume ID %s does not parse: %v", v.VolID, err)
		}
	}
	if vols, err := p.List(ctx, "images", 100); err != nil || len(vols) != 0 {
		t.Fatalf("list for vmid 100: %v %v", vols, err)
	}

	uri, err := p.Path(ctx, "lun2")
	if err != nil {
		t.Fatal(err)
	}
	if want := "iscsi://" + d.addr() + "/" + testIQN + "/2"; uri != want {
		t.Fatalf("path %s, want %s", uri, want)
	}
	if size, err := qemuImgSize(ctx, uri); err != nil || size != 32<<20 {
		t.Fatalf("qemu-img info %s: %d %v", uri, size, err)
	}
	for _, missing := range []string{"lun0", "lun3"} { // LUN 0 is tgt's controller, not a disk
		if _, err := p.Path(ctx, missing); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("path %s: %v, want not found", missing, err)
		}
	}

	// Write through QEMU's initiator, read back through the backing file.
	out, err := exec.Command("qemu-io", "-f", "raw", "-c", "write -P 0x5a 1M 1M", uri).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}
	back, err := os.ReadFile(lun2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back[1<<20:2<<20], bytes.Repeat([]byte{0x5a}, 1<<20)) || back[1<<20-1] != 0 || back[2<<20] != 0 {
		t.Fatal("data written through iscsi:// is not in the backing file")
	}

	// Write into the backing file, export through our initiator.
	f, err := os.OpenFile(lun2, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end of lun2"), 32<<20-11); err != nil {
		t.Fatal(err)
	}
	f.Close()
	h := sha256.New()
	if err := p.Export(ctx, "lun2", h); err != nil {
		t.Fatalf("export: %v", err)
	}
	want, _ := os.ReadFile(lun2)
	if sum := sha256.Sum256(want); !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Fatal("exported content differs from the backing file")
	}
	if err := p.Export(ctx, "lun3", io.Discard); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("export of a missing LUN: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	w := &cancelWriter{cancel: cancel}
	if err := p.Export(cctx, "lun1", w); !errors.Is(err, context.Canceled) || w.n >= 64<<20 {
		t.Fatalf("export cancelled after the first chunk: %v after %d bytes", err, w.n)
	}

	// The other target refuses us, with a reason (tgt hides targets an
	// ACL denies, so the reason is "not found").
	other := openPool(t, d.addr())
	other.cfg.Target = "iqn.2024-01.org.corral-project.test:other"
	if st := other.Status(ctx); st.Active || !strings.Contains(st.Reason, "iSCSI login") {
		t.Fatalf("status of a target that refuses us: %+v", st)
	}
	missing := openPool(t, d.addr())
	missing.cfg.Target = "iqn.2024-01.org.corral-project.test:nope"
	if st := missing.Status(ctx); st.Active || !strings.Contains(st.Reason, "not found") {
		t.Fatalf("status of a missing target: %+v", st)
	}

	// The portal goes down: inactive, with a reason.
	d.stop()
	if st := p.Status(ctx); st.Active || !strings.Contains(st.Reason, d.addr()) {
		t.Fatalf("status with tgtd stopped: %+v", st)
	}
}

// cancelWriter cancels its context on the first write.
type cancelWriter struct {
	cancel func()
	n      int
}

func (w *cancelWriter) Write(b []byte) (int, error) {
	w.cancel()
	w.n += len(b)
	return len(b), nil
}
