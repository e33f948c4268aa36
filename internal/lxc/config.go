// Package lxc is corral's system container driver: container configs in
// the cluster store, LXC config files generated from them, the lifecycle
// of containers run by Debian's LXC tools (lxc-start, lxc-stop, lxc-attach,
// lxc-info with corral's own lxcpath), templates, exec and consoles.
// Containers run in their own LXC monitor processes and outlive the daemon.
package lxc

import (
	"context"
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/guest"
	"github.com/corral-project/corral/internal/storage"
)

// record is what the store holds per container.
type record struct {
	Config    api.CTConfig  `json:"config"`
	Pending   *api.CTConfig `json:"pending,omitempty"`
	Lock      string        `json:"lock,omitempty"`
	Snapshots []snap        `json:"snapshots,omitempty"`
}

// applyDefaults fills what a create request left out.
func applyDefaults(c *api.CTConfig) {
	if c.Cores == 0 {
		c.Cores = 1
	}
	if c.Memory == 0 {
		c.Memory = 512
	}
	if c.CPUUnits == 0 {
		c.CPUUnits = 100
	}
	if c.Hostname == "" {
		c.Hostname = fmt.Sprintf("ct%d", c.VMID)
	}
	if c.RootFS.Storage == "" && c.RootFS.Volume == "" {
		c.RootFS.Storage = "local"
	}
	if c.RootFS.Size == "" {
		c.RootFS.Size = "4G"
	}
	for i := range c.Nets {
		if c.Nets[i].HWAddr == "" {
			c.Nets[i].HWAddr = newMAC()
		}
		c.Nets[i].HWAddr = strings.ToUpper(c.Nets[i].HWAddr)
	}
}

// newMAC is the guest core's random unicast MAC.
var newMAC = guest.NewMAC

var (
	labelRe  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	ifnameRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,14}$`)
	bridgeRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
)

// validHostname checks an RFC 1123 host name (labels of letters, digits
// and inner hyphens, at most 253 characters).
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for l := range strings.SplitSeq(h, ".") {
		if !labelRe.MatchString(l) {
			return false
		}
	}
	return true
}

// validMountPath accepts absolute, clean container paths that are not the
// root and do not climb out with "..".
func validMountPath(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" {
		return fmt.Errorf("want an absolute path below /")
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == ".." || seg == "." {
			return fmt.Errorf("%q: no . or .. segments", p)
		}
	}
	if path.Clean(p) != p || strings.ContainsAny(p, " \t\n\\,=#") {
		return fmt.Errorf("%q: not a clean path (no spaces, commas, backslashes)", p)
	}
	for _, bad := range []string{"/proc", "/sys", "/dev"} {
		if p == bad || strings.HasPrefix(p, bad+"/") {
			return fmt.Errorf("%q: mounts over %s are not allowed", p, bad)
		}
	}
	return nil
}

// validate checks what the schema can't. admin says whether the caller may
// use host bind mounts; creating allows storage+size volumes to allocate.
// References the container's configs in old already have (volumes,
// bridges) are not authorized again; new ones are, with auth's privileges
// (the rules of internal/guest, shared with VMs).
func (m *Manager) validate(ctx context.Context, c *api.CTConfig, creating, admin bool, auth guest.Authorizer, old ...*api.CTConfig) error {
	known := map[string]bool{}
	for _, o := range old {
		if o == nil {
			continue
		}
		for _, mp := range o.Mountpoints {
			known[mp.Volume] = true
		}
		for _, n := range o.Nets {
			known["net:"+n.Bridge] = true
		}
	}
	if !validHostname(c.Hostname) {
		return errs.Invalid("hostname", "%q is not a valid host name (letters, digits, hyphens; dot-separated labels)", c.Hostname)
	}
	if c.Memory < 16 {
		return errs.Invalid("memory", "at least 16 MiB")
	}
	if c.CPULimit > float64(c.Cores) && c.CPULimit != 0 {
		return errs.Invalid("cpulimit", "at most cores (%d)", c.Cores)
	}
	if c.Features.Keyctl && !c.Unprivileged {
		return errs.Invalid("features.keyctl", "keyctl is for unprivileged containers")
	}
	if c.RootFS.Volume == "" {
		if !creating {
			return errs.Invalid("rootfs.volume", "required")
		}
		if err := m.checkAllocPool("rootfs.storage", c.RootFS.Storage); err != nil {
			return err
		}
	}
	if c.RootFS.Size != "" {
		if _, err := storage.ParseSize(c.RootFS.Size); err != nil {
			return errs.Invalid("rootfs.size", "%v", err)
		}
	}
	seenMP := map[string]bool{}
	for i, mp := range c.Mountpoints {
		f := func(n string) string { return fmt.Sprintf("mountpoints[%d].%s", i, n) }
		if err := validMountPath(mp.MP); err != nil {
			return errs.Invalid(f("mp"), "%v", err)
		}
		if seenMP[mp.MP] {
			return errs.Invalid(f("mp"), "%s is mounted twice", mp.MP)
		}
		seenMP[mp.MP] = true
		n := 0
		for _, s := range []string{mp.Volume, mp.Storage, mp.HostPath} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			return errs.Invalid(f("volume"), "give exactly one of volume, storage (+size) or host_path")
		}
		switch {
		case mp.HostPath != "":
			if !admin {
				return errs.Forbidden("mountpoints[%d].host_path: host bind mounts are for root@pam only", i)
			}
			if err := validMountPath(mp.HostPath); err != nil {
				return errs.Invalid(f("host_path"), "%v", err)
			}
		case mp.Storage != "":
			if !creating {
				return errs.Invalid(f("storage"), "new volumes are allocated at create only; give an existing volume")
			}
			if err := m.checkAllocPool(f("storage"), mp.Storage); err != nil {
				return err
			}
		default:
			// Another guest's volume (its root filesystem, say) is
			// for this container to mount only with rights on that guest.
			if !known[mp.Volume] {
				if err := guest.CheckVolume(auth, c.VMID, f("volume"), mp.Volume, guest.UseDisk); err != nil {
					return err
				}
			}
			if _, err := m.volumePath(ctx, mp.Volume, api.ContentRootdir); err != nil {
				return errs.Invalid(f("volume"), "%v", err)
			}
		}
		if mp.Size != "" {
			if _, err := storage.ParseSize(mp.Size); err != nil {
				return errs.Invalid(f("size"), "%v", err)
			}
		}
	}
	seenName := map[string]bool{}
	macs := make([]*string, len(c.Nets))
	for i, n := range c.Nets {
		f := func(k string) string { return fmt.Sprintf("nets[%d].%s", i, k) }
		if !ifnameRe.MatchString(n.Name) {
			return errs.Invalid(f("name"), "interface names are 1-15 lower-case letters, digits, _ or -, starting with a letter")
		}
		if seenName[n.Name] {
			return errs.Invalid(f("name"), "%s is used twice", n.Name)
		}
		seenName[n.Name] = true
		macs[i] = &c.Nets[i].HWAddr
		if n.Bridge != "" && !bridgeRe.MatchString(n.Bridge) {
			return errs.Invalid(f("bridge"), "not a bridge name")
		}
		if n.Bridge != "" && !known["net:"+n.Bridge] {
			sdn := guest.SDNPath("", n.Bridge)
			if m.net != nil {
				sdn = m.net.SDNPath(n.Bridge)
			}
			if err := guest.CheckSDN(auth, f("bridge"), sdn); err != nil {
				return err
			}
		}
		if n.IP != "" && n.IP != "dhcp" {
			ip, _, err := net.ParseCIDR(n.IP)
			if err != nil || ip.To4() == nil {
				return errs.Invalid(f("ip"), "want dhcp or an IPv4 address in CIDR form (10.0.0.2/24)")
			}
		}
		if n.GW != "" {
			if ip := net.ParseIP(n.GW); ip == nil || ip.To4() == nil {
				return errs.Invalid(f("gw"), "not an IPv4 address")
			}
			if n.IP == "" || n.IP == "dhcp" {
				return errs.Invalid(f("gw"), "a gateway needs a static ip")
			}
		}
		if n.IP6 != "" && n.IP6 != "dhcp" && n.IP6 != "auto" {
			ip, _, err := net.ParseCIDR(n.IP6)
			if err != nil || ip.To4() != nil {
				return errs.Invalid(f("ip6"), "want auto, dhcp or an IPv6 address in CIDR form")
			}
		}
		if n.GW6 != "" {
			if ip := net.ParseIP(n.GW6); ip == nil || ip.To4() != nil {
				return errs.Invalid(f("gw6"), "not an IPv6 address")
			}
		}
		if m.net != nil {
			if field, problem := m.net.CheckNIC(n.Bridge, n.Tag); field != "" {
				return errs.Invalid(f(field), "%s", problem)
			}
		}
		switch {
		case m.net != nil:
		case n.Tag != 0:
			return errs.Invalid(f("tag"), "VLAN tags need the network layer, which this node does not run")
		case n.Rate != 0:
			return errs.Invalid(f("rate"), "rate limits need the network layer, which this node does not run")
		case n.Firewall:
			return errs.Invalid(f("firewall"), "the firewall needs the network layer, which this node does not run")
		}
	}
	if err := m.guests.CheckMACs(c.VMID, macs, func(i int) string { return fmt.Sprintf("nets[%d].hwaddr", i) }); err != nil {
		return err
	}
	for i, ns := range c.Nameserver {
		if net.ParseIP(ns) == nil {
			return errs.Invalid(fmt.Sprintf("nameserver[%d]", i), "not an IP address")
		}
	}
	for i, t := range c.Tags {
		if storage.ValidateVolName(t) != nil || strings.Contains(t, "/") {
			return errs.Invalid(fmt.Sprintf("tags[%d]", i), "tags use letters, digits, . _ + -")
		}
	}
	return nil
}

// macs reports every container NIC's MAC, current and pending,
// cluster-wide (the guest core's duplicate check covers VMs and
// containers together).
func (m *Manager) macs(yield func(vmid int, kind, mac string)) {
	for _, o := range m.recs.Coll.List() {
		for _, c := range []*api.CTConfig{&o.Value.Config, o.Value.Pending} {
			if c == nil {
				continue
			}
			for _, n := range c.Nets {
				yield(o.Value.Config.VMID, "container", n.HWAddr)
			}
		}
	}
}

// checkAllocPool checks that a pool exists and holds container volumes.
func (m *Manager) checkAllocPool(field, id string) error {
	cfg, err := m.stor.Get(id)
	if err != nil {
		return errs.Invalid(field, "storage %q does not exist", id)
	}
	if !slices.Contains(cfg.Content, api.ContentRootdir) {
		return errs.Invalid(field, "storage %s does not hold container volumes (content rootdir)", id)
	}
	return nil
}

// volumePath resolves a volume of a content type to its path on this node.
func (m *Manager) volumePath(ctx context.Context, volid, content string) (string, error) {
	return m.stor.VolumePath(ctx, volid, content)
}

func parseSizeOr0(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	return storage.ParseSize(s)
}
