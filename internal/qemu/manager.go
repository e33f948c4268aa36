package qemu

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
	"github.com/corral-project/corral/internal/qemu/qmp"
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/store"
	"github.com/corral-project/corral/internal/task"
)

var defaultShutdown = api.VMShutdown{}

// Binary is the QEMU system emulator corral runs.
const Binary = "qemu-system-x86_64"

// Manager runs this node's VMs and keeps their configs.
type Manager struct {
	node   string
	runDir string
	log    *slog.Logger
	st     *store.Store
	recs   *vmRecords
	guests *guest.Registry
	stor   *storage.Service
	tasks  *task.Manager
	kvm    func(context.Context) bool
	net    NetPorts

	mu      sync.Mutex
	running map[int]*proc
	closing bool
}

type proc struct {
	mon     *qmp.Monitor
	pid     int
	started time.Time
	gone    chan struct{} // closed once the process is known to have exited
	cpuPrev [2]float64    // last (cpu seconds, wall seconds) sample for the CPU share
}

// Deps are what the VM driver builds on.
type Deps struct {
	Node    string
	RunDir  string
	Log     *slog.Logger
	Store   *store.Store
	Guests  *guest.Registry
	Storage *storage.Service
	Tasks   *task.Manager
	KVM     func(context.Context) bool
	Net     NetPorts // nil: VMs can't have NICs
}

// NetPorts is what the VM driver needs of the network layer
// (internal/network/stack): a tap per NIC, plugged before QEMU starts and
// removed when the VM stops.
type NetPorts interface {
	PlugVM(ctx context.Context, vmid, nic int, n api.VMNet) (string, error)
	PlugVMAll(ctx context.Context, vmid int, nets []api.VMNet) ([]string, error) // one firewall apply for all
	Unplug(ctx context.Context, vmid, nic int) error
	UnplugGuest(ctx context.Context, vmid int) error
	ReleaseGuest(ctx context.Context, vmid int) error // frees its IPAM addresses (the VM is gone)
	CheckNIC(bridge string, tag int) (field, problem string)
	SDNPath(bridge string) string // the ACL path guarding a bridge or vnet (guest.SDNPath)
	ExecPrefix() []string         // runs QEMU in the namespace the taps are in (tests); nil on a real node
}

// NewManager returns the VM driver of this node.
func NewManager(d Deps) (*Manager, error) {
	if err := os.MkdirAll(d.RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("qemu run dir: %w", err)
	}
	if len(d.RunDir) > 80 {
		return nil, fmt.Errorf("qemu run dir %s: too long for unix socket paths", d.RunDir)
	}
	m := &Manager{node: d.Node, runDir: d.RunDir, log: d.Log, st: d.Store, recs: guest.NewRecords[record]("VM", "vms", d.Node, d.Store, d.Guests, d.Log),
		guests: d.Guests, stor: d.Storage, tasks: d.Tasks, kvm: d.KVM, net: d.Net, running: map[int]*proc{}}
	d.Guests.AddMACs(m.macs)
	return m, nil
}

// macs reports every VM NIC's MAC, current and pending, cluster-wide (the
// guest core's duplicate check covers VMs and containers together).
func (m *Manager) macs(yield func(vmid int, kind, mac string)) {
	for _, o := range m.recs.Coll.List() {
		for _, c := range []*api.VMConfig{&o.Value.Config, o.Value.Pending} {
			if c == nil {
				continue
			}
			for _, n := range c.Nets {
				yield(o.Value.Config.VMID, "VM", n.MAC)
			}
		}
	}
}

func key(vmid int) string { return guest.Key(vmid) }

// status is this node's view of a VM's state.
func (m *Manager) status(vmid int) string {
	m.mu.Lock()
	p := m.running[vmid]
	m.mu.Unlock()
	if p == nil {
		return "stopped"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var st struct {
		Status  string `json:"status"`
		Running bool   `json:"running"`
	}
	if err := p.mon.Execute(ctx, "query-status", nil, &st); err != nil {
		return "unknown"
	}
	if st.Running {
		return "running"
	}
	if st.Status == "paused" || st.Status == "suspended" {
		return "paused"
	}
	return st.Status
}

func (m *Manager) toAPI(o store.Object[record]) api.VM {
	return api.VM{Config: o.Value.Config, Pending: o.Value.Pending, Lock: o.Value.Lock, Status: m.recs.Status(o, m.status), Digest: o.Digest}
}

// List returns every VM (node == "" for all nodes).
func (m *Manager) List(node string) []api.VM {
	return guest.ListAs(m.recs, node, m.toAPI)
}

// Get returns one VM.
func (m *Manager) Get(vmid int) (api.VM, error) { return guest.GetAs(m.recs, vmid, m.toAPI) }

// Owner returns the node a VM belongs to.
func (m *Manager) Owner(vmid int) (string, error) { return m.recs.Owner(vmid) }

// setIndex keeps the guest index (resource list, nextid) in step.
func (m *Manager) setIndex(ctx context.Context, c api.VMConfig, status string) {
	m.recs.SetIndex(ctx, metaOf(c), status)
}

// Create validates the request, reserves the ID with a "create" lock, and
// allocates disks in a task. A failure removes everything it made.
func (m *Manager) Create(ctx context.Context, in api.VMCreate, user string, auth guest.Authorizer) (int, string, error) {
	if in.Node != "" && in.Node != m.node {
		return 0, "", errs.Conflict("VMs are created by their node; send the request to %s", in.Node)
	}
	c := api.VMConfig{VMID: in.VMID, Name: in.Name, Node: m.node, Description: in.Description, Tags: in.Tags,
		Cores: in.Cores, Sockets: in.Sockets, CPU: in.CPU, Memory: in.Memory, Balloon: in.Balloon, Machine: in.Machine,
		VCPUs: in.VCPUs, MaxMemory: in.MaxMemory, Hotplug: in.Hotplug,
		BIOS: in.BIOS, Boot: in.Boot, Disks: slices.Clone(in.Disks), CDROMs: slices.Clone(in.CDROMs), Nets: slices.Clone(in.Nets),
		Serial: in.Serial == nil || *in.Serial, VGA: in.VGA, OnBoot: in.OnBoot, CloudInit: in.CloudInit, Protection: in.Protection, UUID: newUUID()}
	applyDefaults(&c, m.kvm(ctx))
	for i := range c.Nets {
		if c.Nets[i].MAC == "" {
			c.Nets[i].MAC = newMAC()
		}
	}
	if err := m.validate(ctx, &c, true, auth); err != nil {
		return 0, "", err
	}
	if c.VMID == 0 {
		id, err := m.guests.NextID(ctx, user)
		if err != nil {
			return 0, "", err
		}
		c.VMID = id.VMID
	} else if c.VMID < guest.MinID {
		return 0, "", errs.Invalid("vmid", "guest IDs start at %d", guest.MinID)
	}
	op1, err := m.recs.Coll.PutOp(key(c.VMID), record{Config: c, Lock: "create"}, 0)
	if err != nil {
		return 0, "", err
	}
	op2, _ := m.guests.Guests.PutOp(key(c.VMID), guest.Meta{VMID: c.VMID, Type: api.GuestVM, Node: m.node, Name: c.Name, Status: "stopped", Tags: strings.Join(c.Tags, ",")}, 0)
	if _, err := m.st.Apply(ctx, op1, op2); err != nil {
		if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) {
			return 0, "", errs.Conflict("guest ID %d is already in use", c.VMID)
		}
		return 0, "", err
	}
	upid, err := m.tasks.Start(ctx, "qmcreate", strconv.Itoa(c.VMID), user, func(tctx context.Context, l *task.Log) error {
		unlock := m.recs.Queue(c.VMID)
		defer unlock()
		if err := m.createDisks(tctx, &c, l); err != nil {
			m.removeRecord(c.VMID)
			return err
		}
		if _, err := m.recs.Coll.Update(tctx, key(c.VMID), "", func(r *record) error { r.Config, r.Lock = c, ""; return nil }); err != nil {
			return err
		}
		l.Printf("VM %d created", c.VMID)
		if in.Start {
			return m.doStart(tctx, c.VMID, l) // still under the VM's lock
		}
		return nil
	})
	if err != nil {
		m.removeRecord(c.VMID)
		return 0, "", err
	}
	return c.VMID, upid, nil
}

// createDisks allocates the new disks, freeing them all if one fails.
func (m *Manager) createDisks(ctx context.Context, c *api.VMConfig, l *task.Log) error {
	var made []string
	for i, d := range c.Disks {
		if d.Volume != "" {
			continue
		}
		size, _ := storage.ParseSize(d.Size)
		p, err := m.stor.Pool(ctx, d.Storage)
		if err != nil {
			m.stor.FreeVolumes(ctx, made, l.Printf)
			return fmt.Errorf("disk %d: %w", i, err)
		}
		unlock := m.stor.Lock(d.Storage)
		v, err := p.Alloc(ctx, storage.AllocRequest{VMID: c.VMID, Size: size, Format: d.Format, Content: api.ContentImages})
		unlock()
		if err != nil {
			m.stor.FreeVolumes(ctx, made, l.Printf)
			return fmt.Errorf("disk %d: allocate on %s: %w", i, d.Storage, err)
		}
		l.Printf("allocated %s (%d bytes, %s)", v.VolID, v.Size, v.Format)
		made = append(made, v.VolID)
		c.Disks[i].Volume, c.Disks[i].Storage, c.Disks[i].Size, c.Disks[i].Format = v.VolID, "", "", ""
	}
	return nil
}

func (m *Manager) removeRecord(vmid int) {
	if err := m.recs.Remove(vmid); err != nil {
		m.log.Error("removing VM record failed", "vmid", vmid, "err", err)
	}
	m.releaseNets(vmid)
}

// needsRestart lists the fields of u that a running VM can't take live.
func restartFields(u api.VMUpdate) bool {
	return u.CloudInit != nil || u.VCPUs != nil || u.MaxMemory != nil || u.Hotplug != nil || u.Cores != nil || u.Sockets != nil || u.CPU != nil || u.Memory != nil || u.Balloon != nil || u.Machine != nil ||
		u.BIOS != nil || u.Boot != nil || u.CDROMs != nil || u.Nets != nil || u.Serial != nil || u.VGA != nil
}

// Update changes a VM's config. On a running VM, changes that need a
// restart are kept as pending and applied at the next start.
func (m *Manager) Update(ctx context.Context, vmid int, ifMatch string, u api.VMUpdate, auth guest.Authorizer) (api.VM, error) {
	if u.Revert && (restartFields(u) || u.Name != nil || u.Description != nil || u.Tags != nil || u.OnBoot != nil || u.Protection != nil) {
		return api.VM{}, errs.Invalid("revert", "revert drops pending changes; send other changes separately")
	}
	defer m.recs.Queue(vmid)()
	o, err := m.recs.Get(vmid)
	if err != nil {
		return api.VM{}, err
	}
	if err := m.recs.CheckIdle(o); err != nil {
		return api.VM{}, err
	}
	if o.Value.Config.Node != m.node {
		return api.VM{}, m.recs.NotOwner(vmid, o.Value.Config.Node)
	}
	running := m.status(vmid) != "stopped"
	base := o.Value.Config
	if o.Value.Pending != nil {
		base = *o.Value.Pending
	}
	n := base
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	seti := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setb := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	set(&n.Name, u.Name)
	set(&n.Description, u.Description)
	if u.Tags != nil {
		n.Tags = *u.Tags
	}
	seti(&n.Cores, u.Cores)
	seti(&n.Sockets, u.Sockets)
	set(&n.CPU, u.CPU)
	seti(&n.Memory, u.Memory)
	seti(&n.VCPUs, u.VCPUs)
	seti(&n.MaxMemory, u.MaxMemory)
	if u.Hotplug != nil {
		n.Hotplug = *u.Hotplug
	}
	seti(&n.Balloon, u.Balloon)
	set(&n.Machine, u.Machine)
	set(&n.BIOS, u.BIOS)
	if u.Boot != nil {
		n.Boot = *u.Boot
	}
	if u.CDROMs != nil {
		n.CDROMs = *u.CDROMs
	}
	if u.Nets != nil {
		n.Nets = keepMACs(*u.Nets, n.Nets)
	}
	setb(&n.Serial, u.Serial)
	set(&n.VGA, u.VGA)
	setb(&n.OnBoot, u.OnBoot)
	if u.CloudInit != nil {
		n.CloudInit = u.CloudInit
		if u.CloudInit.User == "" && u.CloudInit.PasswordHash == "" && len(u.CloudInit.SSHKeys) == 0 && u.CloudInit.IP == "" && u.CloudInit.Gateway == "" && len(u.CloudInit.Nameserver) == 0 && u.CloudInit.SearchDomain == "" {
			n.CloudInit = nil
		}
	}
	setb(&n.Protection, u.Protection)
	if err := m.validate(ctx, &n, false, auth, &o.Value.Config, o.Value.Pending); err != nil {
		return api.VM{}, err
	}
	var live *api.VMConfig
	if running && !u.Revert && (restartFields(u) || o.Value.Pending != nil) {
		if ifMatch != "" && ifMatch != o.Digest {
			return api.VM{}, &errs.Error{Kind: errs.KindPrecondition, Msg: fmt.Sprintf("VM %d was changed by someone else; reload and retry", vmid)}
		}
		// What the running VM can take goes in now (CPU and memory
		// hotplug); it is recorded even if someone wrote meanwhile,
		// because the VM already runs with it.
		l, err := m.applyLive(ctx, vmid, o.Value.Config, n)
		if err != nil {
			return api.VM{}, err
		}
		live, ifMatch = &l, ""
	}
	updated, err := m.recs.Coll.Update(ctx, key(vmid), ifMatch, func(r *record) error {
		switch {
		case u.Revert:
			r.Pending = nil
		case live != nil:
			// Live-safe fields apply now; the rest wait for a restart.
			l := *live
			l.Name, l.Description, l.Tags, l.OnBoot, l.Protection = n.Name, n.Description, n.Tags, n.OnBoot, n.Protection
			r.Config, r.Pending = l, nil
			if !reflect.DeepEqual(l, n) {
				p := n
				r.Pending = &p
			}
		default:
			r.Config, r.Pending = n, nil
		}
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		return api.VM{}, &errs.Error{Kind: errs.KindPrecondition, Msg: fmt.Sprintf("VM %d was changed by someone else; reload and retry", vmid)}
	}
	if err != nil {
		return api.VM{}, err
	}
	// The index shows what runs, not what is pending (a new host name
	// appears with the restart that applies it).
	m.setIndex(ctx, updated.Value.Config, "")
	return m.Get(vmid)
}

// Delete removes a stopped, unprotected VM and frees its disks, as a task.
func (m *Manager) Delete(ctx context.Context, vmid int, user string, purge func(context.Context, int) error) (string, error) {
	o, err := m.recs.Prepare(vmid, guest.Want{Stopped: true, Unprotected: true}, m.status)
	if err != nil {
		return "", err
	}
	c := o.Value.Config
	return m.tasks.Start(ctx, "qmdestroy", strconv.Itoa(vmid), user, func(ctx context.Context, l *task.Log) error {
		defer m.recs.Queue(vmid)()
		if m.status(vmid) != "stopped" {
			return fmt.Errorf("VM %d was started meanwhile", vmid)
		}
		var vols []string
		for _, d := range c.Disks {
			// Another guest's volume attached here stays: destroying
			// this VM is no right over that guest.
			if d.Volume != "" && guest.Owns(vmid, d.Volume) {
				vols = append(vols, d.Volume)
			} else if d.Volume != "" {
				l.Printf("keeping %s: it belongs to another guest", d.Volume)
			}
		}
		if c.EFIVars != "" {
			vols = append(vols, c.EFIVars)
		}
		m.stor.FreeVolumes(ctx, vols, l.Printf)
		m.removeRecord(vmid)
		if purge != nil {
			if err := purge(ctx, vmid); err != nil {
				l.Printf("purge: %v", err)
			}
		}
		l.Printf("VM %d destroyed", vmid)
		return nil
	})
}

// vmPower is what a VM's power actions need of its state.
var vmPower = guest.Power{Kind: "VM", Running: []string{"stop", "shutdown", "reboot", "reset", "suspend"}, Paused: "paused"}

// Action runs a power action as a task.
func (m *Manager) Action(ctx context.Context, vmid int, action, user string, sd api.VMShutdown) (string, error) {
	o, err := m.recs.Local(vmid)
	if err != nil {
		return "", err
	}
	st := m.status(vmid)
	if err := vmPower.CheckPower(vmid, action, st, o.Value.Config.Template); err != nil {
		return "", err
	}
	typ := map[string]string{"start": "qmstart", "stop": "qmstop", "shutdown": "qmshutdown", "reboot": "qmreboot", "reset": "qmreset", "suspend": "qmsuspend", "resume": "qmresume"}[action]
	return m.tasks.Start(ctx, typ, strconv.Itoa(vmid), user, func(ctx context.Context, l *task.Log) error {
		defer m.recs.Queue(vmid)()
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
		case "reset":
			return m.qmp(ctx, vmid, "system_reset", l)
		case "suspend":
			return m.qmp(ctx, vmid, "stop", l)
		default:
			return m.qmp(ctx, vmid, "cont", l)
		}
	})
}

func (m *Manager) proc(vmid int) *proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running[vmid]
}

func (m *Manager) qmp(ctx context.Context, vmid int, cmd string, l *task.Log) error {
	p := m.proc(vmid)
	if p == nil {
		return fmt.Errorf("VM %d is not running", vmid)
	}
	if err := p.mon.Execute(ctx, cmd, nil, nil); err != nil {
		return err // qmp already names the command
	}
	l.Printf("%s sent", cmd)
	m.refreshIndex(vmid)
	return nil
}

// doStart applies pending changes and launches QEMU.
func (m *Manager) doStart(ctx context.Context, vmid int, l *task.Log) error {
	return m.start(ctx, vmid, l, "")
}

// start launches QEMU; loadvm names a snapshot with RAM to resume from.
func (m *Manager) start(ctx context.Context, vmid int, l *task.Log, loadvm string) error {
	if m.proc(vmid) != nil {
		return fmt.Errorf("VM %d is already running", vmid)
	}
	o, err := m.recs.Coll.Update(ctx, key(vmid), "", func(r *record) error {
		if r.Pending != nil {
			r.Config, r.Pending = *r.Pending, nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	c := o.Value.Config
	var r Resolved
	r.KVM = m.kvm(ctx)
	for i, d := range c.Disks {
		path, err := m.volumePath(ctx, d.Volume, api.ContentImages)
		if err != nil {
			return fmt.Errorf("disk %d: %w", i, err)
		}
		if !qemuValueSafe(path) {
			return fmt.Errorf("disk %d: path %q has characters QEMU options can't carry", i, path)
		}
		f := "raw"
		if strings.HasSuffix(path, ".qcow2") {
			f = "qcow2"
		}
		r.DiskPaths, r.DiskFmts = append(r.DiskPaths, path), append(r.DiskFmts, f)
	}
	for i, cd := range c.CDROMs {
		if cd.Volume == "none" {
			r.CDROMPaths = append(r.CDROMPaths, "")
			continue
		}
		path, err := m.volumePath(ctx, cd.Volume, api.ContentISO)
		if err != nil {
			return fmt.Errorf("cdrom %d: %w", i, err)
		}
		if !qemuValueSafe(path) {
			return fmt.Errorf("cdrom %d: path %q has characters QEMU options can't carry", i, path)
		}
		r.CDROMPaths = append(r.CDROMPaths, path)
	}
	if c.CloudInit != nil {
		seed, err := m.cloudInitSeed(ctx, c)
		if err != nil {
			return err
		}
		r.CDROMPaths = append(r.CDROMPaths, seed)
		l.Printf("cloud-init seed attached as cdrom%d", len(r.CDROMPaths)-1)
	}
	if c.BIOS == "ovmf" {
		if r.OVMFCode, r.OVMFVars, err = m.ovmf(ctx, &c, l); err != nil {
			return err
		}
	}
	if !r.KVM {
		l.Printf("WARNING: KVM is not usable on node %s; running under TCG software emulation (much slower)", m.node)
	}
	paths := pathsFor(m.runDir, vmid)
	for _, f := range []string{paths.PID, paths.QMP, paths.Serial, paths.VNC} {
		os.Remove(f)
	}
	if r.Taps, err = m.plugNets(ctx, c, l); err != nil {
		return err
	}
	args := BuildArgs(c, paths, r)
	if loadvm != "" {
		args = append(args, "-loadvm", loadvm)
	}
	l.Printf("starting QEMU: %s %s", Binary, strings.Join(args, " "))
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	argv := append(m.execPrefix(), Binary)
	cmd := exec.CommandContext(sctx, argv[0], append(argv[1:], args...)...)
	var stderr bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, &stderr
	// Its own session: QEMU must not get the daemon's signals, and with
	// -daemonize it is re-parented away so it outlives corral.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		m.unplugNets(vmid)
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("QEMU failed to start: %s", msg)
	}
	if err := m.attach(ctx, vmid, c.UUID); err != nil {
		return err
	}
	pid := m.proc(vmid).pid
	mem := c.Memory
	if slices.Contains(c.Hotplug, "memory") {
		mem = maxMemory(c)
	}
	lim := limitsFor(c.Cores*c.Sockets, mem)
	if err := placeInCgroup(vmid, pid, lim); err != nil {
		l.Printf("WARNING: VM %d runs without its own cgroup: %v", vmid, err)
	} else {
		l.Printf("cgroup: %d CPUs of time, memory limit %d MiB", lim.QuotaCPU, lim.MemMax>>20)
	}
	l.Printf("VM %d started (pid %d)", vmid, pid)
	return nil
}

// attach connects to a running VM's QMP socket and watches it.
func (m *Manager) attach(ctx context.Context, vmid int, uuid string) error {
	paths := pathsFor(m.runDir, vmid)
	b, err := os.ReadFile(paths.PID)
	if err != nil {
		return fmt.Errorf("VM %d: pidfile: %w", vmid, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("VM %d: bad pidfile", vmid)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(uuid)) {
		return fmt.Errorf("VM %d: process %d is not its QEMU", vmid, pid)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	mon, err := qmp.Dial(dctx, paths.QMP)
	if err != nil {
		return fmt.Errorf("VM %d: QMP: %w", vmid, err)
	}
	p := &proc{mon: mon, pid: pid, started: procStart(pid), gone: make(chan struct{})}
	m.mu.Lock()
	m.running[vmid] = p
	m.mu.Unlock()
	go m.watch(vmid, p)
	m.refreshIndex(vmid)
	return nil
}

// watch notices the end of a VM: QEMU closing its QMP socket means it
// exited (guest poweroff, crash, quit). Within a second the VM shows
// stopped and its runtime files are gone.
func (m *Manager) watch(vmid int, p *proc) {
	sub := p.mon.Subscribe("STOP", "RESUME")
	defer sub.Close()
	events := sub.C
loop:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			switch ev.Name {
			case "STOP", "RESUME":
				m.refreshIndex(vmid)
			}
		case <-p.mon.Done():
			break loop
		}
	}
	m.mu.Lock()
	closing := m.closing
	m.mu.Unlock()
	if closing {
		return // the daemon is going away; the VM stays, and so do its files
	}
	// The socket closed: wait briefly for the process to go.
	for i := 0; i < 50 && alive(p.pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if alive(p.pid) {
		// Not ours to clean up: QEMU lives on without a monitor we can
		// reach. Leave its files so the next start of the daemon finds it.
		m.log.Error("QMP connection lost but QEMU still runs", "vmid", vmid, "pid", p.pid)
		m.mu.Lock()
		if m.running[vmid] == p {
			delete(m.running, vmid)
		}
		m.mu.Unlock()
		close(p.gone)
		return
	}
	// The index first, then the running map: whoever sees "stopped" in
	// the status also finds it in the resource list.
	if o, err := m.recs.Coll.Get(key(vmid)); err == nil {
		ictx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m.setIndex(ictx, o.Value.Config, "stopped")
		cancel()
	}
	m.mu.Lock()
	if m.running[vmid] == p {
		delete(m.running, vmid)
	}
	m.mu.Unlock()
	paths := pathsFor(m.runDir, vmid)
	for _, f := range []string{paths.PID, paths.QMP, paths.Serial, paths.VNC} {
		os.Remove(f)
	}
	removeCgroup(vmid)
	m.unplugNets(vmid)
	close(p.gone)
	m.log.Info("VM stopped", "vmid", vmid)
}

func (m *Manager) refreshIndex(vmid int) {
	o, err := m.recs.Coll.Get(key(vmid))
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.setIndex(ctx, o.Value.Config, m.status(vmid))
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is dead for our purposes.
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

func (m *Manager) doStop(ctx context.Context, vmid int, l *task.Log) error {
	p := m.proc(vmid)
	if p == nil {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := p.mon.Quit(qctx) // a reply lost to QEMU's exit counts as done
	cancel()
	if err != nil {
		l.Printf("QMP quit failed (%v); killing pid %d", err, p.pid)
		syscall.Kill(p.pid, syscall.SIGKILL)
	}
	select {
	case <-p.gone:
	case <-time.After(15 * time.Second):
		syscall.Kill(p.pid, syscall.SIGKILL)
		<-p.gone
	}
	l.Printf("VM %d stopped", vmid)
	return nil
}

func (m *Manager) doShutdown(ctx context.Context, vmid int, sd api.VMShutdown, l *task.Log) error {
	p := m.proc(vmid)
	if p == nil {
		return nil
	}
	timeout := time.Duration(sd.Timeout) * time.Second
	if sd.Timeout == 0 {
		timeout = 60 * time.Second
	}
	if err := p.mon.Execute(ctx, "system_powerdown", nil, nil); err != nil {
		return err
	}
	l.Printf("ACPI power button pressed; waiting up to %s for the guest", timeout)
	select {
	case <-p.gone:
		l.Printf("guest powered off")
		return nil
	case <-time.After(timeout):
	case <-ctx.Done():
		return ctx.Err()
	}
	if sd.Force != nil && !*sd.Force {
		return fmt.Errorf("guest did not power off within %s", timeout)
	}
	l.Printf("guest did not power off within %s; stopping it", timeout)
	return m.doStop(ctx, vmid, l)
}

// Reconcile finds this node's VMs that kept running while the daemon was
// down and attaches to them; the rest are marked stopped.
func (m *Manager) Reconcile(ctx context.Context) {
	for _, o := range m.recs.Coll.List() {
		c := o.Value.Config
		if c.Node != m.node {
			continue
		}
		switch guest.RecoverLock(o.Value.Lock) {
		case guest.HalfMade:
			// The create task died with the daemon: nothing usable was made.
			m.log.Warn("removing VM left half-created by a crash", "vmid", c.VMID)
			m.removeRecord(c.VMID)
			continue
		case guest.Cleared:
			// Its task was interrupted (and is marked so); the operations
			// are written so that the config names what is on disk at
			// every step, so the VM is usable again.
			m.log.Warn("clearing the lock of an interrupted task", "vmid", c.VMID, "lock", o.Value.Lock)
			if err := m.recs.ClearLock(ctx, c.VMID); err != nil {
				m.log.Error("clearing lock failed", "vmid", c.VMID, "err", err)
			}
		}
		if err := m.attach(ctx, c.VMID, c.UUID); err != nil {
			m.setIndex(ctx, c, "stopped")
			m.unplugNets(c.VMID) // taps of a VM that died while the daemon was away
			continue
		}
		m.log.Info("found running VM", "vmid", c.VMID, "pid", m.proc(c.VMID).pid)
		m.replugNets(ctx, c) // finds its taps again (no duplicates) for the firewall
	}
}

// Close drops the QMP connections; the VMs keep running.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closing = true
	for _, p := range m.running {
		p.mon.Close()
	}
}

// SerialPath returns the serial console socket of a running VM.
func (m *Manager) SerialPath(vmid int) (string, error) {
	if _, err := m.recs.Get(vmid); err != nil {
		return "", err
	}
	if m.proc(vmid) == nil {
		return "", errs.Conflict("VM %d is not running", vmid)
	}
	o, _ := m.recs.Get(vmid)
	if !o.Value.Config.Serial && o.Value.Config.VGA != "serial0" {
		return "", errs.Conflict("VM %d has no serial port", vmid)
	}
	return pathsFor(m.runDir, vmid).Serial, nil
}

func procStart(pid int) time.Time {
	st, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	if err != nil {
		return time.Now()
	}
	return st.ModTime()
}

// Status reports a VM's runtime state from QMP and /proc.
func (m *Manager) Status(ctx context.Context, vmid int) (api.VMStatus, error) {
	o, err := m.recs.Get(vmid)
	if err != nil {
		return api.VMStatus{}, err
	}
	c := o.Value.Config
	st := api.VMStatus{VMID: vmid, Node: c.Node, MaxMem: uint64(c.Memory) << 20}
	if c.Node != m.node {
		return st, errs.Conflict("VM %d belongs to node %s; ask that node", vmid, c.Node)
	}
	st.Status = m.status(vmid)
	p := m.proc(vmid)
	if p == nil {
		return st, nil
	}
	var qs struct {
		Status string `json:"status"`
	}
	if err := p.mon.Execute(ctx, "query-status", nil, &qs); err == nil {
		st.QMPStatus = qs.Status
	}
	var kvm struct {
		Enabled bool `json:"enabled"`
	}
	st.Accel = "tcg"
	if err := p.mon.Execute(ctx, "query-kvm", nil, &kvm); err == nil && kvm.Enabled {
		st.Accel = "kvm"
	} else {
		st.Warning = "running under TCG software emulation: KVM is not usable on this node"
	}
	st.PID, st.Started = p.pid, p.started
	st.Uptime = int64(time.Since(p.started).Seconds())
	st.Mem = procRSS(p.pid)
	cpuSec := procCPU(p.pid)
	now := float64(time.Now().UnixNano()) / 1e9
	m.mu.Lock()
	prev := p.cpuPrev
	p.cpuPrev = [2]float64{cpuSec, now}
	m.mu.Unlock()
	if prev[1] > 0 && now > prev[1] {
		st.CPU = (cpuSec - prev[0]) / (now - prev[1]) / float64(c.Cores*c.Sockets)
	}
	return st, nil
}

func procRSS(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseUint(f[1], 10, 64)
	return n * uint64(os.Getpagesize())
}

// procCPU returns user+system CPU seconds of a process.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	stt, _ := strconv.ParseFloat(f[12], 64)
	return (ut + stt) / 100 // USER_HZ
}

var _ = filepath.Join
