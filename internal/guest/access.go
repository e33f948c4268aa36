package guest

import (
	"crypto/rand"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/storage"
)

// Authorizer answers whether the caller of a request holds every one of
// privs on an ACL path. The server hands the request's caller to the
// drivers through it, so the rules about what a guest may reference (other
// guests' volumes, bridges, vnets) are decided with the caller's rights
// without the drivers importing the server.
type Authorizer interface {
	Allowed(path string, privs ...string) bool
}

// AuthFunc adapts a function to Authorizer.
type AuthFunc func(path string, privs ...string) bool

// Allowed implements Authorizer.
func (f AuthFunc) Allowed(path string, privs ...string) bool { return f(path, privs...) }

// Nobody holds no privilege: what a caller without an Authorizer gets, so
// a forgotten one denies instead of allowing.
var Nobody Authorizer = AuthFunc(func(string, ...string) bool { return false })

func orNobody(a Authorizer) Authorizer {
	if a == nil {
		return Nobody
	}
	return a
}

// VolumeUse is what a guest does with a volume it names.
type VolumeUse int

const (
	UseDisk   VolumeUse = iota // a disk or mount point: read and written
	UseCDROM                   // a CD-ROM: read-only, must be an ISO
	UseImport                  // the source of an import: read (copied)
	UseFree                    // freed
)

func (u VolumeUse) String() string {
	return [...]string{"attach", "use as a CD-ROM", "import", "free"}[u]
}

// CheckVolume decides whether the caller may have guest vmid use an
// existing volume. field names the request field for the error.
//
//   - a guest's own volumes (storage.VolID.Owner == vmid) need nothing
//     more than the operation's own privilege on the guest;
//   - another guest's volume needs VM.Config.Disk on /vms/<owner> and
//     Datastore.AllocateSpace on /storage/<pool>;
//   - a volume of no guest (ISO, template, LUN) needs Datastore.AllocateSpace
//     on the pool to be written or freed, and Datastore.AllocateSpace or
//     Datastore.Audit to be read (CD-ROM, import source);
//   - and what passes must, as a CD-ROM, be an ISO (content iso, an
//     "iso/..." volume): the ownership refusal comes first, so another
//     guest's disk is a 403 whatever it is used as.
func CheckVolume(auth Authorizer, vmid int, field, volid string, use VolumeUse) error {
	id, err := storage.ParseVolID(volid)
	if err != nil {
		return errs.Invalid(field, "%v", err)
	}
	if err := volumeRights(orNobody(auth), vmid, field, id, use); err != nil {
		return err
	}
	if use == UseCDROM && id.Content() != api.ContentISO {
		return errs.Invalid(field, "%s is not an ISO image (a CD-ROM takes a volume of content iso)", volid)
	}
	return nil
}

// volumeRights is CheckVolume's privilege part.
func volumeRights(auth Authorizer, vmid int, field string, id storage.VolID, use VolumeUse) error {
	pool := "/storage/" + id.Storage
	owner := id.Owner()
	switch {
	case owner != 0 && owner == vmid:
		return nil
	case owner != 0:
		vm := "/vms/" + strconv.Itoa(owner)
		if !auth.Allowed(vm, "VM.Config.Disk") || !auth.Allowed(pool, "Datastore.AllocateSpace") {
			return errs.Forbidden("permission denied: %s (%s) belongs to guest %d; to %s it, VM.Config.Disk on %s and Datastore.AllocateSpace on %s are required",
				id, field, owner, use, vm, pool)
		}
	case use == UseCDROM || use == UseImport:
		if !auth.Allowed(pool, "Datastore.AllocateSpace") && !auth.Allowed(pool, "Datastore.Audit") {
			return errs.Forbidden("permission denied: Datastore.Audit or Datastore.AllocateSpace required on %s to %s %s (%s)", pool, use, id, field)
		}
	default:
		if !auth.Allowed(pool, "Datastore.AllocateSpace") {
			return errs.Forbidden("permission denied: Datastore.AllocateSpace required on %s to %s %s (%s), which belongs to no guest", pool, use, id, field)
		}
	}
	return nil
}

// Owns says whether volid is named for guest vmid: destroying a guest
// frees only those, never another guest's volume it had attached.
func Owns(vmid int, volid string) bool {
	id, err := storage.ParseVolID(volid)
	return err == nil && id.Owner() == vmid
}

// SDNPath is the ACL path that guards a NIC's network: a vnet's
// /sdn/zones/<zone>/<vnet>, and for a host bridge (zone "") the Proxmox
// path /sdn/zones/localnetwork/<bridge>.
func SDNPath(zone, bridge string) string {
	if zone == "" {
		zone = "localnetwork"
	}
	return "/sdn/zones/" + zone + "/" + bridge
}

// CheckSDN decides whether the caller may put a NIC on the network
// guarded by path (SDNPath): it needs SDN.Use there.
func CheckSDN(auth Authorizer, field, path string) error {
	if !orNobody(auth).Allowed(path, "SDN.Use") {
		return errs.Forbidden("permission denied: SDN.Use required on %s (%s)", path, field)
	}
	return nil
}

// NormalMAC parses a NIC's MAC address and returns it in corral's form
// (upper case, colons), refusing what can't be one interface's address:
// the broadcast and multicast addresses (I/G bit set) and all zeros.
func NormalMAC(s string) (string, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return "", fmt.Errorf("%q is not a MAC address (want six hex pairs, 02:00:00:00:00:01)", s)
	}
	switch {
	case strings.EqualFold(mac.String(), "ff:ff:ff:ff:ff:ff"):
		return "", fmt.Errorf("%s is the broadcast address", s)
	case mac[0]&1 == 1:
		return "", fmt.Errorf("%s is a multicast address (the lowest bit of the first byte is set)", s)
	case string(mac) == "\x00\x00\x00\x00\x00\x00":
		return "", fmt.Errorf("%s is not a usable address (all zeros)", s)
	}
	return strings.ToUpper(mac.String()), nil
}

// NewMAC returns a random locally administered unicast MAC, the address
// a NIC gets when the request names none.
func NewMAC() string {
	b := make([]byte, 6)
	rand.Read(b)
	b[0] = b[0]&0xfe | 0x02
	return fmt.Sprintf("%02X:%02X:%02X:%02X:%02X:%02X", b[0], b[1], b[2], b[3], b[4], b[5])
}

// MACLister reports every MAC of one kind's guests cluster-wide, current
// and pending configs alike, through yield.
type MACLister func(yield func(vmid int, kind, mac string))

// macs are the listers the drivers registered (VMs and containers).
type macs struct {
	mu      sync.Mutex
	listers []MACLister
}

// AddMACs registers a driver's lister: CheckMACs then sees its guests.
func (r *Registry) AddMACs(l MACLister) {
	r.macs.mu.Lock()
	defer r.macs.mu.Unlock()
	r.macs.listers = append(r.macs.listers, l)
}

// CheckMACs validates the MACs of guest vmid's NICs and normalises them in
// place: each must be a usable unicast address (NormalMAC), used once in
// the guest and by no other guest of the cluster, VM or container.
// field names NIC i's MAC field for errors.
func (r *Registry) CheckMACs(vmid int, list []*string, field func(i int) string) error {
	seen := map[string]int{}
	for i, p := range list {
		mac, err := NormalMAC(*p)
		if err != nil {
			return errs.Invalid(field(i), "%v", err)
		}
		if j, dup := seen[mac]; dup {
			return errs.Invalid(field(i), "%s is already the MAC of NIC %d of this guest", mac, j)
		}
		seen[mac] = i
		*p = mac
	}
	if len(seen) == 0 {
		return nil
	}
	r.macs.mu.Lock()
	listers := append([]MACLister(nil), r.macs.listers...)
	r.macs.mu.Unlock()
	var clash error
	for _, l := range listers {
		l(func(other int, kind, m string) {
			if clash != nil || other == vmid {
				return
			}
			if n, err := NormalMAC(m); err == nil {
				if i, ok := seen[n]; ok {
					clash = errs.Invalid(field(i), "%s is already used by %s %d", n, kind, other)
				}
			}
		})
	}
	return clash
}
