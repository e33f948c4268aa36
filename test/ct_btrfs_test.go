package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/corral-project/corral/api"
)

// loopBtrfs mounts a fresh 1 GiB btrfs on a loop device for the test.
func loopBtrfs(t *testing.T) string {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.btrfs")
	if err != nil {
		t.Skip("SKIP reason: mkfs.btrfs not found (apt-get install btrfs-progs)")
	}
	if fss, _ := os.ReadFile("/proc/filesystems"); !bytes.Contains(fss, []byte("btrfs")) {
		exec.Command("modprobe", "btrfs").Run()
		if fss, _ := os.ReadFile("/proc/filesystems"); !bytes.Contains(fss, []byte("btrfs")) {
			t.Skip("SKIP reason: the kernel has no btrfs support")
		}
	}
	tmp := t.TempDir()
	img, mnt := filepath.Join(tmp, "btrfs.img"), filepath.Join(tmp, "mnt")
	os.Mkdir(mnt, 0o755)
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
	t.Cleanup(func() {
		if err := exec.Command("umount", mnt).Run(); err != nil {
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	return mnt
}

// TestContainerBtrfs: containers on a btrfs pool get subvolume snapshots
// (taken while running, the container frozen for the moment) and linked
// clones of templates.
func TestContainerBtrfs(t *testing.T) {
	needLXC(t)
	mnt := loopBtrfs(t)
	n := ctNode(t)
	c := n.Admin()
	if _, err := c.CreateStorage(bg, api.Storage{Storage: "tank", Type: "btrfs", Path: mnt, Content: []string{api.ContentRootdir}}); err != nil {
		t.Fatal(err)
	}
	tmpl := busyboxTemplate(t, n, c)
	id := createCT(t, c, api.CTCreate{OSTemplate: tmpl, Hostname: "on-btrfs", Memory: 64, RootFS: api.CTRootFS{Storage: "tank", Size: "1G"}, Start: true})
	mustOut(t, c, id, "sh", "-c", "echo before > /root/state")
	upid, err := c.SnapshotCT(bg, id, api.CTSnapshotCreate{Name: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, upid)
	if out, err := exec.Command("btrfs", "subvolume", "list", mnt).CombinedOutput(); err != nil || !strings.Contains(string(out), "subvol-"+strconv.Itoa(id)+"-disk-0@s1") {
		t.Fatalf("btrfs subvolumes: %v\n%s", err, out)
	}
	mustOut(t, c, id, "sh", "-c", "echo after > /root/state")
	ctAct(t, c, id, "stop")
	upid, err = c.RollbackCT(bg, id, "s1")
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, upid)
	ctAct(t, c, id, "start")
	if got := mustOut(t, c, id, "cat", "/root/state"); got != "before" {
		t.Fatalf("after rollback: %q", got)
	}
	ctAct(t, c, id, "stop")
	upid, _ = c.DeleteCTSnapshot(bg, id, "s1")
	waitOK(t, c, upid)
	upid, err = c.TemplateCT(bg, id)
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, upid)
	cr, err := c.CloneCT(bg, id, api.CTClone{Hostname: "linked"})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, cr.Task)
	lines, _ := c.TaskLog(bg, cr.Task, 0, 0)
	linked := false
	for _, l := range lines {
		linked = linked || strings.Contains(l.Text, "(linked clone)")
	}
	if !linked {
		t.Fatalf("clone of a template on btrfs was not linked: %v", lines)
	}
	ctAct(t, c, cr.VMID, "start")
	if got := mustOut(t, c, cr.VMID, "sh", "-c", "hostname; cat /root/state"); got != "linked\nbefore" {
		t.Fatalf("linked clone: %q", got)
	}
	ctAct(t, c, cr.VMID, "stop")
	for _, x := range []int{cr.VMID, id} {
		upid, err := c.DeleteContainer(bg, x, false)
		if err != nil {
			t.Fatal(err)
		}
		waitOK(t, c, upid)
	}
	if out, _ := exec.Command("btrfs", "subvolume", "list", mnt).CombinedOutput(); strings.Contains(string(out), "vol-") {
		t.Fatalf("subvolumes left after destroy:\n%s", out)
	}
}
