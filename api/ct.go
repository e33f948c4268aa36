package api

import "time"

// CTRootFS is a container's root filesystem volume. On create give
// Storage (and optionally Size); the volume is allocated there.
type CTRootFS struct {
	Volume  string `json:"volume,omitempty" maxLength:"300" doc:"<storage>:<volname> of the rootdir volume"`
	Storage string `json:"storage,omitempty" maxLength:"32" doc:"create only: allocate the root filesystem on this pool"`
	Size    string `json:"size,omitempty" pattern:"^([0-9]+[KMGT]?)?$" doc:"size (recorded; enforced where the pool can)"`
}

// CTMountpoint is an extra filesystem in the container: a rootdir volume,
// or (root@pam only) a directory of the host bind-mounted.
type CTMountpoint struct {
	MP       string `json:"mp" minLength:"2" maxLength:"256" doc:"absolute path inside the container"`
	Volume   string `json:"volume,omitempty" maxLength:"300"`
	Storage  string `json:"storage,omitempty" maxLength:"32" doc:"create only: allocate a new volume on this pool"`
	Size     string `json:"size,omitempty" pattern:"^([0-9]+[KMGT]?)?$"`
	HostPath string `json:"host_path,omitempty" maxLength:"512" doc:"bind-mount this host directory (root@pam only)"`
	ReadOnly bool   `json:"readonly,omitempty"`
	Backup   bool   `json:"backup,omitempty"`
}

// CTNet is one container network interface (a veth pair on a bridge).
type CTNet struct {
	Name     string  `json:"name" pattern:"^[a-z][a-z0-9_-]{0,14}$" doc:"interface name inside the container, e.g. eth0"`
	Bridge   string  `json:"bridge,omitempty" maxLength:"15" pattern:"^[A-Za-z0-9_.-]*$"`
	HWAddr   string  `json:"hwaddr,omitempty" pattern:"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$|^$" doc:"generated when empty"`
	IP       string  `json:"ip,omitempty" maxLength:"64" doc:"dhcp, or an IPv4 address in CIDR form"`
	GW       string  `json:"gw,omitempty" maxLength:"64"`
	IP6      string  `json:"ip6,omitempty" maxLength:"64" doc:"auto, dhcp, or an IPv6 address in CIDR form"`
	GW6      string  `json:"gw6,omitempty" maxLength:"64"`
	Tag      int     `json:"tag,omitempty" minimum:"0" maximum:"4094"`
	Rate     float64 `json:"rate,omitempty" minimum:"0" doc:"MB/s, 0 = unlimited"`
	MTU      int     `json:"mtu,omitempty" minimum:"0" maximum:"65520"`
	Firewall bool    `json:"firewall,omitempty"`
}

// CTFeatures are optional kernel features a container may use.
type CTFeatures struct {
	Nesting bool `json:"nesting,omitempty" doc:"allow containers inside (mounts /proc and /sys writable where safe)"`
	FUSE    bool `json:"fuse,omitempty" doc:"allow /dev/fuse"`
	Keyctl  bool `json:"keyctl,omitempty" doc:"allow the keyctl() system call (unprivileged only)"`
}

// CTConfig is a system container's configuration.
type CTConfig struct {
	VMID         int            `json:"vmid" readOnly:"true"`
	Hostname     string         `json:"hostname" maxLength:"253" pattern:"^$|^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"`
	Node         string         `json:"node" readOnly:"true"`
	OSType       string         `json:"ostype" readOnly:"true" doc:"detected from the template: debian, ubuntu, alpine, busybox, unmanaged"`
	Arch         string         `json:"arch" readOnly:"true"`
	Description  string         `json:"description,omitempty" maxLength:"8192"`
	Tags         []string       `json:"tags,omitempty" maxItems:"32"`
	Cores        int            `json:"cores" minimum:"1" maximum:"128" doc:"CPUs the container may use"`
	CPULimit     float64        `json:"cpulimit,omitempty" minimum:"0" maximum:"128" doc:"CPU time in CPUs' worth (0 = no limit)"`
	CPUUnits     int            `json:"cpuunits,omitempty" minimum:"0" maximum:"10000" doc:"relative CPU weight (default 100)"`
	Memory       int            `json:"memory" minimum:"16" maximum:"4194304" doc:"MiB"`
	Swap         int            `json:"swap" minimum:"0" maximum:"4194304" doc:"MiB"`
	RootFS       CTRootFS       `json:"rootfs"`
	Mountpoints  []CTMountpoint `json:"mountpoints,omitempty" maxItems:"32"`
	Nets         []CTNet        `json:"nets,omitempty" maxItems:"32"`
	Nameserver   []string       `json:"nameserver,omitempty" maxItems:"3"`
	SearchDomain string         `json:"searchdomain,omitempty" maxLength:"253" pattern:"^$|^[A-Za-z0-9.-]+$"`
	Unprivileged bool           `json:"unprivileged" readOnly:"true" doc:"root in the container is an unprivileged user of the host (user namespace)"`
	Features     CTFeatures     `json:"features"`
	OnBoot       bool           `json:"onboot,omitempty"`
	Startup      string         `json:"startup,omitempty" maxLength:"64" pattern:"^$|^(order=[0-9]+)?(,?(up|down)=[0-9]+)*$" doc:"order=N,up=SECONDS,down=SECONDS"`
	Protection   bool           `json:"protection,omitempty" doc:"refuse deletion"`
	Template     bool           `json:"template,omitempty" readOnly:"true"`
	Console      bool           `json:"console" doc:"a console on /dev/console"`
}

// CT is a container as the API returns it.
type CT struct {
	Config  CTConfig  `json:"config"`
	Pending *CTConfig `json:"pending,omitempty" doc:"changes that apply at the next start"`
	Lock    string    `json:"lock,omitempty" doc:"running operation: create, clone, snapshot, rollback"`
	Status  string    `json:"status"`
	Digest  string    `json:"digest"`
}

// CTCreate creates a container from a template (a vztmpl volume).
// Omitted fields get defaults: 1 core, 512 MiB, 512 MiB swap, an
// unprivileged container, rootfs on the pool "local".
type CTCreate struct {
	VMID          int            `json:"vmid,omitempty" minimum:"0" maximum:"999999999" doc:"default: next free ID"`
	Node          string         `json:"node,omitempty" maxLength:"63"`
	OSTemplate    string         `json:"ostemplate" minLength:"3" maxLength:"300" doc:"vztmpl volume: <storage>:vztmpl/<file>"`
	Hostname      string         `json:"hostname,omitempty" maxLength:"253" pattern:"^$|^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$" doc:"default ct<vmid>"`
	Description   string         `json:"description,omitempty" maxLength:"8192"`
	Tags          []string       `json:"tags,omitempty" maxItems:"32"`
	Cores         int            `json:"cores,omitempty" minimum:"0" maximum:"128"`
	CPULimit      float64        `json:"cpulimit,omitempty" minimum:"0" maximum:"128"`
	CPUUnits      int            `json:"cpuunits,omitempty" minimum:"0" maximum:"10000"`
	Memory        int            `json:"memory,omitempty" minimum:"0" maximum:"4194304"`
	Swap          *int           `json:"swap,omitempty" minimum:"0" maximum:"4194304"`
	RootFS        CTRootFS       `json:"rootfs,omitempty"`
	Mountpoints   []CTMountpoint `json:"mountpoints,omitempty" maxItems:"32"`
	Nets          []CTNet        `json:"nets,omitempty" maxItems:"32"`
	Nameserver    []string       `json:"nameserver,omitempty" maxItems:"3"`
	SearchDomain  string         `json:"searchdomain,omitempty" maxLength:"253" pattern:"^$|^[A-Za-z0-9.-]+$"`
	Unprivileged  *bool          `json:"unprivileged,omitempty" doc:"default true; privileged containers need Sys.Modify on /"`
	Features      CTFeatures     `json:"features,omitempty"`
	OnBoot        bool           `json:"onboot,omitempty"`
	Startup       string         `json:"startup,omitempty" maxLength:"64" pattern:"^$|^(order=[0-9]+)?(,?(up|down)=[0-9]+)*$"`
	Protection    bool           `json:"protection,omitempty"`
	Console       *bool          `json:"console,omitempty" doc:"default true"`
	Password      string         `json:"password,omitempty" minLength:"5" maxLength:"256" doc:"root password; only its hash is written (into the container)"`
	SSHPublicKeys []string       `json:"ssh_public_keys,omitempty" maxItems:"32" doc:"root's authorized_keys"`
	Start         bool           `json:"start,omitempty" doc:"start the container once created"`
}

// CTUpdate changes a container's config; absent fields are kept. On a
// running container memory, swap and CPU limits apply at once; other
// changes that need a restart become pending. Each field's `priv` tag is
// the privilege it needs, as for VMUpdate.
type CTUpdate struct {
	Hostname     *string         `json:"hostname,omitempty" maxLength:"253" pattern:"^$|^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$" priv:"VM.Config.Options"`
	Description  *string         `json:"description,omitempty" maxLength:"8192" priv:"VM.Config.Options"`
	Tags         *[]string       `json:"tags,omitempty" maxItems:"32" priv:"VM.Config.Options"`
	Cores        *int            `json:"cores,omitempty" minimum:"1" maximum:"128" priv:"VM.Config.CPU"`
	CPULimit     *float64        `json:"cpulimit,omitempty" minimum:"0" maximum:"128" priv:"VM.Config.CPU"`
	CPUUnits     *int            `json:"cpuunits,omitempty" minimum:"0" maximum:"10000" priv:"VM.Config.CPU"`
	Memory       *int            `json:"memory,omitempty" minimum:"16" maximum:"4194304" priv:"VM.Config.Memory"`
	Swap         *int            `json:"swap,omitempty" minimum:"0" maximum:"4194304" priv:"VM.Config.Memory"`
	Mountpoints  *[]CTMountpoint `json:"mountpoints,omitempty" maxItems:"32" doc:"existing volumes or host paths only" priv:"VM.Config.Disk"`
	Nets         *[]CTNet        `json:"nets,omitempty" maxItems:"32" priv:"VM.Config.Network"`
	Nameserver   *[]string       `json:"nameserver,omitempty" maxItems:"3" priv:"VM.Config.Network"`
	SearchDomain *string         `json:"searchdomain,omitempty" maxLength:"253" pattern:"^$|^[A-Za-z0-9.-]+$" priv:"VM.Config.Network"`
	Features     *CTFeatures     `json:"features,omitempty" priv:"VM.Config.Options"`
	OnBoot       *bool           `json:"onboot,omitempty" priv:"VM.Config.Options"`
	Startup      *string         `json:"startup,omitempty" maxLength:"64" pattern:"^$|^(order=[0-9]+)?(,?(up|down)=[0-9]+)*$" priv:"VM.Config.Options"`
	Protection   *bool           `json:"protection,omitempty" priv:"VM.Config.Options"`
	Console      *bool           `json:"console,omitempty" priv:"VM.Config.Options"`
	Revert       bool            `json:"revert,omitempty" doc:"drop pending changes" priv:"VM.Config.Options"`
}

// CTStatus is a container's runtime state on its node.
type CTStatus struct {
	VMID    int       `json:"vmid"`
	Node    string    `json:"node"`
	Status  string    `json:"status" enum:"running,stopped,frozen,unknown"`
	PID     int       `json:"pid,omitempty" doc:"host PID of the container's init"`
	Uptime  int64     `json:"uptime,omitempty" doc:"seconds"`
	CPU     float64   `json:"cpu" doc:"share of the container's CPUs used since the last sample (0..1)"`
	Mem     uint64    `json:"mem" doc:"memory in use (cgroup), bytes"`
	MaxMem  uint64    `json:"maxmem"`
	Swap    uint64    `json:"swap,omitempty"`
	MaxSwap uint64    `json:"maxswap"`
	Disk    uint64    `json:"disk" doc:"bytes used by the root filesystem"`
	MaxDisk uint64    `json:"maxdisk,omitempty"`
	NetIn   uint64    `json:"netin" doc:"bytes received by the container's interfaces"`
	NetOut  uint64    `json:"netout"`
	Started time.Time `json:"started,omitzero"`
}

// CTShutdown parameters.
type CTShutdown struct {
	Timeout int   `json:"timeout,omitempty" minimum:"0" maximum:"3600" doc:"seconds to wait for init to power off (default 60)"`
	Force   *bool `json:"force,omitempty" doc:"kill the container when the timeout passes (default true)"`
}

// CTExec runs a command in a running container. Without Interactive the
// call waits for the command and returns its output (capped at 1 MiB per
// stream); with it the answer is a one-time session for execwebsocket.
type CTExec struct {
	Command     []string          `json:"command" minItems:"1" maxItems:"256" doc:"program and arguments (no shell unless you run one)"`
	Env         map[string]string `json:"env,omitempty" doc:"extra environment variables"`
	Stdin       string            `json:"stdin,omitempty" maxLength:"1048576" doc:"non-interactive: bytes for standard input"`
	Timeout     int               `json:"timeout,omitempty" minimum:"0" maximum:"3600" doc:"non-interactive: seconds (default 60)"`
	Interactive bool              `json:"interactive,omitempty" doc:"stream stdin/stdout/stderr over a websocket"`
	TTY         bool              `json:"tty,omitempty" doc:"interactive: run on a pseudo-terminal"`
}

// CTExecResult is the outcome of a non-interactive exec, or (Interactive)
// the session to open.
type CTExecResult struct {
	ExitCode  int    `json:"exit_code"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Truncated bool   `json:"truncated,omitempty"`
	Session   string `json:"session,omitempty" doc:"interactive: pass as ?session= to execwebsocket within 60 s"`
}

// Exec websocket framing: every binary message starts with a channel byte.
// Client to server: ExecStdin (empty payload = end of input), ExecResize
// (JSON {"cols":N,"rows":N}). Server to client: ExecStdout, ExecStderr,
// and finally ExecExit with JSON {"exit_code":N}.
const (
	ExecStdin  byte = 0
	ExecStdout byte = 1
	ExecStderr byte = 2
	ExecExit   byte = 3
	ExecResize byte = 4
)

// CTSnapshot is one snapshot of a container.
type CTSnapshot struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Time        time.Time `json:"time"`
}

// CTSnapshotCreate takes a snapshot of the container's volumes.
type CTSnapshotCreate struct {
	Name        string `json:"name" minLength:"1" maxLength:"40" pattern:"^[A-Za-z][A-Za-z0-9_-]*$"`
	Description string `json:"description,omitempty" maxLength:"1024"`
}

// CTClone clones a stopped container (or a template) into a new one.
type CTClone struct {
	NewID    int    `json:"newid,omitempty" minimum:"0" maximum:"999999999" doc:"default: next free ID"`
	Hostname string `json:"hostname,omitempty" maxLength:"253" pattern:"^$|^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"`
	Full     bool   `json:"full,omitempty" doc:"full copy (default for a container that is not a template)"`
}

// TemplateBuild builds a container template on this node into a pool.
type TemplateBuild struct {
	Kind     string `json:"kind" enum:"busybox,debian" doc:"busybox: tiny static busybox system; debian: Debian 12 minbase (debootstrap)"`
	Filename string `json:"filename,omitempty" maxLength:"200" pattern:"^$|^[A-Za-z0-9][A-Za-z0-9._+-]*$" doc:"default <kind>-<release>-<arch>.tar.gz"`
	Mirror   string `json:"mirror,omitempty" maxLength:"512" doc:"debian: archive mirror (default: the node's apt mirror)"`
}

// AvailableTemplate is one image a simplestreams server offers.
type AvailableTemplate struct {
	Name     string `json:"name" doc:"images:<os>/<release>[/<variant>] name to download"`
	OS       string `json:"os"`
	Release  string `json:"release"`
	Arch     string `json:"arch"`
	Variant  string `json:"variant,omitempty"`
	Version  string `json:"version"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Filename string `json:"filename" doc:"the file name it gets in the pool"`
}

// TemplateDownload fetches a template into a pool: a simplestreams image
// (Name, e.g. "debian/12") or a plain URL.
type TemplateDownload struct {
	Name     string `json:"name,omitempty" maxLength:"128" doc:"simplestreams image, e.g. debian/12 or images:debian/12"`
	Server   string `json:"server,omitempty" maxLength:"2048" doc:"simplestreams server (default: the node's configured image server)"`
	URL      string `json:"url,omitempty" maxLength:"2048"`
	Filename string `json:"filename,omitempty" maxLength:"200" pattern:"^$|^[A-Za-z0-9][A-Za-z0-9._+-]*$"`
	SHA256   string `json:"sha256,omitempty" pattern:"^$|^[0-9a-fA-F]{64}$" doc:"required for URLs unless the server publishes one"`
}
