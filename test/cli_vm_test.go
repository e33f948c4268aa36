package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
)

// TestCLIVM drives a VM's life through the built binary against a real
// daemon: create with a new disk, start, a change that waits for the next
// start, status, stop, destroy.
func TestCLIVM(t *testing.T) {
	needQEMU(t)
	n := StartNode(t)
	env := []string{"HOME=" + t.TempDir(), "XDG_CONFIG_HOME=", "CORRAL_SOCKET=/nonexistent", "CORRAL_SERVER=", "CORRAL_TOKEN="}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return n.CLI(env, "", args...)
	}
	if _, errOut, code := n.CLI(env, n.Password+"\n", "login", "--server", n.URL, "--user", "admin@corral", "--password-stdin"); code != 0 {
		t.Fatalf("login: %d %s", code, errOut)
	}

	out, errOut, code := run("vm", "create", "--name", "cli1", "--memory", "64", "--disk", "bus=virtio,storage=local,size=16M", "--wait", "-o", "json")
	var created struct {
		VMID   int    `json:"vmid"`
		Task   string `json:"task"`
		Status string `json:"status"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || created.VMID < 100 || created.Status != api.TaskOK {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	id := strconv.Itoa(created.VMID)
	vol := "local:" + id + "/vm-" + id + "-disk-0.qcow2"
	out, errOut, code = run("vm", "list")
	listed := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		listed = listed || (len(f) > 5 && f[0] == id && f[1] == "cli1" && f[3] == "stopped" && f[5] == "64")
	}
	if code != 0 || !listed {
		t.Fatalf("list: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := run("vm", "show", id); code != 0 || !strings.Contains(out, "bus=virtio,volume="+vol) || !strings.Contains(out, "memory       64 MiB\n") {
		t.Fatalf("show: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := run("vm", "console", id); code != 1 || !strings.Contains(errOut, "409") || !strings.Contains(errOut, "not running") {
		t.Fatalf("console of a stopped VM: %d %s", code, errOut)
	}

	if out, errOut, code := run("vm", "start", id); code != 0 || out != "VM "+id+" started.\n" {
		t.Fatalf("start: %d %q %s", code, out, errOut)
	}
	out, errOut, code = run("vm", "status", id, "-o", "json")
	var st api.VMStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Status != "running" || st.PID == 0 || st.VMID != created.VMID {
		t.Fatalf("status: %d %s %s", code, out, errOut)
	}
	// Memory can't change live: the change is pending, and show says so.
	if out, errOut, code := run("vm", "set", id, "--memory", "96"); code != 0 || !strings.Contains(out, "pending") {
		t.Fatalf("set: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := run("vm", "show", id); code != 0 || !strings.Contains(out, "memory       64 MiB → 96 MiB (pending)\n") {
		t.Fatalf("show pending: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := run("vm", "destroy", id, "--yes"); code != 1 || !strings.Contains(errOut, "running") {
		t.Fatalf("destroy of a running VM: %d %s", code, errOut)
	}
	// The disk grows live.
	if out, errOut, code := run("vm", "resize", id, "disk0", "+16M"); code != 0 || out != "VM "+id+" disk0 resized.\n" {
		t.Fatalf("resize: %d %q %s", code, out, errOut)
	}
	if out, _, code := run("storage", "content", "local", "--vmid", id, "-o", "json"); code != 0 || !strings.Contains(out, `"size": 33554432`) {
		t.Fatalf("size after resize: %d %s", code, out)
	}
	// A VNC viewer connecting to the forwarded port gets QEMU's greeting.
	vncAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	vnc := exec.Command(corralBin, "vm", "vnc", id, "--listen", vncAddr)
	vnc.Env = append(os.Environ(), env...)
	var vncOut, vncErr bytes.Buffer
	vnc.Stdout, vnc.Stderr = &vncOut, &vncErr
	if err := vnc.Start(); err != nil {
		t.Fatal(err)
	}
	greeting, err := forwardedRFBGreeting(vncAddr)
	vnc.Process.Kill()
	vnc.Wait()
	if err != nil || !strings.HasPrefix(greeting, "RFB 003.") {
		t.Fatalf("vnc: greeting %q, %v\n%s%s", greeting, err, vncOut.String(), vncErr.String())
	}

	// A console attached (stdin not a terminal: a plain pipe) ends
	// cleanly when the VM stops.
	console := exec.Command(corralBin, "vm", "console", id)
	console.Env = append(os.Environ(), env...)
	console.Stdin = strings.NewReader("\r\n")
	var conOut, conErr bytes.Buffer
	console.Stdout, console.Stderr = &conOut, &conErr
	if err := console.Start(); err != nil {
		t.Fatal(err)
	}
	consoleDone := make(chan error, 1)
	go func() { consoleDone <- console.Wait() }()
	time.Sleep(time.Second)
	select {
	case err := <-consoleDone:
		t.Fatalf("console ended while the VM runs: %v %s", err, conErr.String())
	default:
	}

	if out, errOut, code := run("vm", "stop", id); code != 0 || out != "VM "+id+" stopped.\n" {
		t.Fatalf("stop: %d %q %s", code, out, errOut)
	}
	select {
	case err := <-consoleDone:
		if err != nil || conErr.Len() != 0 {
			t.Fatalf("console after stop: %v %q", err, conErr.String())
		}
	case <-time.After(10 * time.Second):
		console.Process.Kill()
		t.Fatal("console still attached 10s after the VM stopped")
	}
	if out, errOut, code := run("vm", "status", id, "-o", "json"); code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Status != "stopped" {
		t.Fatalf("status after stop: %d %s %s", code, out, errOut)
	}
	// Offline snapshots: take, list, roll back, delete.
	if out, errOut, code := run("vm", "snapshot", "create", id, "cold", "--description", "before the template"); code != 0 || out != "VM "+id+" snapshot cold taken.\n" {
		t.Fatalf("snapshot: %d %q %s", code, out, errOut)
	}
	if out, errOut, code := run("vm", "snapshot", "list", id); code != 0 || !strings.Contains(out, "cold") || !strings.Contains(out, "before the template") {
		t.Fatalf("snapshot list: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := run("vm", "snapshot", "rollback", id, "cold"); code != 0 || !strings.Contains(out, "rolled back") {
		t.Fatalf("rollback: %d %q %s", code, out, errOut)
	}
	if out, errOut, code := run("vm", "snapshot", "delete", id, "cold"); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete snapshot: %d %q %s", code, out, errOut)
	}
	// A template and a linked clone of it.
	if out, errOut, code := run("vm", "template", id); code != 0 || out != "VM "+id+" is now a template.\n" {
		t.Fatalf("template: %d %q %s", code, out, errOut)
	}
	if _, errOut, code := run("vm", "start", id); code != 1 || !strings.Contains(errOut, "template") {
		t.Fatalf("start of a template: %d %s", code, errOut)
	}
	out, errOut, code = run("vm", "clone", id, "--name", "cli2", "-o", "json")
	var clone struct {
		VMID   int    `json:"vmid"`
		Status string `json:"status"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &clone) != nil || clone.VMID == created.VMID || clone.Status != api.TaskOK {
		t.Fatalf("clone: %d %s %s", code, out, errOut)
	}
	cloneID := strconv.Itoa(clone.VMID)
	if out, errOut, code := run("vm", "show", cloneID); code != 0 || !strings.Contains(out, "name         cli2\n") || !strings.Contains(out, "template     no\n") {
		t.Fatalf("show clone: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := run("vm", "destroy", cloneID, "--yes"); code != 0 || out != "VM "+cloneID+" destroyed.\n" {
		t.Fatalf("destroy clone: %d %q %s", code, out, errOut)
	}

	if _, errOut, code := run("vm", "destroy", id); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("destroy without --yes: %d %s", code, errOut)
	}
	if out, errOut, code := run("vm", "destroy", id, "--yes"); code != 0 || out != "VM "+id+" destroyed.\n" {
		t.Fatalf("destroy: %d %q %s", code, out, errOut)
	}
	if out, _, code := run("vm", "list", "-o", "json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("list after destroy: %d %s", code, out)
	}
	if out, _, code := run("storage", "content", "local", "--content", "images", "-o", "json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("disks left after destroy: %d %s", code, out)
	}
}

// forwardedRFBGreeting connects to a forwarded VNC port, retrying while the
// forwarder starts, and reads the RFB protocol version it sends first.
func forwardedRFBGreeting(addr string) (string, error) {
	var conn net.Conn
	var err error
	for range 100 {
		if conn, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 12)
	_, err = io.ReadFull(conn, buf)
	return string(buf), err
}
