package test

import (
	"bytes"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

// TestStorageDiskFull fills a small tmpfs pool: the upload fails with the
// filesystem's own message and leaves no partial file behind.
func TestStorageDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP reason: mounting a small tmpfs for the disk-full test needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "corral-test", mnt).CombinedOutput(); err != nil {
		t.Skipf("SKIP reason: cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	n := StartNode(t)
	c := n.Admin()
	if _, err := c.Do(bg, "POST", "/storage", nil, api.Storage{Storage: "small", Type: "dir", Path: mnt, Content: []string{"iso", "images"}}, nil); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{1}, 8<<20)
	_, err := c.Do(bg, "POST", "/nodes/n1/storage/small/upload", url.Values{"content": {"iso"}, "filename": {"big.iso"}}, bytes.NewReader(big), nil,
		client.WithHeader("Content-Type", "application/octet-stream"))
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("upload onto a full pool: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(mnt, "template", "iso"))
	if len(ents) != 0 {
		t.Fatalf("partial files left: %v", ents)
	}
	// The pool still works for what fits.
	if _, err := c.Do(bg, "POST", "/nodes/n1/storage/small/upload", url.Values{"content": {"iso"}, "filename": {"small.iso"}}, bytes.NewReader(big[:1<<20]), nil,
		client.WithHeader("Content-Type", "application/octet-stream")); err != nil {
		t.Fatalf("small upload after a failed one: %v", err)
	}
}
