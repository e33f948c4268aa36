// Package qemu is corral's VM driver: VM configs in the cluster store,
// the QEMU command line, the lifecycle of QEMU processes that outlive the
// daemon, and their QMP monitors.
package qemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/guest"
	"github.com/corral-project/corral/internal/storage"
)

// record is what the store holds per VM.
type record struct {
	Config  api.VMConfig  `json:"config"`
	Pending *api.VMConfig `json:"pending,omitempty"`
	Lock    string        `json:"lock,omitempty"`
	// Snapshots form a tree through their Parent; Current is the one the
	// VM's present state derives from.
	Snapshots []snap `json:"snapshots,omitempty"`
	Current   string `json:"current,omitempty"`
}

var bootRe = regexp.MustCompile(`^(disk|cdrom|net)([0-9]|[12][0-9]|3[01])$`)

// applyDefaults fills what a create request left out.
func applyDefaults(c *api.VMConfig, kvm bool) {
	if c.Cores == 0 {
		c.Cores = 1
	}
	if c.Sockets == 0 {
		c.Sockets = 1
	}
	if c.Memory == 0 {
		c.Memory = 512
	}
	if c.Machine == "" {
		c.Machine = "q35"
	}
	if c.BIOS == "" {
		c.BIOS = "seabios"
	}
	if c.CPU == "" {
		c.CPU = "qemu64" // TCG emulates it fastest
		if kvm {
			c.CPU = "host"
		}
	}
	if c.VGA == "" {
		c.VGA = "std"
	}
	for i := range c.Disks {
		if c.Disks[i].Cache == "" {
			c.Disks[i].Cache = "none"
		}
	}
}

// newUUID returns a random (version 4) SMBIOS UUID.
func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newMAC is the guest core's random unicast MAC.
var newMAC = guest.NewMAC

// validate checks what the schema can't: references to pools and volumes,
// bus limits, boot order, MACs. It never touches the host beyond reading.
// References the guest's configs in old already have (volumes, bridges)
// are not authorized again; new ones are, with auth's privileges (the
// rules of internal/guest, shared with containers).
func (m *Manager) validate(ctx context.Context, c *api.VMConfig, creating bool, auth guest.Authorizer, old ...*api.VMConfig) error {
	known := map[string]bool{}
	for _, o := range old {
		if o == nil {
			continue
		}
		for _, d := range o.Disks {
			known[d.Volume] = true
		}
		for _, cd := range o.CDROMs {
			known["cd:"+cd.Volume] = true
		}
		for _, n := range o.Nets {
			known["net:"+n.Bridge] = true
		}
	}
	if c.Memory < 16 {
		return errs.Invalid("memory", "at least 16 MiB")
	}
	if c.Balloon > c.Memory {
		return errs.Invalid("balloon", "must not exceed memory (%d MiB)", c.Memory)
	}
	if c.Cores*c.Sockets > 512 {
		return errs.Invalid("cores", "at most 512 vCPUs")
	}
	if c.VCPUs > c.Cores*c.Sockets {
		return errs.Invalid("vcpus", "at most cores×sockets (%d)", c.Cores*c.Sockets)
	}
	if c.MaxMemory != 0 && c.MaxMemory < c.Memory {
		return errs.Invalid("maxmemory", "must be at least memory (%d MiB)", c.Memory)
	}
	if c.MaxMemory != 0 && !slices.Contains(c.Hotplug, "memory") {
		return errs.Invalid("maxmemory", "only used with hotplug memory")
	}
	if slices.Contains(c.Hotplug, "memory") && c.Memory%memStep != 0 {
		return errs.Invalid("memory", "with hotplug memory, a multiple of %d MiB", memStep)
	}
	ide := 0
	for i, d := range c.Disks {
		f := func(n string) string { return fmt.Sprintf("disks[%d].%s", i, n) }
		switch {
		case d.Volume != "" && (d.Storage != "" || d.Size != ""):
			return errs.Invalid(f("volume"), "give either volume or storage+size")
		case d.Volume == "" && !creating:
			return errs.Invalid(f("volume"), "required")
		case d.Volume == "" && (d.Storage == "" || d.Size == ""):
			return errs.Invalid(f("storage"), "a new disk needs storage and size")
		}
		if d.Volume != "" {
			if _, err := storage.ParseVolID(d.Volume); err != nil {
				return errs.Invalid(f("volume"), "%v", err)
			}
			if !known[d.Volume] {
				if err := guest.CheckVolume(auth, c.VMID, f("volume"), d.Volume, guest.UseDisk); err != nil {
					return err
				}
			}
			if err := m.volumeExists(ctx, d.Volume, api.ContentImages); err != nil {
				return errs.Invalid(f("volume"), "%v", err)
			}
		} else {
			if _, err := storage.ParseSize(d.Size); err != nil {
				return errs.Invalid(f("size"), "%v", err)
			}
			cfg, err := m.stor.Get(d.Storage)
			if err != nil {
				return errs.Invalid(f("storage"), "storage %q does not exist", d.Storage)
			}
			if !slices.Contains(cfg.Content, api.ContentImages) {
				return errs.Invalid(f("storage"), "storage %s does not hold disk images (content images)", d.Storage)
			}
		}
		if d.Bus == "ide" || d.Bus == "sata" {
			ide++
		}
	}
	for i, cd := range c.CDROMs {
		if cd.Volume == "none" || cd.Volume == "" {
			c.CDROMs[i].Volume = "none"
			ide++
			continue
		}
		if _, err := storage.ParseVolID(cd.Volume); err != nil {
			return errs.Invalid(fmt.Sprintf("cdroms[%d].volume", i), "%v", err)
		}
		if !known["cd:"+cd.Volume] {
			if err := guest.CheckVolume(auth, c.VMID, fmt.Sprintf("cdroms[%d].volume", i), cd.Volume, guest.UseCDROM); err != nil {
				return err
			}
		}
		if err := m.volumeExists(ctx, cd.Volume, api.ContentISO); err != nil {
			return errs.Invalid(fmt.Sprintf("cdroms[%d].volume", i), "%v", err)
		}
		ide++
	}
	if c.CloudInit != nil {
		if err := validateCloudInit(c.CloudInit); err != nil {
			return err
		}
		ide++ // the seed CD-ROM
	}
	maxIDE := 6
	if c.Machine == "pc" {
		maxIDE = 4
	}
	if ide > maxIDE {
		return errs.Invalid("disks", "%s machines have %d IDE/SATA slots (disks and CD-ROMs), %d requested", c.Machine, maxIDE, ide)
	}
	if len(c.Nets) > 0 && m.net == nil {
		return errs.Invalid("nets", "guest network interfaces need the network layer, which this node does not run")
	}
	macs := make([]*string, len(c.Nets))
	for i, n := range c.Nets {
		if n.Bridge == "" {
			return errs.Invalid(fmt.Sprintf("nets[%d].bridge", i), "a NIC needs a bridge or vnet")
		}
		if m.net != nil {
			if field, problem := m.net.CheckNIC(n.Bridge, n.Tag); field != "" {
				return errs.Invalid(fmt.Sprintf("nets[%d].%s", i, field), "%s", problem)
			}
			if !known["net:"+n.Bridge] {
				if err := guest.CheckSDN(auth, fmt.Sprintf("nets[%d].bridge", i), m.net.SDNPath(n.Bridge)); err != nil {
					return err
				}
			}
		}
		macs[i] = &c.Nets[i].MAC
	}
	if err := m.guests.CheckMACs(c.VMID, macs, func(i int) string { return fmt.Sprintf("nets[%d].mac", i) }); err != nil {
		return err
	}
	for i, b := range c.Boot {
		if !bootRe.MatchString(b) {
			return errs.Invalid(fmt.Sprintf("boot[%d]", i), "want diskN, cdromN or netN")
		}
		var n int
		var kind string
		fmt.Sscanf(strings.TrimRight(b, "0123456789"), "%s", &kind)
		fmt.Sscanf(b[len(kind):], "%d", &n)
		count := map[string]int{"disk": len(c.Disks), "cdrom": len(c.CDROMs), "net": len(c.Nets)}[kind]
		if n >= count {
			return errs.Invalid(fmt.Sprintf("boot[%d]", i), "%s does not exist", b)
		}
	}
	for i, t := range c.Tags {
		if storage.ValidateVolName(t) != nil || strings.Contains(t, "/") {
			return errs.Invalid(fmt.Sprintf("tags[%d]", i), "tags use letters, digits, . _ + -")
		}
	}
	return nil
}

// volumeExists checks that a volume exists on a pool holding content.
func (m *Manager) volumeExists(ctx context.Context, volid, content string) error {
	_, err := m.volumePath(ctx, volid, content)
	return err
}

// volumePath resolves a volume to what QEMU opens, on this node.
func (m *Manager) volumePath(ctx context.Context, volid, content string) (string, error) {
	id, err := storage.ParseVolID(volid)
	if err != nil {
		return "", err
	}
	cfg, err := m.stor.Get(id.Storage)
	if err != nil {
		return "", fmt.Errorf("storage %q does not exist", id.Storage)
	}
	if !slices.Contains(cfg.Content, content) {
		return "", fmt.Errorf("storage %s does not hold %s", id.Storage, content)
	}
	p, err := m.stor.Pool(ctx, id.Storage)
	if err != nil {
		return "", err
	}
	path, err := p.Path(ctx, id.Name)
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", volid, err)
	}
	return path, nil
}
