package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
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
		Cores: 2, VCPUs: 1, Hotplug: []string{"cpu", "memory"},
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
	// While the snapshot runs, the VM is locked: a change is refused and
	// the refusal names the lock.
	name := "renamed"
	_, lockErr := c.Do(bg, "PUT", "/vms/100/config", nil, api.VMUpdate{Name: &name}, nil)
	if tk, _ := c.Task(bg, ref.Task); lockErr == nil && tk.Status == "running" {
		t.Fatal("a config change went through while the snapshot task held the lock")
	} else if lockErr != nil && !strings.Contains(lockErr.Error(), "locked (snapshot)") {
		t.Fatalf("change during snapshot: %v", lockErr)
	}
	t.Logf("change during the snapshot: %v", lockErr)
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
	_, hotplugged := pollGuest(t, r, send, "test -b /dev/vdb && echo has-vdb", "has-vdb", 20*time.Second)
	if !hotplugged {
		t.Fatal("the hotplugged disk never appeared in the guest as /dev/vdb")
	}

	// The running VM's disk moves to another pool (drive-mirror); the
	// guest keeps using it and the data is in the new volume.
	send("echo corral-mirror > /dev/vdb && sync && echo written")
	expect(t, r, "written", 10*time.Second)
	second := t.TempDir()
	if _, err := c.Do(bg, "POST", "/storage", nil, api.Storage{Storage: "second", Type: "dir", Path: second, Content: []string{"images"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(bg, "POST", "/vms/100/disks/1/move", nil, api.VMDiskMove{Storage: "second", Format: "raw", Delete: true}, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)
	var vm api.VM
	c.Do(bg, "GET", "/vms/100/config", nil, nil, &vm)
	if len(vm.Config.Disks) != 2 || !strings.HasPrefix(vm.Config.Disks[1].Volume, "second:") {
		t.Fatalf("after the live move: %+v", vm.Config.Disks)
	}
	moved, _ := filepath.Glob(filepath.Join(second, "images", "100", "*"))
	if len(moved) != 1 {
		t.Fatalf("moved volume files: %v", moved)
	}
	if b, err := os.ReadFile(moved[0]); err != nil || !strings.HasPrefix(string(b), "corral-mirror") {
		t.Fatalf("the mirrored volume does not hold the guest's data (%v): %q", err, b[:min(len(b), 32)])
	}
	send("echo 3 > /proc/sys/vm/drop_caches; head -c 13 /dev/vdb; echo")
	expect(t, r, "corral-mirror", 10*time.Second)

	// The last disk comes out of the running VM: the guest loses /dev/vdb.
	if _, err := c.Do(bg, "DELETE", "/vms/100/disks/1", url.Values{"free": {"true"}}, nil, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)
	if _, ok := pollGuest(t, r, send, "test -b /dev/vdb || echo no-vdb", "no-vdb", 20*time.Second); !ok {
		t.Fatal("the unplugged disk is still in the guest")
	}

	// vCPUs and memory are added to the running VM; the guest sees them,
	// and nothing is left pending.
	const countBlocks = "echo memblocks-$(ls -d /sys/devices/system/memory/memory* | wc -l)"
	line, ok := pollGuest(t, r, send, countBlocks, "memblocks-", 10*time.Second)
	var blocks int
	if _, err := fmt.Sscanf(line[strings.Index(line, "memblocks-"):], "memblocks-%d", &blocks); !ok || err != nil {
		t.Fatalf("memory blocks in the guest: %q %v", line, err)
	}
	two, more := 2, 384
	if _, err := c.Do(bg, "PUT", "/vms/100/config", nil, api.VMUpdate{VCPUs: &two, Memory: &more}, &vm); err != nil {
		t.Fatal(err)
	}
	if vm.Pending != nil || vm.Config.VCPUs != 2 || vm.Config.Memory != 384 {
		t.Fatalf("after the live change: config %+v pending %+v", vm.Config, vm.Pending)
	}
	if _, ok := pollGuest(t, r, send, "test -d /sys/devices/system/cpu/cpu1 && echo has-cpu1", "has-cpu1", 20*time.Second); !ok {
		t.Fatal("the hotplugged vCPU never appeared in the guest")
	}
	// The DIMM shows up as one more memory block (128 MiB each).
	if got, ok := pollGuest(t, r, send, countBlocks, fmt.Sprintf("memblocks-%d", blocks+1), 20*time.Second); !ok {
		t.Fatalf("the guest had %d memory blocks and still has (%s)", blocks, got)
	}
	// A NIC is plugged into the running VM on a bridge and the guest gets
	// eth0; taken out again, the guest releases it and it is gone.
	br := testBridge(t)
	nets := []api.VMNet{{Model: "virtio", Bridge: br}}
	if _, err := c.Do(bg, "PUT", "/vms/100/config", nil, api.VMUpdate{Nets: &nets}, &vm); err != nil {
		t.Fatal(err)
	}
	if vm.Pending != nil || len(vm.Config.Nets) != 1 {
		t.Fatalf("NIC hotplug: config %+v pending %+v", vm.Config.Nets, vm.Pending)
	}
	if _, ok := pollGuest(t, r, send, "test -e /sys/class/net/eth0 && echo has-eth0", "has-eth0", 20*time.Second); !ok {
		t.Fatal("the hotplugged NIC never appeared in the guest as eth0")
	}
	none := []api.VMNet{}
	vm = api.VM{} // absent fields must not keep the previous answer's values
	if _, err := c.Do(bg, "PUT", "/vms/100/config", nil, api.VMUpdate{Nets: &none}, &vm); err != nil {
		t.Fatal(err)
	}
	if vm.Pending != nil || len(vm.Config.Nets) != 0 {
		t.Fatalf("NIC unplug: config %+v pending %+v", vm.Config.Nets, vm.Pending)
	}
	if _, ok := pollGuest(t, r, send, "test -e /sys/class/net/eth0 || echo no-eth0", "no-eth0", 20*time.Second); !ok {
		t.Fatal("the unplugged NIC is still in the guest")
	}
	if err := exec.Command("ip", "link", "show", "tap100i0").Run(); err == nil {
		t.Fatal("the unplugged NIC's tap is still on the host")
	}
	less := 256
	if _, err := c.Do(bg, "PUT", "/vms/100/config", nil, api.VMUpdate{Memory: &less}, &vm); err != nil {
		t.Fatal(err)
	}
	if vm.Pending == nil || vm.Pending.Memory != 256 || vm.Config.Memory != 384 {
		t.Fatalf("shrinking memory should wait for a restart: config %d pending %+v", vm.Config.Memory, vm.Pending)
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

// pollGuest sends cmd on the serial console until a line containing want
// comes back, for up to within.
// It returns the matching line, or the last line read and false.
func pollGuest(t *testing.T, r *bufio.Reader, send func(string), cmd, want string, within time.Duration) (string, bool) {
	t.Helper()
	type result struct {
		line string
		ok   bool
	}
	found := make(chan result, 1)
	var last atomic.Value
	last.Store("")
	go func() { // the only reader until it finds the line or the stream ends
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				found <- result{line, false}
				return
			}
			line = strings.TrimSpace(line)
			last.Store(line)
			if strings.Contains(line, want) && !strings.Contains(line, strings.TrimSpace(cmd)) {
				t.Logf("guest: %s", line)
				found <- result{line, true}
				return
			}
		}
	}()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		send(cmd)
		select {
		case res := <-found:
			return res.line, res.ok
		case <-time.After(time.Second):
		}
	}
	return last.Load().(string), false
}

// TestVMUEFIFirmware boots a VM with OVMF: the firmware's shell comes up
// on the serial console and runs a command; the VM got its own UEFI
// variable store, which goes with the VM when it is destroyed.
func TestVMUEFIFirmware(t *testing.T) {
	needQEMU(t)
	if _, err := os.Stat("/usr/share/OVMF/OVMF_CODE_4M.fd"); err != nil {
		t.Skip("Debian's ovmf package is not installed (make test installs it)")
	}
	n := StartNode(t)
	c := n.Admin()
	cr, err := createVM(t, c, api.VMCreate{VMID: 120, Name: "uefi", Memory: 256, BIOS: "ovmf", Machine: "q35", Start: true})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, cr.Task)
	r, send, closeConsole := serialConsole(t, n, c, 120)
	defer closeConsole()
	// The shell takes a carriage return as Enter.
	if line, ok := pollGuest(t, r, send, "echo corral uefi\r", "corral uefi", 120*time.Second); !ok {
		t.Fatalf("the UEFI shell never answered on the serial console (last line %q)", line)
	}
	closeConsole()
	var vm api.VM
	c.Do(bg, "GET", "/vms/120/config", nil, nil, &vm)
	if vm.Config.EFIVars == "" {
		t.Fatalf("no UEFI variable store recorded: %+v", vm.Config)
	}
	upid, _ := vmAction(t, c, 120, "stop")
	waitOK(t, c, upid)
	var ref api.TaskRef
	if _, err := c.Do(bg, "DELETE", "/vms/120", nil, nil, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)
	var vols []api.Volume
	c.Do(bg, "GET", "/nodes/n1/storage/local/content", nil, nil, &vols)
	for _, v := range vols {
		if v.VolID == vm.Config.EFIVars {
			t.Fatalf("the UEFI variable store outlived its VM: %s", v.VolID)
		}
	}
}
