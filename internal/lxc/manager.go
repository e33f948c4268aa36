package lxc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
	"github.com/corral-project/corral/internal/guest"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/store"
	"github.com/corral-project/corral/internal/task"
)

// Manager runs this node's containers and keeps their configs.
type Manager struct {
	node    string
	lxcPath string // corral's own lxcpath: <lxcPath>/<vmid>/config
	cgTag   string // per-daemon cgroup directory, so two daemons on one host never collide
	idmap   IDMap
	log     *slog.Logger
	st      *store.Store
	recs    *ctRecords
	guests  *guest.Registry
	stor    *storage.Service
	tasks   *task.Manager
	// imageServer is the default simplestreams server.
	imageServer string
	net         NetPorts // nil: LXC's own veths, no network layer

	mu       sync.Mutex
	watched  map[int]bool // running containers the poller watches
	stopPoll context.CancelFunc
	cpuPrev  map[int][2]float64
	closing  bool

	execMu   sync.Mutex
	sessions map[string]execSession
}

// Deps are what the container driver builds on.
type Deps struct {
	Node    string
	LXCPath string
	Log     *slog.Logger
	Store   *store.Store
	Guests  *guest.Registry
	Storage *storage.Service
	Tasks   *task.Manager
	// ImageServer is the default simplestreams server for templates.
	ImageServer string
	// Net is the node's network layer; nil: NICs are plain LXC veths on
	// a bridge, without VLAN tags, rate limits or firewall.
	Net NetPorts
}

// NetPorts is what the container driver needs of the network layer
// (internal/network/stack): a veth pair per NIC made before the container
// starts, whose guest end LXC moves in, removed when the container stops.
type NetPorts interface {
	CheckNIC(bridge string, tag int) (field, problem string)
	SDNPath(bridge string) string // the ACL path guarding a bridge or vnet (guest.SDNPath)
	PlugCT(ctx context.Context, vmid, nic int, n api.CTNet) (guestEnd string, err error)
	PlugCTAll(ctx context.Context, vmid int, nets []api.CTNet) (guestEnds []string, err error) // one firewall apply for all
	UnplugGuest(ctx context.Context, vmid int) error
	ReleaseGuest(ctx context.Context, vmid int) error // frees its IPAM addresses (the container is gone)
}

// NewManager returns the container driver of this node.
func NewManager(d Deps) (*Manager, error) {
	if err := os.MkdirAll(d.LXCPath, 0o700); err != nil {
		return nil, fmt.Errorf("lxc path: %w", err)
	}
	if os.Geteuid() == 0 {
		if err := ensureSubIDs(DefaultIDMap); err != nil {
			d.Log.Warn("unprivileged containers may fail to start", "err", err)
		}
	}
	if d.ImageServer == "" {
		d.ImageServer = DefaultImageServer
	}
	m := &Manager{imageServer: d.ImageServer, node: d.Node, lxcPath: d.LXCPath, cgTag: cgroupTag(d.LXCPath), idmap: DefaultIDMap, log: d.Log, st: d.Store,
		recs: guest.NewRecords[record]("container", "containers", d.Node, d.Store, d.Guests, d.Log), guests: d.Guests, stor: d.Storage, tasks: d.Tasks, net: d.Net,
		watched: map[int]bool{}, cpuPrev: map[int][2]float64{}, sessions: map[string]execSession{}}
	d.Guests.AddMACs(m.macs)
	return m, nil
}

func key(vmid int) string { return guest.Key(vmid) }

func (m *Manager) name(vmid int) string    { return strconv.Itoa(vmid) }
func (m *Manager) ctDir(vmid int) string   { return filepath.Join(m.lxcPath, m.name(vmid)) }
func (m *Manager) logFile(vmid int) string { return filepath.Join(m.ctDir(vmid), "lxc.log") }

// tool runs one of the LXC tools on a container of corral's lxcpath, as
// an argument list with a timeout, and returns its combined output.
func (m *Manager) tool(ctx context.Context, timeout time.Duration, bin string, vmid int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-P", m.lxcPath, "-n", m.name(vmid)}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		if s == "" {
			s = err.Error()
		}
		return s, fmt.Errorf("%s: %s", bin, s)
	}
	return s, nil
}

// state asks LXC for a container's state: running, stopped or frozen.
func (m *Manager) state(vmid int) string {
	if _, err := os.Stat(filepath.Join(m.ctDir(vmid), "config")); err != nil {
		return "stopped"
	}
	// LXC removes a container's cgroup when it stops: without one there is
	// nothing to ask lxc-info (which costs an exec) about.
	if gone, known := m.cgroupGone(vmid); known && gone {
		return "stopped"
	}
	out, err := m.tool(context.Background(), 5*time.Second, "lxc-info", vmid, "-s", "-H")
	if err != nil {
		return "unknown"
	}
	switch strings.TrimSpace(out) {
	case "RUNNING", "STARTING", "STOPPING", "THAWED":
		return "running"
	case "FROZEN", "FREEZING":
		return "frozen"
	case "STOPPED", "ABORTING":
		return "stopped"
	}
	return "unknown"
}

// initPID returns the host PID of a running container's init, 0 if none.
func (m *Manager) initPID(vmid int) int {
	out, err := m.tool(context.Background(), 5*time.Second, "lxc-info", vmid, "-p", "-H")
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(out))
	return pid
}

func (m *Manager) toAPI(o store.Object[record]) api.CT {
	return api.CT{Config: o.Value.Config, Pending: o.Value.Pending, Lock: o.Value.Lock, Status: m.recs.Status(o, m.state), Digest: o.Digest}
}

// List returns every container (node == "" for all nodes).
func (m *Manager) List(node string) []api.CT {
	return guest.ListAs(m.recs, node, m.toAPI)
}

// Get returns one container.
func (m *Manager) Get(vmid int) (api.CT, error) { return guest.GetAs(m.recs, vmid, m.toAPI) }

// setIndex keeps the guest index in step.
func (m *Manager) setIndex(ctx context.Context, c api.CTConfig, status string) {
	m.recs.SetIndex(ctx, metaOf(c), status)
}

func (m *Manager) refreshIndex(vmid int) {
	o, err := m.recs.Coll.Get(key(vmid))
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.setIndex(ctx, o.Value.Config, m.state(vmid))
}

// CreateOptions are the caller's rights that decide what a create may do.
type CreateOptions struct {
	User  string
	Admin bool             // may bind-mount host paths
	Auth  guest.Authorizer // the caller's privileges, for other guests' volumes and bridges
}

// Create validates the request, reserves the ID with a "create" lock and
// unpacks the template in a task. A failure removes every volume it made
// and the record.
func (m *Manager) Create(ctx context.Context, in api.CTCreate, o CreateOptions) (int, string, error) {
	if in.Node != "" && in.Node != m.node {
		return 0, "", errs.Conflict("containers are created by their node; send the request to %s", in.Node)
	}
	c := api.CTConfig{VMID: in.VMID, Hostname: in.Hostname, Node: m.node, Description: in.Description, Tags: in.Tags,
		Cores: in.Cores, CPULimit: in.CPULimit, CPUUnits: in.CPUUnits, Memory: in.Memory, Swap: 512, RootFS: in.RootFS,
		Mountpoints: slices.Clone(in.Mountpoints), Nets: slices.Clone(in.Nets), Nameserver: in.Nameserver, SearchDomain: in.SearchDomain,
		Unprivileged: in.Unprivileged == nil || *in.Unprivileged, Features: in.Features, OnBoot: in.OnBoot, Startup: in.Startup,
		Protection: in.Protection, Console: in.Console == nil || *in.Console, Arch: "amd64"}
	if in.Swap != nil {
		c.Swap = *in.Swap
	}
	if c.RootFS.Volume != "" {
		return 0, "", errs.Invalid("rootfs.volume", "a new container gets a new root filesystem; give storage (and size)")
	}
	tmpl, err := m.volumePath(ctx, in.OSTemplate, api.ContentVZTmpl)
	if err != nil {
		return 0, "", errs.Invalid("ostemplate", "%v", err)
	}
	if !strings.Contains(in.OSTemplate, ":vztmpl/") {
		return 0, "", errs.Invalid("ostemplate", "%s is not a container template (want <storage>:vztmpl/<file>)", in.OSTemplate)
	}
	for i, k := range in.SSHPublicKeys {
		f := strings.Fields(k)
		if len(f) < 2 || !(strings.HasPrefix(f[0], "ssh-") || strings.HasPrefix(f[0], "ecdsa-") || strings.HasPrefix(f[0], "sk-")) || strings.ContainsAny(k, "\n\r") {
			return 0, "", errs.Invalid(fmt.Sprintf("ssh_public_keys[%d]", i), "not an OpenSSH public key line")
		}
	}
	if c.VMID != 0 && c.VMID < guest.MinID {
		return 0, "", errs.Invalid("vmid", "guest IDs start at %d", guest.MinID)
	}
	hostDefault := c.Hostname == ""
	applyDefaults(&c)
	if err := m.validate(ctx, &c, true, o.Admin, o.Auth); err != nil {
		return 0, "", err
	}
	if c.VMID == 0 {
		id, err := m.guests.NextID(ctx, o.User)
		if err != nil {
			return 0, "", err
		}
		c.VMID = id.VMID
		if hostDefault {
			c.Hostname = fmt.Sprintf("ct%d", c.VMID)
		}
	}
	op1, err := m.recs.Coll.PutOp(key(c.VMID), record{Config: c, Lock: "create"}, 0)
	if err != nil {
		return 0, "", err
	}
	op2, _ := m.guests.Guests.PutOp(key(c.VMID), guest.Meta{VMID: c.VMID, Type: api.GuestContainer, Node: m.node, Name: c.Hostname, Status: "stopped", Tags: strings.Join(c.Tags, ",")}, 0)
	if _, err := m.st.Apply(ctx, op1, op2); err != nil {
		if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) {
			return 0, "", errs.Conflict("guest ID %d is already in use", c.VMID)
		}
		return 0, "", err
	}
	secrets := setupSecrets{Password: in.Password, SSHKeys: in.SSHPublicKeys}
	upid, err := m.tasks.Start(ctx, "vzcreate", strconv.Itoa(c.VMID), o.User, func(tctx context.Context, l *task.Log) error {
		unlock := m.recs.Queue(c.VMID)
		defer unlock()
		var made []string
		fail := func(err error) error {
			m.stor.FreeVolumes(context.Background(), made, l.Printf)
			os.RemoveAll(m.ctDir(c.VMID))
			m.removeRecord(c.VMID)
			return err
		}
		if err := m.allocVolumes(tctx, &c, &made, l); err != nil {
			return fail(err)
		}
		rootfs, err := m.volumePath(tctx, c.RootFS.Volume, api.ContentRootdir)
		if err != nil {
			return fail(err)
		}
		l.Printf("unpacking %s", in.OSTemplate)
		t0 := time.Now()
		if err := m.unpack(tctx, tmpl, rootfs, c.Unprivileged); err != nil {
			return fail(err)
		}
		l.Printf("unpacked in %s", time.Since(t0).Round(time.Millisecond))
		c.OSType, c.Arch = detectOS(rootfs)
		l.Printf("OS type %s, arch %s", c.OSType, c.Arch)
		if err := m.setupOS(tctx, c, rootfs, &secrets); err != nil {
			return fail(fmt.Errorf("OS setup: %w", err))
		}
		if _, err := m.recs.Coll.Update(tctx, key(c.VMID), "", func(r *record) error { r.Config, r.Lock = c, ""; return nil }); err != nil {
			return fail(err)
		}
		l.Printf("container %d created", c.VMID)
		if in.Start {
			return m.doStart(tctx, c.VMID, l)
		}
		return nil
	})
	if err != nil {
		m.removeRecord(c.VMID)
		return 0, "", err
	}
	return c.VMID, upid, nil
}

// allocVolumes allocates the root filesystem and new mount point volumes,
// recording each in made so a failure can free them.
func (m *Manager) allocVolumes(ctx context.Context, c *api.CTConfig, made *[]string, l *task.Log) error {
	alloc := func(what, pool, size string) (string, error) {
		sz, _ := storage.ParseSize(size)
		p, err := m.stor.Pool(ctx, pool)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		unlock := m.stor.Lock(pool)
		v, err := p.Alloc(ctx, storage.AllocRequest{VMID: c.VMID, Size: sz, Format: api.FormatSubvol, Content: api.ContentRootdir})
		unlock()
		if err != nil {
			return "", fmt.Errorf("%s: allocate on %s: %w", what, pool, err)
		}
		*made = append(*made, v.VolID)
		l.Printf("allocated %s for %s", v.VolID, what)
		return v.VolID, nil
	}
	v, err := alloc("rootfs", c.RootFS.Storage, c.RootFS.Size)
	if err != nil {
		return err
	}
	c.RootFS.Volume, c.RootFS.Storage = v, ""
	for i, mp := range c.Mountpoints {
		if mp.Storage == "" {
			continue
		}
		v, err := alloc(fmt.Sprintf("mountpoint %s", mp.MP), mp.Storage, mp.Size)
		if err != nil {
			return err
		}
		c.Mountpoints[i].Volume, c.Mountpoints[i].Storage = v, ""
		path, err := m.volumePath(ctx, v, api.ContentRootdir)
		if err != nil {
			return err
		}
		if c.Unprivileged {
			uid := m.idmap.Host(0)
			if err := os.Chown(path, uid, uid); err != nil {
				return fmt.Errorf("mountpoint %s: %w", mp.MP, err)
			}
		}
	}
	return nil
}

func (m *Manager) removeRecord(vmid int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if m.net != nil {
		if err := m.net.ReleaseGuest(ctx, vmid); err != nil {
			m.log.Warn("releasing a container's addresses failed", "vmid", vmid, "err", err)
		}
	}
	if err := m.recs.Remove(vmid); err != nil {
		m.log.Error("removing container record failed", "vmid", vmid, "err", err)
	}
}

// restartFields reports whether u holds changes a running container can
// only take at its next start (limits apply live).
func restartFields(u api.CTUpdate) bool {
	return u.Hostname != nil || u.Cores != nil || u.Mountpoints != nil || u.Nets != nil || u.Nameserver != nil ||
		u.SearchDomain != nil || u.Features != nil || u.Console != nil
}

func setp[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Update changes a container's config. On a running container, memory,
// swap and CPU limits apply at once through its cgroup; changes that need
// a restart are kept as pending.
func (m *Manager) Update(ctx context.Context, vmid int, ifMatch string, u api.CTUpdate, admin bool, auth guest.Authorizer) (api.CT, error) {
	defer m.recs.Queue(vmid)()
	o, err := m.recs.Get(vmid)
	if err != nil {
		return api.CT{}, err
	}
	if err := m.recs.CheckIdle(o); err != nil {
		return api.CT{}, err
	}
	if o.Value.Config.Node != m.node {
		return api.CT{}, m.recs.NotOwner(vmid, o.Value.Config.Node)
	}
	running := m.state(vmid) != "stopped"
	base := o.Value.Config
	if o.Value.Pending != nil {
		base = *o.Value.Pending
	}
	n := base
	setp(&n.Hostname, u.Hostname)
	setp(&n.Description, u.Description)
	setp(&n.Tags, u.Tags)
	setp(&n.Cores, u.Cores)
	setp(&n.CPULimit, u.CPULimit)
	setp(&n.CPUUnits, u.CPUUnits)
	setp(&n.Memory, u.Memory)
	setp(&n.Swap, u.Swap)
	setp(&n.Mountpoints, u.Mountpoints)
	setp(&n.Nets, u.Nets)
	setp(&n.Nameserver, u.Nameserver)
	setp(&n.SearchDomain, u.SearchDomain)
	setp(&n.Features, u.Features)
	setp(&n.OnBoot, u.OnBoot)
	setp(&n.Startup, u.Startup)
	setp(&n.Protection, u.Protection)
	setp(&n.Console, u.Console)
	for i := range n.Nets {
		if n.Nets[i].HWAddr == "" {
			n.Nets[i].HWAddr = newMAC()
		}
		n.Nets[i].HWAddr = strings.ToUpper(n.Nets[i].HWAddr)
	}
	if err := m.validate(ctx, &n, false, admin, auth, &o.Value.Config, o.Value.Pending); err != nil {
		return api.CT{}, err
	}
	if running && !u.Revert && (u.Memory != nil || u.Swap != nil || u.CPULimit != nil || u.CPUUnits != nil) {
		if err := m.applyLimits(ctx, vmid, n); err != nil {
			return api.CT{}, err
		}
	}
	liveNets := running && !u.Revert && u.Nets != nil && m.net != nil && netsLive(o.Value.Config.Nets, n.Nets)
	if liveNets {
		if ifMatch != "" && ifMatch != o.Digest {
			return api.CT{}, &errs.Error{Kind: errs.KindPrecondition, Msg: fmt.Sprintf("container %d was changed by someone else; reload and retry", vmid)}
		}
		if err := m.applyNetsLive(ctx, vmid, n.Nets); err != nil {
			return api.CT{}, err
		}
		ifMatch = "" // the ports already run with it: record it
	}
	updated, err := m.recs.Coll.Update(ctx, key(vmid), ifMatch, func(r *record) error {
		switch {
		case u.Revert:
			r.Pending = nil
		case running && (restartFields(u) || r.Pending != nil):
			live := r.Config
			live.Description, live.Tags, live.OnBoot, live.Startup, live.Protection = n.Description, n.Tags, n.OnBoot, n.Startup, n.Protection
			live.Memory, live.Swap, live.CPULimit, live.CPUUnits = n.Memory, n.Swap, n.CPULimit, n.CPUUnits
			if liveNets {
				live.Nets = n.Nets
			}
			r.Config, r.Pending = live, nil
			if !reflect.DeepEqual(live, n) {
				p := n
				r.Pending = &p
			}
		default:
			r.Config, r.Pending = n, nil
		}
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		return api.CT{}, &errs.Error{Kind: errs.KindPrecondition, Msg: fmt.Sprintf("container %d was changed by someone else; reload and retry", vmid)}
	}
	if err != nil {
		return api.CT{}, err
	}
	// The index shows what runs, not what is pending (a new host name
	// appears with the restart that applies it).
	m.setIndex(ctx, updated.Value.Config, "")
	return m.Get(vmid)
}

// volumesOf lists the volumes a container owns (rootfs and volume mount
// points named after it), which destroy frees.
func volumesOf(c api.CTConfig) []string {
	var vols []string
	if c.RootFS.Volume != "" {
		vols = append(vols, c.RootFS.Volume)
	}
	for _, mp := range c.Mountpoints {
		if mp.Volume != "" {
			if guest.Owns(c.VMID, mp.Volume) {
				vols = append(vols, mp.Volume)
			}
		}
	}
	return vols
}

// Delete removes a stopped, unprotected container and frees its volumes.
func (m *Manager) Delete(ctx context.Context, vmid int, user string, purge func(context.Context, int) error) (string, error) {
	if _, err := m.recs.Prepare(vmid, guest.Want{Stopped: true, Unprotected: true}, m.state); err != nil {
		return "", err
	}
	return m.tasks.Start(ctx, "vzdestroy", strconv.Itoa(vmid), user, func(ctx context.Context, l *task.Log) error {
		defer m.recs.Queue(vmid)()
		if m.state(vmid) != "stopped" {
			return fmt.Errorf("container %d was started meanwhile", vmid)
		}
		o, err := m.recs.Get(vmid)
		if err != nil {
			return err
		}
		m.deleteSnapshots(ctx, o.Value, l)
		m.stor.FreeVolumes(ctx, volumesOf(o.Value.Config), l.Printf)
		os.RemoveAll(m.ctDir(vmid))
		m.removeRecord(vmid)
		if purge != nil {
			if err := purge(ctx, vmid); err != nil {
				l.Printf("purge: %v", err)
			}
		}
		l.Printf("container %d destroyed", vmid)
		return nil
	})
}

// ctPower is what a container's power actions need of its state.
var ctPower = guest.Power{Kind: "container", Running: []string{"stop", "shutdown", "reboot", "suspend"}, Paused: "frozen"}

// Action runs a power action as a task.
func (m *Manager) Action(ctx context.Context, vmid int, action, user string, sd api.CTShutdown) (string, error) {
	o, err := m.recs.Local(vmid)
	if err != nil {
		return "", err
	}
	st := m.state(vmid)
	if err := ctPower.CheckPower(vmid, action, st, o.Value.Config.Template); err != nil {
		return "", err
	}
	return m.tasks.Start(ctx, "vz"+action, strconv.Itoa(vmid), user, func(ctx context.Context, l *task.Log) error {
		defer m.recs.Queue(vmid)()
		var err error
		switch action {
		case "start":
			return m.doStart(ctx, vmid, l)
		case "stop":
			return m.doStop(ctx, vmid, l)
		case "shutdown":
			return m.doShutdown(ctx, vmid, sd, l)
		case "reboot":
			if err := m.doShutdown(ctx, vmid, sd, l); err != nil {
				return err
			}
			return m.doStart(ctx, vmid, l)
		case "suspend":
			_, err = m.tool(ctx, 30*time.Second, "lxc-freeze", vmid)
		default:
			_, err = m.tool(ctx, 30*time.Second, "lxc-unfreeze", vmid)
		}
		m.refreshIndex(vmid)
		if err == nil {
			l.Printf("container %d %s", vmid, map[string]string{"suspend": "frozen", "resume": "thawed"}[action])
		}
		return err
	})
}

// doStart applies pending changes, prepares the root filesystem and the
// LXC config, and starts the container daemonized in its own session.
func (m *Manager) doStart(ctx context.Context, vmid int, l *task.Log) error {
	if m.state(vmid) != "stopped" {
		return fmt.Errorf("container %d is already running", vmid)
	}
	o, err := m.recs.Get(vmid)
	if err == nil && o.Value.Pending != nil {
		// Only a pending change costs a store write at start.
		o, err = m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error {
			if r.Pending != nil {
				r.Config, r.Pending = *r.Pending, nil
			}
			return nil
		})
	}
	if err != nil {
		return err
	}
	c := o.Value.Config
	rootfs, err := m.volumePath(ctx, c.RootFS.Volume, api.ContentRootdir)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	var mps []string
	for i, mp := range c.Mountpoints {
		src := mp.HostPath
		if mp.Volume != "" {
			if src, err = m.volumePath(ctx, mp.Volume, api.ContentRootdir); err != nil {
				return fmt.Errorf("mountpoints[%d]: %w", i, err)
			}
		}
		mps = append(mps, src)
	}
	if c.Unprivileged {
		// The container's root is an unprivileged host user: it must be able
		// to reach its root filesystem through corral's 0700 directories.
		for _, p := range append([]string{rootfs}, mps...) {
			if err := grantTraverse(p, m.idmap.Host(0)); err != nil {
				return err
			}
		}
	}
	if err := m.setupOS(ctx, c, rootfs, nil); err != nil {
		return fmt.Errorf("OS setup: %w", err)
	}
	m.mu.Lock()
	stale := m.watched[vmid] // stopped from inside, and the poller hasn't cleaned up yet
	m.mu.Unlock()
	if stale {
		m.unplugNets(vmid)
	}
	ends, err := m.plugNets(ctx, c, l)
	if err != nil {
		return err
	}
	conf, err := m.buildConfig(c, rootfs, mps, ends)
	if err != nil {
		m.unplugNets(vmid)
		return err
	}
	dir := m.ctDir(vmid)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(conf), 0o600); err != nil {
		return fmt.Errorf("write LXC config: %w", err)
	}
	if c.Unprivileged {
		// LXC's setup in the user namespace looks into the container's dir.
		if err := grantTraverse(filepath.Join(dir, "config"), m.idmap.Host(0)); err != nil {
			return err
		}
	}
	os.Remove(m.logFile(vmid))
	t0 := time.Now()
	if _, err := m.tool(ctx, 60*time.Second, "lxc-start", vmid, "-d", "-o", m.logFile(vmid), "-l", "WARN"); err != nil {
		m.unplugNets(vmid)
		return fmt.Errorf("container %d failed to start: %s", vmid, m.startError(vmid))
	}
	l.Printf("container %d started in %s", vmid, time.Since(t0).Round(time.Millisecond))
	// lxc-start -d returns once the container runs: no need to ask LXC.
	m.setIndex(ctx, c, "running")
	m.watch(vmid)
	return nil
}

// startError is what the task reports when lxc-start fails: LXC's own
// ERROR lines say why (permission, a missing bridge, a bad mount).
func (m *Manager) startError(vmid int) string {
	b, _ := os.ReadFile(m.logFile(vmid))
	var msgs []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.Contains(line, " ERROR ") {
			continue
		}
		if i := strings.Index(line, " - "); i >= 0 {
			line = line[i+3:]
			if j := strings.Index(line, " - "); j >= 0 {
				line = line[j+3:]
			}
		}
		if !slices.Contains(msgs, line) && len(msgs) < 4 {
			msgs = append(msgs, line)
		}
	}
	if len(msgs) == 0 {
		return "no error logged by LXC (" + m.logFile(vmid) + ")"
	}
	return strings.Join(msgs, "; ")
}

// watch notices when a running container stops (its init exits, or
// someone stops it) and updates the guest index then. One poller checks
// every watched container once a second by its cgroup directory, which
// LXC removes when the container stops: no process per container, no
// exec per check.
func (m *Manager) watch(vmid int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return
	}
	m.watched[vmid] = true
	if m.stopPoll == nil {
		ctx, cancel := context.WithCancel(context.Background())
		m.stopPoll = cancel
		go m.poll(ctx)
	}
}

// cgroupGone reports whether a container's cgroup is gone (it stopped);
// known is false where the host has no freezer hierarchy to tell.
func (m *Manager) cgroupGone(vmid int) (gone, known bool) {
	if !cgroupV2() {
		if _, err := os.Stat(filepath.Join(cgroupRoot, "freezer", "tasks")); err != nil {
			return false, false
		}
	}
	_, err := os.Stat(m.cgroupFile(vmid, "freezer", ""))
	return errors.Is(err, os.ErrNotExist), true
}

func (m *Manager) poll(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		ids := make([]int, 0, len(m.watched))
		for vmid := range m.watched {
			ids = append(ids, vmid)
		}
		m.mu.Unlock()
		var gone []int
		for _, vmid := range ids {
			stopped, known := m.cgroupGone(vmid)
			if !known {
				stopped = m.state(vmid) == "stopped" // no freezer hierarchy to look at: ask LXC
			}
			if stopped {
				gone = append(gone, vmid)
			}
		}
		m.mu.Lock()
		for _, vmid := range gone {
			if stopped, known := m.cgroupGone(vmid); known && !stopped {
				continue // started again meanwhile: keep watching
			}
			delete(m.watched, vmid)
			delete(m.cpuPrev, vmid)
		}
		m.mu.Unlock()
		for _, vmid := range gone {
			m.unplugNets(vmid)
			m.refreshIndex(vmid)
			m.log.Info("container stopped", "vmid", vmid)
		}
	}
}

func (m *Manager) doStop(ctx context.Context, vmid int, l *task.Log) error {
	if _, err := m.tool(ctx, 60*time.Second, "lxc-stop", vmid, "-k"); err != nil && m.state(vmid) != "stopped" {
		return err
	}
	m.unplugNets(vmid)
	m.refreshIndex(vmid)
	l.Printf("container %d stopped", vmid)
	return nil
}

func (m *Manager) doShutdown(ctx context.Context, vmid int, sd api.CTShutdown, l *task.Log) error {
	timeout := sd.Timeout
	if timeout == 0 {
		timeout = 60
	}
	args := []string{"-t", strconv.Itoa(timeout)}
	force := sd.Force == nil || *sd.Force
	if !force {
		args = append(args, "--nokill")
	}
	l.Printf("asking init to power off; waiting up to %d s", timeout)
	_, err := m.tool(ctx, time.Duration(timeout+30)*time.Second, "lxc-stop", vmid, args...)
	if m.state(vmid) != "stopped" {
		if err == nil {
			err = fmt.Errorf("container %d did not power off within %d s", vmid, timeout)
		}
		return err
	}
	m.unplugNets(vmid)
	m.refreshIndex(vmid)
	l.Printf("container %d is down", vmid)
	return nil
}

// Reconcile finds this node's containers that kept running while the
// daemon was down and watches them again; half-created ones are removed.
func (m *Manager) Reconcile(ctx context.Context) {
	for _, o := range m.recs.Coll.List() {
		c := o.Value.Config
		if c.Node != m.node {
			continue
		}
		switch guest.RecoverLock(o.Value.Lock) {
		case guest.Cleared:
			// Its task was interrupted (and is marked so): the container is usable.
			m.log.Warn("clearing the lock of an interrupted task", "vmid", c.VMID, "lock", o.Value.Lock)
			if err := m.recs.ClearLock(ctx, c.VMID); err != nil {
				m.log.Error("clearing lock failed", "vmid", c.VMID, "err", err)
			}
		case guest.HalfMade:
			m.log.Warn("removing container left half-made by a crash", "vmid", c.VMID, "lock", o.Value.Lock)
			var vols []string
			for _, p := range m.stor.List() {
				if !slices.Contains(p.Content, api.ContentRootdir) {
					continue
				}
				if pool, err := m.stor.Pool(ctx, p.Storage); err == nil {
					if vs, err := pool.List(ctx, api.ContentRootdir, c.VMID); err == nil {
						for _, v := range vs {
							vols = append(vols, v.VolID)
						}
					}
				}
			}
			m.stor.FreeVolumes(ctx, vols, func(f string, a ...any) { m.log.Info(fmt.Sprintf(f, a...), "vmid", c.VMID) })
			os.RemoveAll(m.ctDir(c.VMID))
			m.removeRecord(c.VMID)
			continue
		}
		st := m.state(c.VMID)
		m.setIndex(ctx, c, st)
		if st != "stopped" {
			m.log.Info("found running container", "vmid", c.VMID, "pid", m.initPID(c.VMID))
			m.replugNets(ctx, c) // finds its ports again (no duplicates) for the firewall
			m.watch(c.VMID)
		} else {
			m.unplugNets(c.VMID) // ports of a container that stopped while the daemon was away
		}
	}
}

// Close stops watching; the containers keep running.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closing = true
	if m.stopPoll != nil {
		m.stopPoll()
	}
}

// Owner returns the node a container belongs to.
func (m *Manager) Owner(vmid int) (string, error) { return m.recs.Owner(vmid) }
