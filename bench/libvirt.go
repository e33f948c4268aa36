package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// libvirtURI is the system instance Debian's libvirt-daemon-system runs.
const libvirtURI = "qemu:///system"

// libvirtEnv is what setupLibvirt found or changed, for the report.
type libvirtEnv struct {
	version    string
	started    bool   // libvirtd was started by the bench (and stopped after)
	kvmDevNote string // how /dev/kvm was adjusted, if it was
}

func virsh(ctx context.Context, args ...string) (time.Duration, error) {
	return runCmd(ctx, "virsh", append([]string{"-c", libvirtURI}, args...)...)
}

func virshOut(ctx context.Context, args ...string) (string, error) {
	return cmdOutput(ctx, "virsh", append([]string{"-c", libvirtURI}, args...)...)
}

// setupLibvirt makes sure a libvirtd answers on qemu:///system, starting
// virtlogd and libvirtd in the foreground as children of the bench when
// none runs (no systemd here to socket-activate them); lab.close stops
// what it started. A machine without libvirt skips the comparison.
func (l *lab) setupLibvirt(ctx context.Context) (libvirtEnv, error) {
	var env libvirtEnv
	for _, tool := range []string{"virsh", "libvirtd", "virtlogd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return env, skipf("%s not found: libvirt is not installed (apt-get install libvirt-daemon-system libvirt-clients)", tool)
		}
	}
	if os.Geteuid() != 0 {
		return env, skipf("%s needs root", libvirtURI)
	}
	if out, err := cmdOutput(ctx, "libvirtd", "--version"); err == nil {
		env.version = firstLine(out)
	}
	env.kvmDevNote = l.debianKVMMode()
	if _, err := virsh(ctx, "uri"); err == nil {
		logf("vm: libvirtd already runs; using it")
		return env, nil
	}
	if c, err := net.Dial("unix", "/run/libvirt/virtlogd-sock"); err == nil {
		c.Close()
	} else {
		if err := l.startService(ctx, "virtlogd", func() bool {
			c, err := net.Dial("unix", "/run/libvirt/virtlogd-sock")
			if err == nil {
				c.Close()
			}
			return err == nil
		}); err != nil {
			return env, skipf("virtlogd does not run here: %v", err)
		}
	}
	if err := l.startService(ctx, "libvirtd", func() bool { _, err := virsh(ctx, "uri"); return err == nil }); err != nil {
		return env, skipf("libvirtd does not run here: %v", err)
	}
	env.started = true
	return env, nil
}

// startService runs a libvirt daemon in the foreground, in its own session
// (a Ctrl-C at the terminal must not kill it before the bench has
// destroyed its domains), and waits until ready says it serves.
func (l *lab) startService(ctx context.Context, name string, ready func() bool) error {
	logPath := filepath.Join(l.root, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(name)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	l.atClose(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			logf("cleanup: %s did not stop within 15s of SIGTERM; killing it", name)
			cmd.Process.Kill()
			<-exited
		}
	})
	logf("vm: started %s (pid %d, log %s)", name, cmd.Process.Pid, logPath)
	deadline := time.Now().Add(30 * time.Second)
	for !ready() {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s exited: %s", name, firstLine(strings.TrimSpace(string(b))))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 30s (log: %s)", name, logPath)
		}
	}
	return nil
}

// debianKVMMode gives /dev/kvm the owner and mode Debian's udev rule
// gives it (root:kvm 0660) for the libvirt series, and restores it at
// close. Without udev the device is root-only here; libvirt then probes
// QEMU's capabilities as root (KVM present) but checks them as its
// libvirt-qemu user (KVM absent), finds its cache stale on every domain
// start and re-probes for over a minute each time: a broken host, not
// libvirt's real cost. Returns a note for the report ("" if unchanged).
func (l *lab) debianKVMMode() string {
	const dev = "/dev/kvm"
	fi, err := os.Stat(dev)
	if err != nil {
		return ""
	}
	grp, err := user.LookupGroup("kvm")
	if err != nil {
		return ""
	}
	gid, _ := strconv.Atoi(grp.Gid)
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (int(st.Gid) == gid && fi.Mode().Perm()&0o060 == 0o060) {
		return ""
	}
	oldGid, oldMode := int(st.Gid), fi.Mode().Perm()
	if err := os.Chown(dev, -1, gid); err != nil {
		return ""
	}
	if err := os.Chmod(dev, 0o660); err != nil {
		os.Chown(dev, -1, oldGid)
		return ""
	}
	l.atClose(func() {
		if err := os.Chown(dev, -1, oldGid); err != nil {
			logf("cleanup: restore %s group: %v", dev, err)
		}
		if err := os.Chmod(dev, oldMode); err != nil {
			logf("cleanup: restore %s mode: %v", dev, err)
		}
	})
	oldGroup := strconv.Itoa(oldGid)
	if g, err := user.LookupGroupId(oldGroup); err == nil {
		oldGroup = g.Name
	}
	return fmt.Sprintf("the bench gave `%s` (here %04o, group %s) Debian's root:kvm 0660 for the libvirt series and restored it afterwards", dev, oldMode, oldGroup)
}

// libvirtDomainXML is a transient domain equivalent to corral's VM: the
// same machine type, CPU model, memory, TCG translation cache, virtio disk
// (a copy of the VM's qcow2, same cache and AIO modes), virtio RNG and
// serial port (a pty instead of a socket), no network, no display, no USB.
func libvirtDomainXML(name, emulator, disk string) string {
	return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features><acpi/><tcg><tb-cache unit='MiB'>128</tb-cache></tcg></features>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>%s</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none' io='threads'/>
      <source file='%s'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' model='none'/>
    <serial type='pty'><target port='0'/></serial>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
`, name, emulator, disk)
}
