package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
	"github.com/corral-project/corral/internal/qemu/qmp"
)

// VM IDs of the VM phase: one measured VM and the ones that only run to
// load the node. High IDs keep clear of the integration tests' per-VM
// cgroups (/sys/fs/cgroup/.../corral/qemu-<vmid>) on a shared machine.
const (
	benchVMID    = 9100
	fillVMIDBase = 9101
	vmMemoryMiB  = 64
)

// Targets from the VM issue.
const (
	targetStartOverhead = 50 * time.Millisecond
	targetMemPerVMB     = 1_000_000 // bytes ("1 MB")
)

// pollEvery is how often the bench asks whether a start has finished.
const pollEvery = 5 * time.Millisecond

// corralStart is one start through the API, each milestone measured from
// sending POST /vms/{id}/status/start.
type corralStart struct {
	post    time.Duration // the POST answered (task created)
	pidfile time.Duration // QEMU wrote its pidfile (it is running its init)
	qmpSock time.Duration // QEMU created its QMP socket
	running time.Duration // GET /vms/{id}/status first said running
	task    time.Duration // the task's end_time
}

// bareStart is one launch of the same command line by hand.
type bareStart struct {
	pidfile time.Duration
	qmpSock time.Duration
	exited  time.Duration // -daemonize: the parent exits once init is done
	running time.Duration // QMP query-status answered running
}

// virshStart is one `virsh create`.
type virshStart struct {
	create  time.Duration // virsh create returned
	running time.Duration // virsh domstate then said running
}

// levelResult is the node with some VMs running.
type levelResult struct {
	vms       int
	memLive   memInfo         // daemon that started them, median of three readings
	mem       memInfo         // the same after a daemon restart
	qemuRSS   int64           // KiB, median over the running QEMUs
	starts    []time.Duration // the measured VM, start to status running
	startRuns []corralStart
}

// vmResult is the VM phase.
type vmResult struct {
	kvm, qemu api.Capability
	cmdline   string
	corral    []corralStart
	bare      []bareStart
	virsh     []virshStart
	virshNoop []time.Duration // `virsh uri`: the client's own round trip
	virshSkip string
	libvirt   libvirtEnv
	levels    []levelResult
}

// vmBench holds what the VM phase's steps share.
type vmBench struct {
	l     *lab
	n     *node
	c     *client.Client
	watch *createWatch // the daemon's QEMU run dir

	bareArgs  []string
	bareDir   string
	bareWatch *createWatch

	domName, domXML string
}

func boolPtr(b bool) *bool { return &b }

// vmSpec is the VM every start measures: 64 MiB, no display, a serial
// port and a 64 MiB virtio disk with nothing on it, so it sits at
// SeaBIOS's "no bootable device" prompt, cheap to idle under TCG.
func vmSpec(vmid int) api.VMCreate {
	return api.VMCreate{VMID: vmid, Memory: vmMemoryMiB, VGA: "none", Serial: boolPtr(true),
		Disks: []api.VMDisk{{Bus: "virtio", Storage: "local", Size: "64M"}}}
}

// vmPhase runs the VM start benchmarks on a fresh daemon.
func (l *lab) vmPhase(ctx context.Context) (vmResult, error) {
	var r vmResult
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return r, errors.New("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
	}
	n, err := l.newNode("vms")
	if err != nil {
		return r, err
	}
	logf("vm: starting a fresh daemon")
	if _, err := n.start(ctx); err != nil {
		return r, err
	}
	defer n.stop()
	c, err := n.client()
	if err != nil {
		return r, err
	}
	defer c.Close()
	if _, err := c.Login(ctx, "admin@corral", l.password); err != nil {
		return r, err
	}
	ns, err := c.NodeStatus(ctx, nodeName)
	if err != nil {
		return r, err
	}
	r.kvm, r.qemu = ns.KVM, ns.QEMU
	logf("vm: KVM available=%v (%s); QEMU %s", r.kvm.Available, r.kvm.Detail, r.qemu.Version)

	b := &vmBench{l: l, n: n, c: c}
	ids := []int{benchVMID}
	for i := range slices.Max(l.cfg.vmLevels) {
		ids = append(ids, fillVMIDBase+i)
	}
	l.atClose(func() { removeCgroups(ids) })
	if err := b.createVM(ctx, benchVMID); err != nil {
		return r, err
	}
	if b.watch, err = watchCreates(n.qemuRunDir()); err != nil {
		return r, err
	}
	defer b.watch.close()

	// Warm-up start (not recorded): it pages QEMU and its firmware in,
	// and its task log has the command line for the bare launches.
	logf("vm: warm-up start through the API")
	_, upid, err := b.start(ctx, benchVMID)
	if err != nil {
		return r, err
	}
	if r.cmdline, err = b.commandLine(ctx, upid); err != nil {
		return r, err
	}
	if err := b.stop(ctx, benchVMID); err != nil {
		return r, err
	}
	if err := b.prepareBare(r.cmdline); err != nil {
		return r, err
	}
	defer b.bareWatch.close()
	if _, err := b.bareStart(ctx); err != nil {
		return r, fmt.Errorf("bare QEMU warm-up: %w", err)
	}

	r.libvirt, err = l.setupLibvirt(ctx)
	if err == nil {
		err = b.prepareVirsh(ctx)
	}
	if err == nil {
		for range 2 { // the first also refreshes libvirt's capability cache
			if _, err = b.virshStart(ctx); err != nil {
				break
			}
		}
	}
	if errors.Is(err, errSkip) {
		r.virshSkip = skipReason(err)
		logf("vm: virsh skipped: %s", r.virshSkip)
		err = nil
	} else if err != nil {
		return r, fmt.Errorf("virsh: %w", err)
	}

	// The three alternate, so drift on a noisy machine hits them alike.
	for i := range l.cfg.vmStarts {
		cs, _, err := b.start(ctx, benchVMID)
		if err != nil {
			return r, err
		}
		if err := b.stop(ctx, benchVMID); err != nil {
			return r, err
		}
		r.corral = append(r.corral, cs)
		bs, err := b.bareStart(ctx)
		if err != nil {
			return r, fmt.Errorf("bare QEMU: %w", err)
		}
		r.bare = append(r.bare, bs)
		line := fmt.Sprintf("vm: start %d/%d: corral %s (task end %s), bare QEMU %s", i+1, l.cfg.vmStarts, ms(cs.running), ms(cs.task), ms(bs.running))
		if r.virshSkip == "" {
			vs, err := b.virshStart(ctx)
			if err != nil {
				return r, fmt.Errorf("virsh: %w", err)
			}
			r.virsh = append(r.virsh, vs)
			d, err := virsh(ctx, "uri")
			if err != nil {
				return r, err
			}
			r.virshNoop = append(r.virshNoop, d)
			line += fmt.Sprintf(", virsh %s", ms(vs.running))
		}
		logf("%s", line)
	}

	if r.levels, err = b.scaling(ctx); err != nil {
		return r, fmt.Errorf("scaling: %w", err)
	}
	return r, n.stop()
}

// createVM creates a VM and waits for its create task.
func (b *vmBench) createVM(ctx context.Context, vmid int) error {
	cr, err := b.c.CreateVM(ctx, vmSpec(vmid))
	if err != nil {
		return err
	}
	_, err = b.waitTask(ctx, cr.Task, 60*time.Second)
	return err
}

// waitTask polls a task every pollEvery until it ends, and fails unless
// it ended OK.
func (b *vmBench) waitTask(ctx context.Context, upid string, within time.Duration) (api.Task, error) {
	deadline := time.Now().Add(within)
	for {
		t, err := b.c.Task(ctx, upid)
		if err != nil {
			return api.Task{}, err
		}
		if t.Status != api.TaskRunning {
			if t.Status != api.TaskOK {
				return *t, fmt.Errorf("task %s %s: %s%s", upid, t.Status, t.ExitMsg, b.taskLog(ctx, upid))
			}
			return *t, nil
		}
		if time.Now().After(deadline) {
			return *t, fmt.Errorf("task %s still running after %s%s", upid, within, b.taskLog(ctx, upid))
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return *t, err
		}
	}
}

// taskLog is a task's log for error messages.
func (b *vmBench) taskLog(ctx context.Context, upid string) string {
	lines, err := b.c.TaskLog(ctx, upid, 0, 0)
	if err != nil {
		return ""
	}
	var s strings.Builder
	for _, l := range lines {
		s.WriteString("\n  " + l.Text)
	}
	return s.String()
}

// start sends the start request and polls the VM's status every 5 ms
// until it says running, then follows the task to its end.
func (b *vmBench) start(ctx context.Context, vmid int) (corralStart, string, error) {
	var r corralStart
	b.watch.reset()
	t0 := time.Now()
	upid, err := b.c.StartVM(ctx, vmid)
	if err != nil {
		return r, "", err
	}
	r.post = time.Since(t0)
	for polls := 1; ; polls++ {
		st, err := b.c.VMStatus(ctx, vmid)
		if err != nil {
			return r, upid, err
		}
		if st.Status == "running" {
			r.running = time.Since(t0)
			break
		}
		// Now and then, make sure the start has not failed instead.
		if polls%20 == 0 {
			t, err := b.c.Task(ctx, upid)
			if err != nil {
				return r, upid, err
			}
			if t.Status != api.TaskRunning {
				return r, upid, fmt.Errorf("start of VM %d: task %s %s but the VM is %s: %s%s", vmid, upid, t.Status, st.Status, t.ExitMsg, b.taskLog(ctx, upid))
			}
		}
		if time.Since(t0) > time.Minute {
			return r, upid, fmt.Errorf("VM %d not running a minute after start%s", vmid, b.taskLog(ctx, upid))
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return r, upid, err
		}
	}
	t, err := b.waitTask(ctx, upid, time.Minute)
	if err != nil {
		return r, upid, err
	}
	if t.EndTime != nil {
		r.task = t.EndTime.Sub(t0) // same host clock; EndTime has no monotonic reading
	}
	if at, ok := b.watch.when(fmt.Sprintf("%d.pid", vmid)); ok {
		r.pidfile = at.Sub(t0)
	}
	if at, ok := b.watch.when(fmt.Sprintf("%d.qmp", vmid)); ok {
		r.qmpSock = at.Sub(t0)
	}
	return r, upid, nil
}

// stop stops a VM through the API and waits for the task.
func (b *vmBench) stop(ctx context.Context, vmid int) error {
	upid, err := b.c.StopVM(ctx, vmid)
	if err != nil {
		return err
	}
	_, err = b.waitTask(ctx, upid, time.Minute)
	return err
}

// commandLine returns the QEMU command line a start task logged.
func (b *vmBench) commandLine(ctx context.Context, upid string) (string, error) {
	lines, err := b.c.TaskLog(ctx, upid, 0, 0)
	if err != nil {
		return "", err
	}
	for _, l := range lines {
		if cmd, ok := strings.CutPrefix(l.Text, "starting QEMU: "); ok {
			return cmd, nil
		}
	}
	return "", fmt.Errorf("no \"starting QEMU:\" line in the log of %s", upid)
}

// prepareBare turns the logged command line into an argument list (corral's
// arguments contain no spaces) whose pidfile and sockets are in a temp dir
// of the bench's, and watches that dir.
func (b *vmBench) prepareBare(cmdline string) error {
	b.bareDir = filepath.Join(b.l.root, "bare")
	if err := os.Mkdir(b.bareDir, 0o700); err != nil {
		return err
	}
	b.l.watchQEMUDir(b.bareDir)
	prefix := filepath.Join(b.n.qemuRunDir(), fmt.Sprint(benchVMID)) + "."
	b.bareArgs = strings.Fields(cmdline)
	replaced := 0
	for i, a := range b.bareArgs {
		if strings.Contains(a, prefix) {
			b.bareArgs[i] = strings.ReplaceAll(a, prefix, filepath.Join(b.bareDir, "bare")+".")
			replaced++
		}
	}
	if replaced < 2 || !slices.Contains(b.bareArgs, "-daemonize") {
		return fmt.Errorf("unexpected QEMU command line (want -daemonize, a pidfile and a QMP socket in %s): %s", b.n.qemuRunDir(), cmdline)
	}
	var err error
	b.bareWatch, err = watchCreates(b.bareDir)
	return err
}

// bareStart launches the command line by hand, as corral does (argument
// list, own session, -daemonize), and times until QMP says running; then
// kills that QEMU.
func (b *vmBench) bareStart(ctx context.Context) (bareStart, error) {
	var r bareStart
	pidfile, qmpPath := filepath.Join(b.bareDir, "bare.pid"), filepath.Join(b.bareDir, "bare.qmp")
	for _, f := range []string{pidfile, qmpPath, filepath.Join(b.bareDir, "bare.serial"), filepath.Join(b.bareDir, "bare.vnc")} {
		os.Remove(f)
	}
	b.bareWatch.reset()
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, b.bareArgs[0], b.bareArgs[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		return r, fmt.Errorf("%s: %w: %s", b.bareArgs[0], err, strings.TrimSpace(out.String()))
	}
	r.exited = time.Since(t0)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	mon, err := qmp.Dial(dctx, qmpPath)
	if err != nil {
		return r, err
	}
	st, err := mon.Status(dctx)
	mon.Close()
	if err != nil {
		return r, err
	}
	if !st.Running {
		return r, fmt.Errorf("bare QEMU: status %q, not running", st.Status)
	}
	r.running = time.Since(t0)
	if at, ok := b.bareWatch.when("bare.pid"); ok {
		r.pidfile = at.Sub(t0)
	}
	if at, ok := b.bareWatch.when("bare.qmp"); ok {
		r.qmpSock = at.Sub(t0)
	}
	if len(killQEMUs(b.bareDir)) != 1 {
		return r, errors.New("bare QEMU: no live process behind its pidfile")
	}
	return r, nil
}

// prepareVirsh copies the VM's disk where libvirt's QEMU user can read
// it and writes the domain XML.
func (b *vmBench) prepareVirsh(ctx context.Context) error {
	disk := ""
	for i, a := range b.bareArgs {
		if a == "-drive" && i+1 < len(b.bareArgs) {
			for _, kv := range strings.Split(b.bareArgs[i+1], ",") {
				if f, ok := strings.CutPrefix(kv, "file="); ok {
					disk = f
				}
			}
		}
	}
	if disk == "" {
		return errors.New("no disk in the QEMU command line")
	}
	// libvirt runs QEMU as libvirt-qemu: it must reach the copy.
	if err := os.Chmod(b.l.root, 0o711); err != nil {
		return err
	}
	dir := filepath.Join(b.l.root, "libvirt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	cp := filepath.Join(dir, "disk.qcow2")
	if _, err := runCmd(ctx, "cp", disk, cp); err != nil {
		return err
	}
	emulator, _ := exec.LookPath(b.bareArgs[0])
	b.domName = fmt.Sprintf("corral-bench-%d", os.Getpid())
	b.domXML = filepath.Join(dir, "domain.xml")
	if err := os.WriteFile(b.domXML, []byte(libvirtDomainXML(b.domName, emulator, cp)), 0o644); err != nil {
		return err
	}
	name := b.domName
	b.l.atClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if _, err := virshOut(ctx, "domstate", name); err == nil {
			undo("virsh", "-c", libvirtURI, "destroy", name)
		}
	})
	return nil
}

// virshStart creates the transient domain, times until virsh create
// returns and until virsh domstate says running, then destroys it.
func (b *vmBench) virshStart(ctx context.Context) (virshStart, error) {
	var r virshStart
	t0 := time.Now()
	if _, err := virsh(ctx, "create", b.domXML); err != nil {
		return r, err
	}
	r.create = time.Since(t0)
	for {
		st, err := virshOut(ctx, "domstate", b.domName)
		if err != nil {
			return r, err
		}
		if st == "running" {
			r.running = time.Since(t0)
			break
		}
		if time.Since(t0) > time.Minute {
			return r, fmt.Errorf("domain %s is %q a minute after create", b.domName, st)
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return r, err
		}
	}
	_, err := virsh(ctx, "destroy", b.domName)
	return r, err
}

// scaling starts more and more VMs and, at each level, reads the daemon's
// memory and times starts of the measured VM.
func (b *vmBench) scaling(ctx context.Context) ([]levelResult, error) {
	levels := b.l.cfg.vmLevels
	most := slices.Max(levels)
	logf("vm: creating %d more VMs", most)
	for i := range most {
		if err := b.createVM(ctx, fillVMIDBase+i); err != nil {
			return nil, err
		}
	}
	defer func() {
		if ctx.Err() == nil { // after Ctrl-C, lab.close kills them faster
			b.stopFill(most)
		}
	}()
	var out []levelResult
	running := 0
	for _, lvl := range levels {
		for ; running < lvl; running++ {
			upid, err := b.c.StartVM(ctx, fillVMIDBase+running)
			if err != nil {
				return out, err
			}
			if _, err := b.waitTask(ctx, upid, time.Minute); err != nil {
				return out, err
			}
		}
		res := levelResult{vms: lvl}
		var err error
		if res.memLive, err = b.settledMem(ctx); err != nil {
			return out, err
		}
		// Restart the daemon: it re-attaches to the running VMs (as after
		// an upgrade) and frees its start-up garbage, so the reading below
		// holds what the VMs cost rather than when Go last collected.
		logf("vm: %d VMs running (daemon VmRSS %.1f MB, anon %.1f MB); restarting the daemon", lvl, mb1(res.memLive.RSS), mb1(res.memLive.Anon))
		if err := b.n.stop(); err != nil {
			return out, err
		}
		if _, err := b.n.start(ctx); err != nil {
			return out, err
		}
		b.c.Close() // drop the connection to the old process
		if err := b.checkRunning(ctx, lvl); err != nil {
			return out, err
		}
		if res.mem, err = b.settledMem(ctx); err != nil {
			return out, err
		}
		res.qemuRSS = qemuRSS(b.n.qemuRunDir())
		// One unrecorded start after the restart, as after the warm-up.
		if _, _, err := b.start(ctx, benchVMID); err != nil {
			return out, err
		}
		if err := b.stop(ctx, benchVMID); err != nil {
			return out, err
		}
		for range b.l.cfg.levelStarts {
			cs, _, err := b.start(ctx, benchVMID)
			if err != nil {
				return out, err
			}
			if err := b.stop(ctx, benchVMID); err != nil {
				return out, err
			}
			res.starts = append(res.starts, cs.running)
			res.startRuns = append(res.startRuns, cs)
		}
		logf("vm: %d running: restarted daemon VmRSS %.1f MB (anon %.1f MB); start %s (median of %d)",
			lvl, mb1(res.mem.RSS), mb1(res.mem.Anon), ms(median(res.starts)), len(res.starts))
		out = append(out, res)
	}
	return out, nil
}

// settledMem waits cfg.settle, then reads the daemon's memory three times
// 0.5 s apart and keeps the median reading.
func (b *vmBench) settledMem(ctx context.Context) (memInfo, error) {
	if err := sleep(ctx, b.l.cfg.settle); err != nil {
		return memInfo{}, err
	}
	var mems []memInfo
	for i := range 3 {
		if i > 0 {
			if err := sleep(ctx, 500*time.Millisecond); err != nil {
				return memInfo{}, err
			}
		}
		m, err := b.n.mem()
		if err != nil {
			return memInfo{}, err
		}
		mems = append(mems, m)
	}
	slices.SortFunc(mems, func(a, b memInfo) int { return int(a.RSS - b.RSS) })
	return mems[1], nil
}

// checkRunning makes sure the restarted daemon found exactly the load VMs
// running: one it failed to re-attach would shrink the level silently.
func (b *vmBench) checkRunning(ctx context.Context, want int) error {
	vms, err := b.c.VMs(ctx, nodeName)
	if err != nil {
		return err
	}
	got := 0
	for _, vm := range vms {
		if vm.Status == "running" {
			got++
		}
	}
	if got != want {
		return fmt.Errorf("after the restart the daemon reports %d VMs running, want %d", got, want)
	}
	return nil
}

// stopFill stops the load VMs through the API, a few at a time; lab.close
// kills whatever this leaves.
func (b *vmBench) stopFill(count int) {
	logf("vm: stopping the %d load VMs", count)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for id := range ids {
				if st, err := b.c.VMStatus(ctx, id); err != nil || st.Status == "stopped" {
					continue
				}
				if err := b.stop(ctx, id); err != nil {
					logf("vm: stop %d: %v", id, err)
				}
			}
		})
	}
	for i := range count {
		ids <- fillVMIDBase + i
	}
	close(ids)
	wg.Wait()
}

// qemuRSS is the median VmRSS (KiB) of the QEMU processes in a run dir.
func qemuRSS(dir string) int64 {
	files, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	var rss []int64
	for _, f := range files {
		if pid, ok := qemuFromPidfile(f); ok {
			if m, err := readMem(pid); err == nil {
				rss = append(rss, m.RSS)
			}
		}
	}
	return median(rss)
}
