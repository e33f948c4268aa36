package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
	"github.com/corral-project/corral/test/guest"
)

// serialConsole opens a VM's serial console websocket as a stream.
func serialConsole(t *testing.T, n *Node, c *client.Client, vmid int) (*bufio.Reader, func(string), func()) {
	t.Helper()
	tk, _ := c.Ticket()
	u := strings.Replace(n.URL, "https://", "wss://", 1) + fmt.Sprintf("/api/v1/vms/%d/termwebsocket", vmid)
	ctx, cancel := context.WithCancel(bg)
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tk}},
	})
	if err != nil {
		cancel()
		t.Fatalf("console websocket: %v", err)
	}
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	send := func(s string) {
		if _, err := nc.Write([]byte(s + "\n")); err != nil {
			t.Fatalf("console write: %v", err)
		}
	}
	return bufio.NewReader(nc), send, func() { nc.Close(); cancel() }
}

// expect reads lines until one contains want.
func expect(t *testing.T, r *bufio.Reader, want string, within time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				done <- err
				return
			}
			if strings.Contains(line, want) {
				done <- nil
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("console ended before %q: %v", want, err)
		}
	case <-time.After(within):
		t.Fatalf("no %q on the console within %s", want, within)
	}
}

// TestVMBootsTestGuest boots the Debian-kernel test guest through the API
// under TCG, talks to it on the serial console websocket, and shuts it
// down through ACPI.
func TestVMBootsTestGuest(t *testing.T) {
	needQEMU(t)
	dir := guest.Build(t)
	n := StartNode(t)
	c := n.Admin()
	uploadISO(t, c, filepath.Join(dir, guest.ISO), "guest.iso")
	cr, err := createVM(t, c, api.VMCreate{VMID: 100, Name: "guest", Memory: 256, Machine: "pc",
		CDROMs: []api.VMCDROM{{Volume: "local:iso/guest.iso"}}, Boot: []string{"cdrom0"},
		Disks: []api.VMDisk{{Bus: "virtio", Storage: "local", Size: "64M"}}, Start: true})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, cr.Task)
	start := time.Now()
	r, send, closeConsole := serialConsole(t, n, c, 100)
	defer closeConsole()
	// The guest may have printed its ready line before we connected: ping
	// until it answers.
	deadline := time.Now().Add(90 * time.Second)
	got := make(chan struct{})
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.TrimSpace(line) == "pong" {
				close(got)
				return
			}
		}
	}()
	for ok := false; !ok; {
		send("ping")
		select {
		case <-got:
			ok = true
		case <-time.After(2 * time.Second):
			if time.Now().After(deadline) {
				t.Fatal("the guest never answered ping on the serial console")
			}
		}
	}
	t.Logf("guest answered after %s", time.Since(start).Round(time.Millisecond))
	send("echo corral-$((6*7))")
	expect(t, r, "corral-42", 10*time.Second)

	// A snapshot of the running VM keeps its RAM: after changing it and
	// rolling back, the guest remembers the old value.
	send("echo before > /tmp/marker && echo marked")
	expect(t, r, "marked", 10*time.Second)
	var ref api.TaskRef
	if _, err := c.Do(bg, "POST", "/vms/100/snapshot", nil, api.VMSnapshotCreate{Name: "live"}, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)
	send("echo after > /tmp/marker && echo remarked")
	expect(t, r, "remarked", 10*time.Second)
	closeConsole()
	if _, err := c.Do(bg, "POST", "/vms/100/snapshot/live/rollback", nil, nil, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)
	waitStatus(t, c, 100, "running", 5*time.Second)
	r, send, closeConsole = serialConsole(t, n, c, 100)
	defer closeConsole()
	send("cat /tmp/marker")
	expect(t, r, "before", 20*time.Second)
	var snaps []api.VMSnapshot
	c.Do(bg, "GET", "/vms/100/snapshot", nil, nil, &snaps)
	if len(snaps) != 1 || !snaps[0].VMState || !snaps[0].Current {
		t.Fatalf("snapshots: %+v", snaps)
	}
	if _, err := c.Do(bg, "DELETE", "/vms/100/snapshot/live", nil, nil, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)

	// A virtio disk added while the VM runs appears in the guest.
	if _, err := c.Do(bg, "POST", "/vms/100/disks", nil, api.VMDiskAttach{VMDisk: api.VMDisk{Bus: "virtio", Storage: "local", Size: "16M"}}, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)
	found := make(chan bool, 1)
	go func() { // the only reader until it finds the line or the stream ends
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				found <- false
				return
			}
			if strings.Contains(line, "has-vdb") {
				found <- true
				return
			}
		}
	}()
	hotplugged := false
	for i := 0; i < 20 && !hotplugged; i++ {
		send("test -b /dev/vdb && echo has-vdb")
		select {
		case hotplugged = <-found:
			i = 20
		case <-time.After(time.Second):
		}
	}
	if !hotplugged {
		t.Fatal("the hotplugged disk never appeared in the guest as /dev/vdb")
	}

	// ACPI shutdown: the guest powers itself off, the VM shows stopped.
	if _, err := c.Do(bg, "POST", "/vms/100/status/shutdown", nil, api.VMShutdown{Timeout: 60}, &ref); err != nil {
		t.Fatal(err)
	}
	tk := waitOK(t, c, ref.Task)
	lines, _ := c.TaskLog(bg, tk.ID, 0, 0)
	poweredOff := false
	for _, l := range lines {
		poweredOff = poweredOff || strings.Contains(l.Text, "guest powered off")
	}
	if !poweredOff {
		t.Fatalf("shutdown did not come from the guest: %+v", lines)
	}
	waitStatus(t, c, 100, "stopped", 2*time.Second)
}

// TestVMCloudInitSeed checks the NoCloud seed a VM gets: a cidata CD-ROM
// whose files carry the settings.
func TestVMCloudInitSeed(t *testing.T) {
	needQEMU(t)
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skip("SKIP reason: xorriso is not installed")
	}
	n := StartNode(t)
	c := n.Admin()
	ci := &api.VMCloudInit{User: "ops", PasswordHash: "$6$salt$abcdefghijklmnopqrstuv", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@laptop"}, IP: "dhcp"}
	if _, err := createVM(t, c, api.VMCreate{VMID: 300, Name: "ci", Memory: 64, CloudInit: &api.VMCloudInit{SSHKeys: []string{"not a key"}}}); client.StatusOf(err) != 422 {
		t.Fatalf("bad ssh key: %v", err)
	}
	cr, err := createVM(t, c, api.VMCreate{VMID: 300, Name: "ci", Memory: 64, CloudInit: ci, VGA: "none", Start: true})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, cr.Task)
	iso := filepath.Join(n.DataDir, "run", "qemu", "300-cloudinit.iso")
	out := t.TempDir()
	if b, err := exec.Command("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", out).CombinedOutput(); err != nil {
		t.Fatalf("read seed: %v %s", err, b)
	}
	ud, _ := os.ReadFile(filepath.Join(out, "user-data"))
	md, _ := os.ReadFile(filepath.Join(out, "meta-data"))
	for _, want := range []string{"#cloud-config", "name: ops", "hashed_passwd: $6$salt$", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"} {
		if !strings.Contains(string(ud), want) {
			t.Errorf("user-data lacks %q:\n%s", want, ud)
		}
	}
	if !strings.Contains(string(md), "local-hostname: ci") {
		t.Errorf("meta-data: %s", md)
	}
	label, _ := exec.Command("xorriso", "-indev", iso, "-pvd_info").CombinedOutput()
	if !strings.Contains(string(label), "cidata") {
		t.Errorf("volume label: %s", label)
	}
}
