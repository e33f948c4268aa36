// Package guest builds corral's test guest: a small real bootable VM image
// made from Debian packages (Debian's kernel, a busybox initramfs, isolinux)
// that boots through the BIOS, prints ReadyLine on its serial console (ttyS0),
// answers commands there and powers off on the ACPI power button.
//
// What the guest does on ttyS0 (input echo is off, lines end in "\r\n"):
//   - once booted it prints the line "CORRAL-GUEST-READY";
//   - the line "ping" is answered with "pong";
//   - any other line runs in busybox sh, its output (stdout and stderr)
//     comes back: "echo hello" answers "hello";
//   - "poweroff" powers the guest off at once;
//   - on the ACPI power button (QMP system_powerdown) it prints
//     "corral-guest: ACPI power button, powering off", syncs, unmounts the
//     data disk and powers off.
//
// When a virtio-blk (/dev/vda) or SCSI/IDE/SATA (/dev/sda) disk with an ext4
// filesystem is attached (such as a copy of disk.raw), it is mounted on
// /mnt/disk before ReadyLine, and the line
// "corral-guest: /dev/vda mounted on /mnt/disk" is printed.
//
// A client that connects to the serial console late may have missed
// ReadyLine: it can send "ping" until "pong" comes back instead.
package guest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Files in the directory Build returns.
const (
	ISO       = "guest.iso" // BIOS-bootable ISO (isolinux); attach as a CD-ROM
	Disk      = "disk.raw"  // 32 MiB raw disk, ext4 on the whole device, holds /README
	Kernel    = "vmlinuz"   // the kernel, for direct kernel boot
	Initrd    = "initrd.gz" // the initramfs, for direct kernel boot
	Cmdline   = "cmdline"   // the kernel command line the ISO uses
	ReadyLine = "CORRAL-GUEST-READY"
)

// DiskReadme is the content of /README on Disk (mounted at /mnt/disk/README).
const DiskReadme = "corral test disk"

var (
	buildMu   sync.Mutex
	buildDirs = map[string]string{} // script hash -> built dir
)

// ScriptPath returns the path of build.sh beside this file.
func ScriptPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "build.sh")
}

// Build builds the test guest (once: the result is cached under
// os.TempDir()/corral-guest-<hash of build.sh>) and returns the directory
// that holds ISO, Disk, Kernel, Initrd and Cmdline. It skips the test, with
// a "SKIP reason: ..." message, when the guest cannot be built here (no
// build.sh, no bash, missing host packages and not root, Debian packages not
// available), and fails it when the build itself breaks. Tests must not
// write to the files in the returned directory: copy Disk first, or use it
// with QEMU's snapshot=on.
func Build(t testing.TB) string {
	t.Helper()
	script := ScriptPath()
	src, err := os.ReadFile(script)
	if err != nil {
		t.Skipf("SKIP reason: guest build script not readable: %v", err)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("SKIP reason: bash is not installed")
	}
	sum := sha256.Sum256(src)
	hash := hex.EncodeToString(sum[:])[:16]

	buildMu.Lock()
	defer buildMu.Unlock()
	if dir, ok := buildDirs[hash]; ok {
		return dir
	}
	dir := filepath.Join(os.TempDir(), "corral-guest-"+hash)
	var outBuf bytes.Buffer
	cmd := exec.Command("bash", script, dir)
	cmd.Stdout = &outBuf
	cmd.Stderr = &outBuf
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 77:
		t.Skip(skipReason(outBuf.String()))
	default:
		t.Fatalf("building the test guest (%s %s): %v\n%s", script, dir, err, outBuf.String())
	}
	buildDirs[hash] = dir
	return dir
}

// skipReason picks the "SKIP reason: ..." line build.sh printed.
func skipReason(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "SKIP reason:") {
			return lines[i]
		}
	}
	return "SKIP reason: the test guest cannot be built here: " + strings.TrimSpace(out)
}
