package dir

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
)

// TestLockedImageIsConflict: an image another process holds open for
// writing (a running VM) can't be snapshotted or resized offline; that is
// a 409 with a reason, not a 500 carrying qemu-img's raw message.
func TestLockedImageIsConflict(t *testing.T) {
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP reason: %s is not installed", tool)
		}
	}
	ctx := context.Background()
	p := &Pool{Cfg: api.Storage{Storage: "t", Type: "dir", Content: []string{api.ContentImages}}, Root: t.TempDir()}
	if err := p.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := p.Alloc(ctx, storage.AllocRequest{VMID: 100, Size: 16 << 20, Format: api.FormatQcow2, Content: api.ContentImages})
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(v.VolID, "t:")
	path, _ := p.Abs(name)
	// qemu-io takes the same image locks QEMU does while it sleeps.
	holder := exec.Command("qemu-io", "-f", "qcow2", path, "-c", "sleep 20000")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for QemuImg(ctx, "check", "-q", path) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // not locked yet
	}
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"snapshot", func() error { return p.Snapshot(ctx, name, "s1") }},
		{"rollback", func() error { return p.Rollback(ctx, name, "s1") }},
		{"resize", func() error { return p.Resize(ctx, name, 32<<20) }},
	} {
		err := op.do()
		if errs.KindOf(err) != errs.KindConflict {
			t.Errorf("%s of a locked image: %v (kind %v), want a conflict", op.name, err, errs.KindOf(err))
			continue
		}
		if !strings.Contains(err.Error(), "in use") {
			t.Errorf("%s: %q does not say the image is in use", op.name, err)
		}
	}
}
