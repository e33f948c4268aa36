package test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/url"
	"os"

	"fmt"
	"github.com/coder/websocket"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

func needQEMU(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("SKIP reason: qemu-system-x86_64 is not installed")
	}
}

type created struct {
	Task string `json:"task"`
	VMID int    `json:"vmid"`
}

func createVM(t *testing.T, c *client.Client, in api.VMCreate) (created, error) {
	t.Helper()
	var out created
	_, err := c.Do(bg, "POST", "/vms", nil, in, &out)
	return out, err
}

func waitOK(t *testing.T, c *client.Client, upid string) api.Task {
	t.Helper()
	tk, err := c.WaitTask(bg, upid)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Status != api.TaskOK {
		lines, _ := c.TaskLog(bg, upid, 0, 0)
		t.Fatalf("task %s: %s %s\n%v", upid, tk.Status, tk.ExitMsg, lines)
	}
	return tk
}

func vmAction(t *testing.T, c *client.Client, vmid int, action string) (string, error) {
	var ref api.TaskRef
	_, err := c.Do(bg, "POST", fmt.Sprintf("/vms/%d/status/%s", vmid, action), nil, nil, &ref)
	return ref.Task, err
}

func vmStatus(t *testing.T, c *client.Client, vmid int) api.VMStatus {
	t.Helper()
	var st api.VMStatus
	if _, err := c.Do(bg, "GET", fmt.Sprintf("/vms/%d/status", vmid), nil, nil, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func waitStatus(t *testing.T, c *client.Client, vmid int, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := vmStatus(t, c, vmid)
		if st.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM %d: status %s, want %s", vmid, st.Status, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestVMLifecycleAndRestart(t *testing.T) {
	needQEMU(t)
	n := StartNode(t)
	c := n.Admin()

	// Bad input: clear 4xx, nothing created.
	bad := []struct {
		in    api.VMCreate
		field string
	}{
		{api.VMCreate{Disks: []api.VMDisk{{Bus: "virtio", Storage: "nope", Size: "1G"}}}, "disks[0].storage"},
		{api.VMCreate{Disks: []api.VMDisk{{Bus: "virtio", Volume: "local:100/vm-100-disk-9.qcow2"}}}, "disks[0].volume"},
		{api.VMCreate{CDROMs: []api.VMCDROM{{Volume: "local:iso/missing.iso"}}}, "cdroms[0].volume"},
		{api.VMCreate{Memory: 8}, "memory"},
		{api.VMCreate{Boot: []string{"disk3"}}, "boot[0]"},
		{api.VMCreate{VMID: 42}, "vmid"},
	}
	for _, b := range bad {
		_, err := createVM(t, c, b.in)
		var p *api.Problem
		if !errors.As(err, &p) || p.Status != 422 || !hasField(*p, b.field) {
			t.Errorf("create %+v: %v (want 422 on %s)", b.in, err, b.field)
		}
	}
	var list []api.VM
	c.Do(bg, "GET", "/vms", nil, nil, &list)
	if len(list) != 0 {
		t.Fatalf("bad creates left VMs: %+v", list)
	}

	cr, err := createVM(t, c, api.VMCreate{VMID: 100, Name: "web1", Memory: 64, Disks: []api.VMDisk{{Bus: "virtio", Storage: "local", Size: "64M"}}, CDROMs: []api.VMCDROM{{Volume: "none"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, cr.Task)
	if _, err := createVM(t, c, api.VMCreate{VMID: 100}); client.StatusOf(err) != 409 {
		t.Fatalf("duplicate ID: %v", err)
	}
	var vm api.VM
	if _, err := c.Do(bg, "GET", "/vms/100/config", nil, nil, &vm); err != nil {
		t.Fatal(err)
	}
	if vm.Config.Disks[0].Volume != "local:100/vm-100-disk-0.qcow2" || vm.Config.UUID == "" || vm.Status != "stopped" || vm.Lock != "" {
		t.Fatalf("created VM: %+v", vm)
	}

	upid, err := vmAction(t, c, 100, "start")
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, upid)
	st := vmStatus(t, c, 100)
	if st.Status != "running" || st.PID == 0 || st.Accel == "" {
		t.Fatalf("status after start: %+v", st)
	}
	if st.Accel == "tcg" && st.Warning == "" {
		t.Fatal("TCG without a warning")
	}
	// Its own cgroup.
	if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", st.PID)); err != nil || !strings.Contains(string(cg), "corral/qemu-100") {
		t.Fatalf("QEMU not in its cgroup: %s %v", cg, err)
	}
	if _, err := vmAction(t, c, 100, "start"); client.StatusOf(err) != 409 {
		t.Fatalf("start of a running VM: %v", err)
	}
	if _, err := c.Do(bg, "DELETE", "/vms/100", nil, nil, nil); client.StatusOf(err) != 409 {
		t.Fatalf("delete of a running VM: %v", err)
	}
	// A change that needs a restart is pending while running.
	if _, err := c.Do(bg, "PUT", "/vms/100/config", nil, map[string]any{"memory": 96, "description": "now"}, &vm); err != nil {
		t.Fatal(err)
	}
	if vm.Pending == nil || vm.Pending.Memory != 96 || vm.Config.Memory != 64 || vm.Config.Description != "now" {
		t.Fatalf("pending: %+v", vm)
	}
	// VNC: a one-time ticket opens the RFB stream once.
	var vnc struct{ Ticket, Password string }
	if _, err := c.Do(bg, "POST", "/vms/100/vncproxy", nil, nil, &vnc); err != nil || vnc.Ticket == "" || len(vnc.Password) != 8 {
		t.Fatalf("vncproxy: %+v %v", vnc, err)
	}
	greeting := vncGreeting(t, n, c, 100, vnc.Ticket)
	if !strings.HasPrefix(greeting, "RFB 003.") {
		t.Fatalf("VNC greeting %q", greeting)
	}
	if _, err := c.Do(bg, "GET", "/vms/100/vncwebsocket", url.Values{"vncticket": {vnc.Ticket}}, nil, nil); client.StatusOf(err) != 403 {
		t.Fatalf("reused VNC ticket: %v", err)
	}

	// Online resize through QMP.
	var rref api.TaskRef
	if _, err := c.Do(bg, "POST", "/vms/100/disks/0/resize", nil, api.VMDiskResize{Size: "+16M"}, &rref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, rref.Task)
	if vols := contentOf(t, c, "local", "images"); len(vols) != 1 || vols[0].Size != 80<<20 {
		t.Fatalf("after online resize: %+v", vols)
	}
	for _, mv := range []api.VMDiskMove{{Storage: "local"}, {Storage: "nowhere"}} {
		if _, err := c.Do(bg, "POST", "/vms/100/disks/0/move", nil, mv, nil); client.StatusOf(err) != 422 || !strings.Contains(err.Error(), "storage") {
			t.Fatalf("move disk to %s: %v", mv.Storage, err)
		}
	}

	// Suspend/resume.
	upid, _ = vmAction(t, c, 100, "suspend")
	waitOK(t, c, upid)
	if st := vmStatus(t, c, 100); st.Status != "paused" {
		t.Fatalf("after suspend: %s", st.Status)
	}
	upid, _ = vmAction(t, c, 100, "resume")
	waitOK(t, c, upid)

	// The VM outlives the daemon, even a killed one.
	pid := st.PID
	n.Kill()
	if err := exec.Command("kill", "-0", fmt.Sprint(pid)).Run(); err != nil {
		t.Fatalf("QEMU died with the daemon: %v", err)
	}
	n.Start()
	c = n.Admin()
	st = vmStatus(t, c, 100)
	if st.Status != "running" || st.PID != pid {
		t.Fatalf("after daemon restart: %+v (pid was %d)", st, pid)
	}
	// Still controllable: stop is immediate, then the pending change applies on start.
	upid, _ = vmAction(t, c, 100, "stop")
	waitOK(t, c, upid)
	waitStatus(t, c, 100, "stopped", 2*time.Second)
	upid, _ = vmAction(t, c, 100, "start")
	waitOK(t, c, upid)
	vm = api.VM{}
	c.Do(bg, "GET", "/vms/100/config", nil, nil, &vm)
	if vm.Pending != nil || vm.Config.Memory != 96 {
		t.Fatalf("pending not applied at start: %+v", vm)
	}
	// QEMU dying is noticed within a second.
	st = vmStatus(t, c, 100)
	exec.Command("kill", "-9", fmt.Sprint(st.PID)).Run()
	waitStatus(t, c, 100, "stopped", 1500*time.Millisecond)
	var res []api.Resource
	c.Do(bg, "GET", "/cluster/resources", nil, nil, &res)
	found := false
	for _, r := range res {
		found = found || (r.VMID == 100 && r.Type == "qemu" && r.Status == "stopped" && r.Name == "web1")
	}
	if !found {
		t.Fatalf("resources: %+v", res)
	}
	// Offline snapshots go through the storage; a duplicate name is refused.
	var sref api.TaskRef
	if _, err := c.Do(bg, "POST", "/vms/100/snapshot", nil, api.VMSnapshotCreate{Name: "cold"}, &sref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, sref.Task)
	if _, err := c.Do(bg, "POST", "/vms/100/snapshot", nil, api.VMSnapshotCreate{Name: "cold"}, nil); client.StatusOf(err) != 409 {
		t.Fatalf("duplicate snapshot: %v", err)
	}
	c.Do(bg, "PUT", "/vms/100/config", nil, map[string]any{"memory": 128}, nil)
	c.Do(bg, "POST", "/vms/100/snapshot/cold/rollback", nil, nil, &sref)
	waitOK(t, c, sref.Task)
	vm = api.VM{}
	c.Do(bg, "GET", "/vms/100/config", nil, nil, &vm)
	if vm.Config.Memory != 96 {
		t.Fatalf("rollback did not restore the config: memory %d", vm.Config.Memory)
	}
	c.Do(bg, "DELETE", "/vms/100/snapshot/cold", nil, nil, &sref)
	waitOK(t, c, sref.Task)

	// Protection, then delete frees the disks.
	c.Do(bg, "PUT", "/vms/100/config", nil, map[string]any{"protection": true}, nil)
	if _, err := c.Do(bg, "DELETE", "/vms/100", nil, nil, nil); client.StatusOf(err) != 409 {
		t.Fatalf("delete protected: %v", err)
	}
	c.Do(bg, "PUT", "/vms/100/config", nil, map[string]any{"protection": false}, nil)
	var ref api.TaskRef
	if _, err := c.Do(bg, "DELETE", "/vms/100", nil, nil, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)
	if vols := contentOf(t, c, "local", "images"); len(vols) != 0 {
		t.Fatalf("disks left after delete: %+v", vols)
	}
}

func TestVMStartFailureKeepsConfig(t *testing.T) {
	needQEMU(t)
	n := StartNode(t)
	c := n.Admin()
	cr, err := createVM(t, c, api.VMCreate{VMID: 150, Memory: 64, BIOS: "ovmf"})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, cr.Task)
	// Make QEMU itself fail: a huge memory size it cannot allocate.
	c.Do(bg, "PUT", "/vms/150/config", nil, map[string]any{"bios": "seabios", "memory": 4194304}, nil)
	upid, _ := vmAction(t, c, 150, "start")
	tk, _ := c.WaitTask(bg, upid)
	if tk.Status != api.TaskFailed || !strings.Contains(tk.ExitMsg, "QEMU") {
		t.Fatalf("start with impossible memory: %+v", tk)
	}
	var vm api.VM
	c.Do(bg, "GET", "/vms/150/config", nil, nil, &vm)
	if vm.Status != "stopped" || vm.Config.Memory != 4194304 {
		t.Fatalf("after a failed start: %+v", vm)
	}
}

// Ten concurrent creates all succeed: operations queue, they don't time out.
func TestVMParallelCreates(t *testing.T) {
	needQEMU(t)
	n := StartNode(t)
	c := n.Admin()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[int]bool{}
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cr, err := createVM(t, c, api.VMCreate{Memory: 64, Disks: []api.VMDisk{{Bus: "virtio", Storage: "local", Size: "16M"}}})
			if err != nil {
				t.Error(err)
				return
			}
			tk, err := c.WaitTask(bg, cr.Task)
			if err != nil || tk.Status != api.TaskOK {
				t.Errorf("create %d: %+v %v", cr.VMID, tk, err)
			}
			mu.Lock()
			ids[cr.VMID] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ids) != 10 {
		t.Fatalf("got %d distinct VMs", len(ids))
	}
	if vols := contentOf(t, c, "local", "images"); len(vols) != 10 {
		t.Fatalf("%d disks for 10 VMs", len(vols))
	}
}

// A template and ten concurrent linked clones: all succeed, sharing the base.
func TestVMTemplateAndParallelClones(t *testing.T) {
	needQEMU(t)
	n := StartNode(t)
	c := n.Admin()
	cr, err := createVM(t, c, api.VMCreate{VMID: 900, Name: "tpl", Memory: 64, Disks: []api.VMDisk{{Bus: "virtio", Storage: "local", Size: "256M"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, cr.Task)
	// A full clone of a plain VM.
	var full created
	if _, err := c.Do(bg, "POST", "/vms/900/clone", nil, api.VMClone{NewID: 950}, &full); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, full.Task)
	// Move the full clone's disk to another pool, then grow it offline.
	second := t.TempDir()
	if _, err := c.Do(bg, "POST", "/storage", nil, api.Storage{Storage: "second", Type: "dir", Path: second, Content: []string{"images"}}, nil); err != nil {
		t.Fatal(err)
	}
	var ref api.TaskRef
	if _, err := c.Do(bg, "POST", "/vms/950/disks/0/move", nil, api.VMDiskMove{Storage: "second", Format: "raw", Delete: true}, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)
	var moved api.VM
	c.Do(bg, "GET", "/vms/950/config", nil, nil, &moved)
	if moved.Config.Disks[0].Volume != "second:950/vm-950-disk-0.raw" {
		t.Fatalf("moved disk: %+v", moved.Config.Disks)
	}
	c.Do(bg, "POST", "/vms/950/disks/0/resize", nil, api.VMDiskResize{Size: "512M"}, &ref)
	waitOK(t, c, ref.Task)
	if vols := contentOf(t, c, "second", "images"); len(vols) != 1 || vols[0].Size != 512<<20 {
		t.Fatalf("after offline resize: %+v", vols)
	}
	// Attach a new disk, import a copy of the moved one, detach and free.
	for _, a := range []api.VMDiskAttach{
		{VMDisk: api.VMDisk{Bus: "scsi", Storage: "local", Size: "32M"}},
		{VMDisk: api.VMDisk{Bus: "sata", Storage: "local", Format: "qcow2"}, ImportFrom: "second:950/vm-950-disk-0.raw"},
	} {
		if _, err := c.Do(bg, "POST", "/vms/950/disks", nil, a, &ref); err != nil {
			t.Fatal(err)
		}
		waitOK(t, c, ref.Task)
	}
	moved = api.VM{}
	c.Do(bg, "GET", "/vms/950/config", nil, nil, &moved)
	if len(moved.Config.Disks) != 3 || moved.Config.Disks[2].Bus != "sata" {
		t.Fatalf("attached disks: %+v", moved.Config.Disks)
	}
	imported := moved.Config.Disks[2].Volume
	if _, err := c.Do(bg, "POST", "/vms/950/disks", nil, api.VMDiskAttach{VMDisk: api.VMDisk{Bus: "virtio", Storage: "local"}, ImportFrom: "/etc/shadow"}, nil); client.StatusOf(err) != 403 {
		t.Fatalf("import from a host path as admin@corral: %v", err)
	}
	c.Do(bg, "DELETE", "/vms/950/disks/2", url.Values{"free": {"1"}}, nil, &ref)
	waitOK(t, c, ref.Task)
	for _, v := range contentOf(t, c, "local", "images") {
		if v.VolID == imported {
			t.Fatalf("detached and freed disk still there: %s", imported)
		}
	}
	if _, err := c.Do(bg, "POST", "/vms/900/template", nil, nil, &ref); err != nil {
		t.Fatal(err)
	}
	waitOK(t, c, ref.Task)
	var tpl api.VM
	c.Do(bg, "GET", "/vms/900/config", nil, nil, &tpl)
	if !tpl.Config.Template || tpl.Config.Disks[0].Volume != "local:900/base-900-disk-0.qcow2" {
		t.Fatalf("template: %+v", tpl.Config)
	}
	if _, err := vmAction(t, c, 900, "start"); client.StatusOf(err) != 409 {
		t.Fatalf("start a template: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cl created
			if _, err := c.Do(bg, "POST", "/vms/900/clone", nil, api.VMClone{NewID: 1000 + i}, &cl); err != nil {
				errs <- err
				return
			}
			tk, err := c.WaitTask(bg, cl.Task)
			if err != nil || tk.Status != api.TaskOK {
				errs <- fmt.Errorf("clone %d: %+v %v", 1000+i, tk, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	vols := contentOf(t, c, "local", "images")
	linked := 0
	for _, v := range vols {
		if v.Parent == "local:900/base-900-disk-0.qcow2" {
			linked++
		}
	}
	if linked != 10 {
		t.Fatalf("%d linked clones of the base, want 10: %+v", linked, vols)
	}
	var clone api.VM
	c.Do(bg, "GET", "/vms/1003/config", nil, nil, &clone)
	if clone.Config.Name != "tpl-clone" || clone.Config.UUID == tpl.Config.UUID || clone.Config.Template {
		t.Fatalf("clone config: %+v", clone.Config)
	}
}

func vncGreeting(t *testing.T, n *Node, c *client.Client, vmid int, ticket string) string {
	t.Helper()
	tk, _ := c.Ticket()
	u := strings.Replace(n.URL, "https://", "wss://", 1) + fmt.Sprintf("/api/v1/vms/%d/vncwebsocket?vncticket=%s", vmid, ticket)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tk}},
	})
	if err != nil {
		t.Fatalf("vnc websocket: %v", err)
	}
	defer ws.CloseNow()
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("vnc read: %v", err)
	}
	return string(b)
}
