package qemu

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/corral-project/corral/api"
)

// hotplugPorts is how many disks a running q35 VM can gain.
const hotplugPorts = 4

// Paths are the per-VM runtime files, all in the node's run directory.
type Paths struct {
	PID, QMP, Serial, VNC string
}

func pathsFor(runDir string, vmid int) Paths {
	b := filepath.Join(runDir, strconv.Itoa(vmid))
	return Paths{PID: b + ".pid", QMP: b + ".qmp", Serial: b + ".serial", VNC: b + ".vnc"}
}

// Resolved carries what BuildArgs needs besides the config: volume paths
// and the accelerator this node can use.
type Resolved struct {
	DiskPaths  []string
	DiskFmts   []string
	CDROMPaths []string // "" for an empty drive
	Taps       []string // host tap device of each NIC, made by the network layer
	KVM        bool
	OVMFCode   string
	OVMFVars   string // the VM's own copy of the UEFI variable store
}

// BuildArgs is the one place a VM's QEMU command line is made: read it and
// you know what the VM gets. Every value in it is either validated config
// (enums, numbers, checked names) or a path corral resolved itself, and it
// is passed as an argument list, never through a shell.
func BuildArgs(c api.VMConfig, p Paths, r Resolved) []string {
	name := c.Name
	if name == "" {
		name = "vm" + strconv.Itoa(c.VMID)
	}
	// TCG's translation cache defaults to 1 GiB; 128 MiB keeps a small VM
	// small without hurting its speed noticeably.
	accel := "tcg,tb-size=128"
	cpu := c.CPU
	if r.KVM {
		accel = "kvm"
	} else if cpu == "host" {
		cpu = "max" // "host" needs KVM; max is TCG's closest
	}
	// The x86-64 micro-architecture levels are defined as qemu64 plus
	// flags, as Proxmox does, so they work on QEMU versions without the
	// named models.
	levels := map[string]string{
		"x86-64-v2":     "qemu64,+cx16,+lahf_lm,+popcnt,+sse4.1,+sse4.2,+ssse3",
		"x86-64-v2-AES": "qemu64,+aes,+cx16,+lahf_lm,+popcnt,+sse4.1,+sse4.2,+ssse3",
		"x86-64-v3":     "qemu64,+abm,+aes,+avx,+avx2,+bmi1,+bmi2,+cx16,+f16c,+fma,+lahf_lm,+movbe,+popcnt,+sse4.1,+sse4.2,+ssse3,+xsave",
	}
	if l, ok := levels[cpu]; ok {
		cpu = l
	}
	a := []string{
		"-name", "guest=" + name + ",debug-threads=on",
		"-uuid", c.UUID,
		"-no-user-config", "-nodefaults",
		"-daemonize", "-pidfile", p.PID,
		"-machine", "type=" + c.Machine,
		"-accel", accel,
		"-cpu", cpu,
		"-smp", fmt.Sprintf("%d,sockets=%d,cores=%d,threads=1,maxcpus=%d", vcpus(c), c.Sockets, c.Cores, c.Cores*c.Sockets),
		"-m", memoryArg(c),
		"-chardev", "socket,id=qmp,path=" + p.QMP + ",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
		"-rtc", "base=utc",
		"-boot", "menu=off,strict=on",
		"-device", "virtio-rng-pci",
	}
	if c.Machine == "q35" {
		// PCIe has no hotplug on the root bus: empty root ports take
		// disks added while the VM runs.
		for i := 0; i < hotplugPorts; i++ {
			a = append(a, "-device", fmt.Sprintf("pcie-root-port,id=hotplug%d,chassis=%d,slot=%d,bus=pcie.0", i, i+1, i+1))
		}
	}
	if c.BIOS == "ovmf" {
		a = append(a, "-drive", "if=pflash,unit=0,format=raw,readonly=on,file="+r.OVMFCode,
			"-drive", "if=pflash,unit=1,format=raw,file="+r.OVMFVars)
	}
	if c.Serial || c.VGA == "serial0" {
		a = append(a, "-chardev", "socket,id=serial0,path="+p.Serial+",server=on,wait=off", "-serial", "chardev:serial0")
	}
	switch c.VGA {
	case "none", "serial0":
		a = append(a, "-display", "none", "-vga", "none")
	default:
		vga := map[string]string{"std": "VGA", "virtio": "virtio-vga", "qxl": "qxl-vga"}[c.VGA]
		a = append(a, "-device", vga+",id=vga", "-vnc", "unix:"+p.VNC+",password=on")
	}
	boot := map[string]int{}
	for i, b := range c.Boot {
		boot[b] = i + 1
	}
	bootindex := func(id string) string {
		if n, ok := boot[id]; ok {
			return ",bootindex=" + strconv.Itoa(n)
		}
		return ""
	}
	ideSlot := 0
	nextIDE := func() string {
		// q35's AHCI has buses ide.0..ide.5 with one unit each; pc's
		// PIIX has ide.0 and ide.1 with two units each.
		var bus string
		if c.Machine == "pc" {
			bus = fmt.Sprintf("ide.%d,unit=%d", ideSlot/2, ideSlot%2)
		} else {
			bus = fmt.Sprintf("ide.%d", ideSlot)
		}
		ideSlot++
		return bus
	}
	scsi := false
	for i, d := range c.Disks {
		id := "disk" + strconv.Itoa(i)
		drive := fmt.Sprintf("file=%s,if=none,id=drive-%s,format=%s,cache=%s,aio=threads", r.DiskPaths[i], id, r.DiskFmts[i], d.Cache)
		if d.Discard {
			drive += ",discard=unmap"
		}
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		a = append(a, "-drive", drive)
		switch d.Bus {
		case "virtio":
			dev := "virtio-blk-pci,drive=drive-" + id + ",id=" + id
			if d.IOThread {
				a = append(a, "-object", "iothread,id=iothread-"+id)
				dev += ",iothread=iothread-" + id
			}
			a = append(a, "-device", dev+bootindex(id))
		case "scsi":
			if !scsi {
				a = append(a, "-device", "virtio-scsi-pci,id=scsihw0")
				scsi = true
			}
			a = append(a, "-device", fmt.Sprintf("scsi-hd,bus=scsihw0.0,scsi-id=%d,drive=drive-%s,id=%s%s", i, id, id, bootindex(id)))
		default: // ide, sata
			a = append(a, "-device", "ide-hd,bus="+nextIDE()+",drive=drive-"+id+",id="+id+bootindex(id))
		}
	}
	for i, path := range r.CDROMPaths {
		id := "cdrom" + strconv.Itoa(i)
		drive := "if=none,id=drive-" + id + ",media=cdrom,readonly=on"
		if path != "" {
			drive = "file=" + path + ",format=raw," + drive
		}
		a = append(a, "-drive", drive, "-device", "ide-cd,bus="+nextIDE()+",drive=drive-"+id+",id="+id+bootindex(id))
	}
	a = append(a, netArgs(c, r.Taps, bootindex)...)
	if c.Balloon > 0 {
		a = append(a, "-device", "virtio-balloon-pci,id=balloon0")
	}
	return a
}

// qemuValueSafe reports whether s can appear in a QEMU option value: a
// comma would start a new option (QEMU's escaping is ",,", which corral
// never needs because its paths and names have no commas).
func qemuValueSafe(s string) bool { return !strings.ContainsAny(s, ",\x00\n") }

// qemuImg runs qemu-img (argument list, no shell) with its message on failure.
func qemuImg(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "qemu-img", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img %s: %s", args[0], strings.TrimSpace(string(out)))
	}
	return nil
}
