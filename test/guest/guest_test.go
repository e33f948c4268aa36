package guest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBootPingPowerdown boots the built ISO with bare QEMU under TCG, waits
// for the ready line on the serial console, talks to the guest there, then
// presses the ACPI power button over QMP and expects QEMU to exit.
func TestBootPingPowerdown(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("SKIP reason: qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
	}
	dir := Build(t)

	cases := []struct {
		name string
		args []string
		disk string // device the guest mounts the data disk from
	}{
		{"pc-ide-cdrom-virtio-blk", []string{
			"-machine", "pc",
			"-cdrom", filepath.Join(dir, ISO),
			"-drive", "file=" + filepath.Join(dir, Disk) + ",if=virtio,format=raw,snapshot=on",
		}, "/dev/vda"},
		{"q35-sata-cdrom-virtio-scsi", []string{
			"-machine", "q35",
			"-cdrom", filepath.Join(dir, ISO),
			"-device", "virtio-scsi-pci,id=scsi0",
			"-drive", "file=" + filepath.Join(dir, Disk) + ",if=none,id=d0,format=raw,snapshot=on",
			"-device", "scsi-hd,drive=d0,bus=scsi0.0",
		}, "/dev/sda"},
		{"pc-cdrom-only", []string{
			"-machine", "pc",
			"-cdrom", filepath.Join(dir, ISO),
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vm := startVM(t, qemu, tc.args)

			boot := vm.waitLine(t, ReadyLine, 60*time.Second)
			t.Logf("%s: %s after %.1fs (TCG, from QEMU start)", tc.name, ReadyLine, boot.Seconds())
			if tc.disk != "" && !strings.Contains(vm.output(), "corral-guest: "+tc.disk+" mounted on /mnt/disk") {
				t.Errorf("guest did not report mounting %s:\n%s", tc.disk, vm.output())
			}

			// Input echo is off and kernel messages are kept off the line:
			// the very next line is the answer.
			vm.send(t, "ping")
			if got := vm.nextLine(t, 10*time.Second); got != "pong" {
				t.Errorf("answer to ping = %q, want %q", got, "pong")
			}
			vm.send(t, "echo hello")
			if got := vm.nextLine(t, 10*time.Second); got != "hello" {
				t.Errorf("answer to echo hello = %q, want %q", got, "hello")
			}
			if tc.disk != "" {
				vm.send(t, "cat /mnt/disk/README")
				vm.waitLine(t, DiskReadme, 10*time.Second)
				vm.send(t, "echo written >/mnt/disk/new && sync && cat /mnt/disk/new")
				vm.waitLine(t, "written", 10*time.Second)
			}

			start := time.Now()
			vm.qmp(t, "system_powerdown")
			vm.waitLine(t, "corral-guest: ACPI power button, powering off", 20*time.Second)
			select {
			case err := <-vm.exited:
				if err != nil {
					t.Errorf("QEMU exited with %v after system_powerdown\n%s", err, vm.stderr.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("QEMU still running 20s after system_powerdown\nserial:\n%s", vm.output())
			}
			t.Logf("%s: powered off %.2fs after system_powerdown", tc.name, time.Since(start).Seconds())
			ev := vm.event("SHUTDOWN")
			var shutdown struct {
				Data struct {
					Guest  bool   `json:"guest"`
					Reason string `json:"reason"`
				} `json:"data"`
			}
			if ev == nil {
				t.Errorf("no SHUTDOWN event from QMP")
			} else if json.Unmarshal(ev, &shutdown) != nil || !shutdown.Data.Guest || shutdown.Data.Reason != "guest-shutdown" {
				t.Errorf("SHUTDOWN event was not a guest shutdown: %s", ev)
			}
		})
	}
}

type testVM struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	start  time.Time
	exited chan error

	serial net.Conn
	lines  chan string

	qmpConn net.Conn
	qmpIn   *bufio.Reader

	mu         sync.Mutex
	transcript strings.Builder
	events     []json.RawMessage
}

// startVM starts QEMU with the serial console on a unix socket that QEMU
// waits on (so no output is lost) and QMP on another.
func startVM(t *testing.T, qemu string, args []string) *testVM {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "cg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	serialSock := filepath.Join(sockDir, "serial")
	qmpSock := filepath.Join(sockDir, "qmp")

	full := append([]string{
		"-accel", "tcg", "-m", "256", "-nographic", "-nodefaults", "-no-reboot",
		"-boot", "order=d",
		"-serial", "unix:" + serialSock + ",server=on,wait=on",
		"-qmp", "unix:" + qmpSock + ",server=on,wait=off",
		"-monitor", "none",
	}, args...)
	vm := &testVM{exited: make(chan error, 1), lines: make(chan string, 1024)}
	vm.cmd = exec.Command(qemu, full...)
	vm.cmd.Stderr = &vm.stderr
	vm.start = time.Now()
	if err := vm.cmd.Start(); err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	go func() { vm.exited <- vm.cmd.Wait() }()
	t.Cleanup(func() {
		if vm.cmd.ProcessState == nil {
			vm.cmd.Process.Kill()
			<-vm.exited
		}
		if t.Failed() {
			t.Logf("serial console:\n%s\nQEMU stderr:\n%s", vm.output(), vm.stderr.String())
		}
	})

	// QEMU creates the serial socket first and waits there; QMP comes after.
	vm.serial = dialWait(t, serialSock, vm.exited)
	t.Cleanup(func() { vm.serial.Close() })
	go vm.readSerial()
	vm.qmpConn = dialWait(t, qmpSock, vm.exited)
	t.Cleanup(func() { vm.qmpConn.Close() })
	vm.qmpIn = bufio.NewReader(vm.qmpConn)
	if _, err := vm.qmpIn.ReadBytes('\n'); err != nil { // greeting
		t.Fatalf("QMP greeting: %v", err)
	}
	vm.qmp(t, "qmp_capabilities")
	return vm
}

func dialWait(t *testing.T, path string, exited chan error) net.Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			return c
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("QEMU exited before %s was ready: %v", path, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("connecting to %s: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (vm *testVM) readSerial() {
	r := bufio.NewReader(vm.serial)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			vm.mu.Lock()
			vm.transcript.WriteString(line)
			vm.mu.Unlock()
		}
		if err != nil {
			close(vm.lines)
			return
		}
		vm.lines <- strings.TrimRight(line, "\r\n")
	}
}

func (vm *testVM) output() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.transcript.String()
}

// waitLine reads serial lines until one equals want and returns the time
// since QEMU started.
func (vm *testVM) waitLine(t *testing.T, want string, timeout time.Duration) time.Duration {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-vm.lines:
			if !ok {
				t.Fatalf("serial console closed while waiting for %q", want)
			}
			if line == want {
				return time.Since(vm.start)
			}
		case <-timer.C:
			t.Fatalf("no line %q on the serial console within %v", want, timeout)
		}
	}
}

// nextLine returns the next serial line.
func (vm *testVM) nextLine(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-vm.lines:
		if !ok {
			t.Fatal("serial console closed")
		}
		return line
	case <-time.After(timeout):
		t.Fatalf("no line on the serial console within %v", timeout)
	}
	return ""
}

func (vm *testVM) send(t *testing.T, line string) {
	t.Helper()
	if _, err := fmt.Fprintf(vm.serial, "%s\n", line); err != nil {
		t.Fatalf("writing %q to the serial console: %v", line, err)
	}
}

// qmp runs one QMP command and waits for its return, keeping events.
func (vm *testVM) qmp(t *testing.T, command string) {
	t.Helper()
	vm.qmpConn.SetDeadline(time.Now().Add(10 * time.Second))
	defer vm.qmpConn.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(vm.qmpConn, `{"execute":%q}`+"\n", command); err != nil {
		t.Fatalf("QMP %s: %v", command, err)
	}
	for {
		line, err := vm.qmpIn.ReadBytes('\n')
		if err != nil {
			t.Fatalf("QMP %s: %v", command, err)
		}
		var msg struct {
			Event  string          `json:"event"`
			Return json.RawMessage `json:"return"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			t.Fatalf("QMP %s: bad reply %q: %v", command, line, err)
		}
		switch {
		case msg.Event != "":
			vm.mu.Lock()
			vm.events = append(vm.events, append(json.RawMessage(nil), line...))
			vm.mu.Unlock()
		case msg.Error != nil:
			t.Fatalf("QMP %s: %s", command, msg.Error)
		default:
			return
		}
	}
}

// event returns the first QMP event with the given name, reading what QEMU
// sent until it closed the socket.
func (vm *testVM) event(name string) json.RawMessage {
	vm.qmpConn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := vm.qmpIn.ReadBytes('\n')
		if err != nil {
			break
		}
		vm.mu.Lock()
		vm.events = append(vm.events, line)
		vm.mu.Unlock()
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for _, ev := range vm.events {
		var msg struct {
			Event string `json:"event"`
		}
		if json.Unmarshal(ev, &msg) == nil && msg.Event == name {
			return bytes.TrimSpace(ev)
		}
	}
	return nil
}
