package api

import "time"

// VMDisk is one virtual disk. On create, give either Volume (an existing
// volume) or Storage+Size (allocate a new one).
type VMDisk struct {
	Bus      string `json:"bus" enum:"virtio,scsi,sata,ide"`
	Volume   string `json:"volume,omitempty" maxLength:"300" doc:"<storage>:<volname>"`
	Storage  string `json:"storage,omitempty" maxLength:"32" doc:"create only: allocate a new volume on this pool"`
	Size     string `json:"size,omitempty" pattern:"^([0-9]+[KMGT]?)?$" doc:"create only: size of the new volume"`
	Format   string `json:"format,omitempty" enum:"raw,qcow2,"`
	Cache    string `json:"cache,omitempty" enum:"none,writeback,writethrough,directsync,unsafe,"`
	Discard  bool   `json:"discard,omitempty"`
	IOThread bool   `json:"iothread,omitempty"`
	ReadOnly bool   `json:"readonly,omitempty"`
}

// VMCDROM is a CD-ROM drive; Volume is an iso volume ID or "none".
type VMCDROM struct {
	Volume string `json:"volume" maxLength:"300"`
}

// VMNet is one network interface.
type VMNet struct {
	Model    string  `json:"model" enum:"virtio,e1000"`
	Bridge   string  `json:"bridge,omitempty" maxLength:"15" pattern:"^[A-Za-z0-9_.-]*$"`
	MAC      string  `json:"mac,omitempty" pattern:"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$|^$" doc:"generated when empty"`
	Tag      int     `json:"tag,omitempty" minimum:"0" maximum:"4094"`
	Rate     float64 `json:"rate,omitempty" minimum:"0" doc:"MB/s, 0 = unlimited"`
	Firewall bool    `json:"firewall,omitempty"`
}

// VMConfig is a virtual machine's configuration.
type VMConfig struct {
	VMID        int          `json:"vmid" readOnly:"true"`
	Name        string       `json:"name,omitempty" maxLength:"63" pattern:"^$|^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$"`
	Node        string       `json:"node" readOnly:"true"`
	Description string       `json:"description,omitempty" maxLength:"8192"`
	Tags        []string     `json:"tags,omitempty" maxItems:"32"`
	Cores       int          `json:"cores" minimum:"1" maximum:"128"`
	Sockets     int          `json:"sockets" minimum:"1" maximum:"4"`
	CPU         string       `json:"cpu" enum:"host,max,x86-64-v2,x86-64-v2-AES,x86-64-v3,qemu64,kvm64"`
	Memory      int          `json:"memory" minimum:"16" maximum:"4194304" doc:"MiB"`
	VCPUs       int          `json:"vcpus,omitempty" minimum:"0" maximum:"512" doc:"vCPUs online; 0 = cores×sockets. With hotplug cpu it changes while the VM runs"`
	MaxMemory   int          `json:"maxmemory,omitempty" minimum:"0" maximum:"4194304" doc:"MiB the memory may grow to while running (hotplug memory); default 4×memory"`
	Hotplug     []string     `json:"hotplug,omitempty" maxItems:"2" uniqueItems:"true" enum:"cpu,memory" doc:"what may be added while the VM runs besides virtio disks: cpu, memory"`
	Balloon     int          `json:"balloon,omitempty" minimum:"0" maximum:"4194304" doc:"MiB; 0 disables the balloon device"`
	Machine     string       `json:"machine" enum:"q35,pc"`
	BIOS        string       `json:"bios" enum:"seabios,ovmf"`
	Boot        []string     `json:"boot,omitempty" maxItems:"16" doc:"device order, e.g. [\"cdrom0\",\"disk0\",\"net0\"]"`
	Disks       []VMDisk     `json:"disks,omitempty" maxItems:"30"`
	CDROMs      []VMCDROM    `json:"cdroms,omitempty" maxItems:"4"`
	Nets        []VMNet      `json:"nets,omitempty" maxItems:"32"`
	Serial      bool         `json:"serial" doc:"a serial port on a socket (serial0), reachable through the console websocket"`
	VGA         string       `json:"vga" enum:"std,virtio,qxl,serial0,none"`
	OnBoot      bool         `json:"onboot,omitempty"`
	CloudInit   *VMCloudInit `json:"cloudinit,omitempty" doc:"first-boot settings, given to the guest as a NoCloud seed CD-ROM"`
	Protection  bool         `json:"protection,omitempty" doc:"refuse deletion"`
	Template    bool         `json:"template,omitempty" readOnly:"true"`
	UUID        string       `json:"uuid" readOnly:"true" doc:"SMBIOS UUID, stable for the VM's life"`
	EFIVars     string       `json:"efivars,omitempty" readOnly:"true" doc:"volume with the VM's UEFI variables (bios ovmf), made at its first start"`
}

// VM is a VM as the API returns it: its config, pending changes, lock and digest.
type VM struct {
	Config  VMConfig  `json:"config"`
	Pending *VMConfig `json:"pending,omitempty" doc:"changes that apply at the next start"`
	Lock    string    `json:"lock,omitempty" doc:"running operation: create, clone, snapshot, rollback, snapshot-delete, template, disk, backup, migrate"`
	Status  string    `json:"status"`
	Digest  string    `json:"digest"`
}

// VMCreate creates a VM. Omitted fields get defaults: 1 core, 1 socket,
// 512 MiB, q35, seabios, cpu x86-64-v2 (host where KVM works), vga std.
type VMCreate struct {
	VMID        int          `json:"vmid,omitempty" minimum:"0" maximum:"999999999" doc:"default: next free ID"`
	Name        string       `json:"name,omitempty" maxLength:"63" pattern:"^$|^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$"`
	Node        string       `json:"node,omitempty" maxLength:"63" doc:"default: the node answering"`
	Description string       `json:"description,omitempty" maxLength:"8192"`
	Tags        []string     `json:"tags,omitempty" maxItems:"32"`
	Cores       int          `json:"cores,omitempty" minimum:"0" maximum:"128"`
	Sockets     int          `json:"sockets,omitempty" minimum:"0" maximum:"4"`
	CPU         string       `json:"cpu,omitempty" enum:"host,max,x86-64-v2,x86-64-v2-AES,x86-64-v3,qemu64,kvm64,"`
	Memory      int          `json:"memory,omitempty" minimum:"0" maximum:"4194304"`
	VCPUs       int          `json:"vcpus,omitempty" minimum:"0" maximum:"512"`
	MaxMemory   int          `json:"maxmemory,omitempty" minimum:"0" maximum:"4194304"`
	Hotplug     []string     `json:"hotplug,omitempty" maxItems:"2" uniqueItems:"true" enum:"cpu,memory"`
	Balloon     int          `json:"balloon,omitempty" minimum:"0" maximum:"4194304"`
	Machine     string       `json:"machine,omitempty" enum:"q35,pc,"`
	BIOS        string       `json:"bios,omitempty" enum:"seabios,ovmf,"`
	Boot        []string     `json:"boot,omitempty" maxItems:"16"`
	Disks       []VMDisk     `json:"disks,omitempty" maxItems:"30"`
	CDROMs      []VMCDROM    `json:"cdroms,omitempty" maxItems:"4"`
	Nets        []VMNet      `json:"nets,omitempty" maxItems:"32"`
	Serial      *bool        `json:"serial,omitempty" doc:"default true"`
	VGA         string       `json:"vga,omitempty" enum:"std,virtio,qxl,serial0,none,"`
	OnBoot      bool         `json:"onboot,omitempty"`
	CloudInit   *VMCloudInit `json:"cloudinit,omitempty"`
	Protection  bool         `json:"protection,omitempty"`
	Start       bool         `json:"start,omitempty" doc:"start the VM once created"`
}

// VMUpdate changes a VM's config; absent fields are kept. On a running VM,
// changes that need a restart become pending. Every field's `priv` tag is
// the privilege on /vms/{id} that setting it needs; the server derives its
// checks from the tags and publishes them as x-corral-privilege.
type VMUpdate struct {
	Name        *string      `json:"name,omitempty" maxLength:"63" pattern:"^$|^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$" priv:"VM.Config.Options"`
	Description *string      `json:"description,omitempty" maxLength:"8192" priv:"VM.Config.Options"`
	Tags        *[]string    `json:"tags,omitempty" maxItems:"32" priv:"VM.Config.Options"`
	Cores       *int         `json:"cores,omitempty" minimum:"1" maximum:"128" priv:"VM.Config.CPU"`
	Sockets     *int         `json:"sockets,omitempty" minimum:"1" maximum:"4" priv:"VM.Config.CPU"`
	CPU         *string      `json:"cpu,omitempty" enum:"host,max,x86-64-v2,x86-64-v2-AES,x86-64-v3,qemu64,kvm64" priv:"VM.Config.CPU"`
	Memory      *int         `json:"memory,omitempty" minimum:"16" maximum:"4194304" doc:"with hotplug memory, growth in 128 MiB steps applies live" priv:"VM.Config.Memory"`
	VCPUs       *int         `json:"vcpus,omitempty" minimum:"0" maximum:"512" doc:"with hotplug cpu, applies live" priv:"VM.Config.CPU"`
	MaxMemory   *int         `json:"maxmemory,omitempty" minimum:"0" maximum:"4194304" priv:"VM.Config.Memory"`
	Hotplug     *[]string    `json:"hotplug,omitempty" maxItems:"2" uniqueItems:"true" enum:"cpu,memory" priv:"VM.Config.HWType"`
	Balloon     *int         `json:"balloon,omitempty" minimum:"0" maximum:"4194304" priv:"VM.Config.Memory"`
	Machine     *string      `json:"machine,omitempty" enum:"q35,pc" priv:"VM.Config.HWType"`
	BIOS        *string      `json:"bios,omitempty" enum:"seabios,ovmf" priv:"VM.Config.HWType"`
	Boot        *[]string    `json:"boot,omitempty" maxItems:"16" priv:"VM.Config.Options"`
	CDROMs      *[]VMCDROM   `json:"cdroms,omitempty" maxItems:"4" priv:"VM.Config.CDROM"`
	Nets        *[]VMNet     `json:"nets,omitempty" maxItems:"32" priv:"VM.Config.Network"`
	Serial      *bool        `json:"serial,omitempty" priv:"VM.Config.HWType"`
	VGA         *string      `json:"vga,omitempty" enum:"std,virtio,qxl,serial0,none" priv:"VM.Config.HWType"`
	OnBoot      *bool        `json:"onboot,omitempty" priv:"VM.Config.Options"`
	CloudInit   *VMCloudInit `json:"cloudinit,omitempty" doc:"replaces the cloud-init settings; {} removes them" priv:"VM.Config.Cloudinit"`
	Protection  *bool        `json:"protection,omitempty" priv:"VM.Config.Options"`
	Revert      bool         `json:"revert,omitempty" doc:"drop pending changes" priv:"VM.Config.Options"`
}

// VMStatus is a VM's runtime state on its node.
type VMStatus struct {
	VMID      int       `json:"vmid"`
	Node      string    `json:"node"`
	Status    string    `json:"status" enum:"running,stopped,paused,unknown"`
	QMPStatus string    `json:"qmpstatus,omitempty"`
	PID       int       `json:"pid,omitempty"`
	Uptime    int64     `json:"uptime,omitempty" doc:"seconds"`
	CPU       float64   `json:"cpu" doc:"share of the VM's vCPUs used since the last sample (0..1)"`
	Mem       uint64    `json:"mem" doc:"resident memory of the QEMU process, bytes"`
	MaxMem    uint64    `json:"maxmem"`
	Accel     string    `json:"accel,omitempty" enum:"kvm,tcg,"`
	Warning   string    `json:"warning,omitempty"`
	Started   time.Time `json:"started,omitzero"`
}

// VMShutdown parameters.
type VMShutdown struct {
	Timeout int   `json:"timeout,omitempty" minimum:"0" maximum:"3600" doc:"seconds to wait for the guest before stopping it (default 60)"`
	Force   *bool `json:"force,omitempty" doc:"stop the VM when the timeout passes (default true); false fails the task instead"`
}

// VMClone clones a VM (or a template) into a new VM on the same node.
type VMClone struct {
	NewID int    `json:"newid,omitempty" minimum:"0" maximum:"999999999" doc:"default: next free ID"`
	Name  string `json:"name,omitempty" maxLength:"63" pattern:"^$|^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$"`
	Full  bool   `json:"full,omitempty" doc:"full copy; the default for a VM that is not a template. Templates clone linked where the storage can"`
}

// VMSnapshot is one node of a VM's snapshot tree.
type VMSnapshot struct {
	Name        string    `json:"name" minLength:"1" maxLength:"40" pattern:"^[A-Za-z][A-Za-z0-9_-]*$"`
	Description string    `json:"description,omitempty" maxLength:"1024"`
	Parent      string    `json:"parent,omitempty" readOnly:"true"`
	Time        time.Time `json:"time" readOnly:"true"`
	VMState     bool      `json:"vmstate" readOnly:"true" doc:"includes RAM: taken while running; rolling back resumes the VM where it was"`
	Current     bool      `json:"current,omitempty" readOnly:"true" doc:"the VM's state derives from this snapshot"`
}

// VMSnapshotCreate takes a snapshot. A running VM's snapshot always holds
// its RAM too (QEMU snapshot-save); a stopped VM's holds the disks.
type VMSnapshotCreate struct {
	Name        string `json:"name" minLength:"1" maxLength:"40" pattern:"^[A-Za-z][A-Za-z0-9_-]*$"`
	Description string `json:"description,omitempty" maxLength:"1024"`
}

// VMDiskResize grows a disk.
type VMDiskResize struct {
	Size string `json:"size" pattern:"^\\+?[0-9]+[KMGT]?$" doc:"new size, or +delta"`
}

// VMDiskMove moves a stopped VM's disk to another pool.
type VMDiskMove struct {
	Storage string `json:"storage" minLength:"1" maxLength:"32"`
	Format  string `json:"format,omitempty" enum:"raw,qcow2,"`
	Delete  bool   `json:"delete,omitempty" doc:"free the source volume afterwards (default: keep it)"`
}

// VMCloudInit is what cloud-init in the guest applies at first boot.
type VMCloudInit struct {
	User         string   `json:"user,omitempty" maxLength:"32" pattern:"^$|^[a-z_][a-z0-9_-]*$"`
	PasswordHash string   `json:"password_hash,omitempty" maxLength:"256" pattern:"^$|^\\$(1|5|6|y|2[aby])\\$[./A-Za-z0-9$]+$" doc:"crypt(3) hash (e.g. from mkpasswd -m sha-512); plain passwords are never stored"`
	SSHKeys      []string `json:"ssh_keys,omitempty" maxItems:"32"`
	IP           string   `json:"ip,omitempty" maxLength:"64" doc:"dhcp, or an address in CIDR form"`
	Gateway      string   `json:"gw,omitempty" maxLength:"64"`
	Nameserver   []string `json:"nameserver,omitempty" maxItems:"3"`
	SearchDomain string   `json:"searchdomain,omitempty" maxLength:"253" pattern:"^$|^[A-Za-z0-9.-]+$"`
}

// VMDiskAttach adds a disk to a stopped VM: a new volume (storage+size),
// an existing one (volume), or a copy of an image file (import_from: a
// volume ID, or an absolute path on the node for root@pam).
type VMDiskAttach struct {
	VMDisk
	ImportFrom string `json:"import_from,omitempty" maxLength:"512" doc:"copy this image into a new volume on storage"`
}
