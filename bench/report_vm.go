package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/corral-project/corral/api"
)

// ---- storage ----

// uploadRatio is the API's median throughput over cp's.
func (s *storageResult) uploadRatio() float64 {
	up, cp := median(s.upload), median(s.cp)
	if up <= 0 {
		return 0
	}
	return float64(cp) / float64(up)
}

func (r *report) storageSection(b *strings.Builder) {
	s := r.storage
	r.heading(b, "Storage: upload throughput and linked clones")
	fmt.Fprintf(b, "### Upload vs `cp`\n\n")
	fmt.Fprintf(b, "The source is a %s file of random data (ChaCha8, incompressible) in the bench's temp dir, on the same "+
		"file system (%s) as the daemon's data dir. It was read once before the runs, so both sides read it from the page cache: "+
		"dropping caches is not reliably possible here, and warming is the fair alternative.\n\n", mib(s.uploadBytes), s.fsType)
	fmt.Fprintf(b, "- **cp**: `cp SRC DST` then `sync DST`, both timed. `sync` with a file argument is fsync(2) of that one file, "+
		"which is what the upload does to its temporary file before linking it into place (`sync -f` would flush the whole file system, "+
		"other tenants' data included). DST is in the pool's `template/iso/` folder, where the upload lands.\n")
	fmt.Fprintf(b, "- **API**: `POST /api/v1/nodes/%s/storage/local/upload?content=iso&filename=bench-upload.iso` with the file as the "+
		"raw request body (Go client `Upload`: Content-Length set, HTTP/2 over TLS on loopback), timed until the response. "+
		"The server writes the stream to a hidden file, fsyncs it, then links it into place (it hashes only when a `sha256` is given; none is here).\n", nodeName)
	fmt.Fprintf(b, "- **HTTPS anchor**: the same request (raw body, Content-Length, `Expect: 100-continue`, HTTP/2 over TLS) to a minimal "+
		"`net/http` server in the bench process that copies the body into a file in the same folder with a 1 MiB buffer, as the "+
		"pool's import does, and fsyncs it: an upload with nothing of corral's behind it.\n")
	fmt.Fprintf(b, "- The three alternate, %d runs each; each result is deleted before the next run.\n\n", len(s.upload))
	fmt.Fprintf(b, "| Method | Median | MB/s at the median | Each run, MB/s | ÷ cp |\n|---|---:|---:|---|---:|\n")
	cp := median(s.cp)
	fmt.Fprintf(b, "| `cp` + `sync DST` | %s | %.0f | %s | |\n", msShort(cp), mbps(s.uploadBytes, cp), rateList(s.uploadBytes, s.cp))
	if len(s.anchor) > 0 {
		a := median(s.anchor)
		fmt.Fprintf(b, "| HTTPS anchor (minimal Go server, copy + fsync) | %s | %.0f | %s | %.0f %% |\n", msShort(a), mbps(s.uploadBytes, a),
			rateList(s.uploadBytes, s.anchor), 100*float64(cp)/float64(a))
	}
	fmt.Fprintf(b, "| API upload | %s | %.0f | %s | **%.0f %%** |\n\n", msShort(median(s.upload)), mbps(s.uploadBytes, median(s.upload)),
		rateList(s.uploadBytes, s.upload), 100*s.uploadRatio())
	fmt.Fprintf(b, "Target: the upload reaches ≥ %.0f %% of cp's throughput: **%s**.", 100*targetUploadRatio, metOrMissed(s.uploadRatio() >= targetUploadRatio))
	if len(s.anchor) > 0 {
		fmt.Fprintf(b, " The API moves %.0f %% of what the HTTPS anchor moves (which runs in the bench process, next to the client), "+
			"so what remains is the transport's cost, not corral's: `cp` copies inside the kernel "+
			"(`copy_file_range`), while an upload passes every byte through user space, TLS encryption and decryption and HTTP/2 "+
			"framing, with client and server sharing these %d CPUs. How much shows depends on the disk: the fsync of 1 GiB "+
			"dominates when it is slow, the CPU path when it is fast, and this disk's speed drifts from run to run (see cp's spread). "+
			"For reference, SHA-256 (done only when a checksum is requested) runs at %.0f MB/s on this CPU.",
			100*float64(median(s.anchor))/float64(median(s.upload)), r.machine.cpus, s.sha256MBps)
	}
	fmt.Fprintf(b, "\n\n")

	fmt.Fprintf(b, "### Linked clone of a 10 GiB template\n\n")
	fmt.Fprintf(b, "Each pool holds a %s base volume (`base-%d-disk-0` qcow2 on the daemon's `local` dir pool, `base-%d-disk-0` raw on btrfs) "+
		"with %s written into it (`qemu-io -c 'write 0 %s'`). Through the API: `POST /api/v1/nodes/%s/storage/{pool}/clone "+
		"{source, vmid, linked: true}`, timed until the response. The volume is usable when the call returns; each clone was then "+
		"checked (not timed) and freed: on dir `qemu-img info` reports the base as its backing file and a 10 GiB virtual size, "+
		"on btrfs the clone's `disk.raw` is 10 GiB and starts with the base's data. By hand is the one command an administrator would run. "+
		"The two alternate, %d runs each.\n\n",
		"10 GiB", dirBaseVMID, btrfsBaseVMID, "64 MiB", cloneWrite, nodeName, len(s.dirAPI))
	fmt.Fprintf(b, "| Pool | Method | Median | min–max | ÷ by hand | < 1 s |\n|---|---|---:|---:|---:|:---:|\n")
	fmt.Fprintf(b, "| dir (qcow2) | API clone | %s | %s | %.1f× | %s |\n", ms(median(s.dirAPI)), durRange(s.dirAPI),
		float64(median(s.dirAPI))/float64(median(s.dirHand)), yesNo(median(s.dirAPI) < targetCloneTime))
	fmt.Fprintf(b, "| dir (qcow2) | `qemu-img create -f qcow2 -b BASE -F qcow2 DST` by hand | %s | %s | | |\n", ms(median(s.dirHand)), durRange(s.dirHand))
	if s.btrfsSkip != "" {
		fmt.Fprintf(b, "| btrfs (raw) | not measured | | | | |\n\n")
		fmt.Fprintf(b, "The btrfs series was skipped: %s.\n\n", s.btrfsSkip)
	} else {
		fmt.Fprintf(b, "| btrfs (raw) | API clone | %s | %s | %.1f× | %s |\n", ms(median(s.btrfsAPI)), durRange(s.btrfsAPI),
			float64(median(s.btrfsAPI))/float64(median(s.btrfsHd)), yesNo(median(s.btrfsAPI) < targetCloneTime))
		fmt.Fprintf(b, "| btrfs (raw) | `btrfs subvolume snapshot BASE DST` by hand | %s | %s | | |\n\n", ms(median(s.btrfsHd)), durRange(s.btrfsHd))
		fmt.Fprintf(b, "The btrfs pool is a %d GiB sparse image file in the temp dir, formatted with `mkfs.btrfs` (%s), on a loop device, "+
			"defined through `POST /api/v1/storage {type: btrfs}`; unmounted and released afterwards.\n\n", btrfsImageSize>>30, orUnknown(s.btrfsVersion))
	}
	fmt.Fprintf(b, "**Where the dir clone's time goes.** The handler (`internal/storage/dir`, `Pool.Clone`) runs five `qemu-img` processes "+
		"where the anchor runs one: `info` on the source, `create` of a fresh 10 GiB qcow2 (the allocation), `info` on it, `create -b` "+
		"over it, and `info` on the result. One `qemu-img info` of the base, timed by hand, takes %s (median of %d), so process starts "+
		"account for nearly all of the API's time.\n\n", ms(median(s.dirInfo)), len(s.dirInfo))
}

// rateList is each run's throughput in MB/s.
func rateList(bytes int64, ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.0f", mbps(bytes, d))
	}
	return strings.Join(parts, ", ")
}

func durRange(ds []time.Duration) string {
	if len(ds) == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f–%.1f ms", float64(slices.Min(ds))/1e6, float64(slices.Max(ds))/1e6)
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// ---- VMs ----

func kvmLine(k api.Capability) string {
	if k.Available {
		return "KVM available"
	}
	why := k.Detail
	if why == "" {
		why = "no detail given"
	}
	return fmt.Sprintf("**KVM not usable** here (corral's probe: %s), so every VM runs under TCG software emulation", strings.TrimSuffix(why, "; guests will run under TCG"))
}

func (v *vmResult) corralMedian() time.Duration {
	return median(pick(v.corral, func(s corralStart) time.Duration { return s.running }))
}

func (v *vmResult) bareMedian() time.Duration {
	return median(pick(v.bare, func(s bareStart) time.Duration { return s.running }))
}

func (v *vmResult) virshMedian() time.Duration {
	return median(pick(v.virsh, func(s virshStart) time.Duration { return s.running }))
}

// overhead is what corral adds to the bare launch, medians.
func (v *vmResult) overhead() time.Duration { return v.corralMedian() - v.bareMedian() }

// memPerVM is the daemon's RSS growth per running VM (KiB) between no VMs
// and the most VMs measured.
func (v *vmResult) memPerVM() (int64, int, bool) {
	if len(v.levels) < 2 || v.levels[0].vms != 0 {
		return 0, 0, false
	}
	first, last := v.levels[0], v.levels[len(v.levels)-1]
	return (last.mem.RSS - first.mem.RSS) / int64(last.vms), last.vms, true
}

func pick[T any](xs []T, f func(T) time.Duration) []time.Duration {
	out := make([]time.Duration, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// milestone is the median of one field, or a dash when it was never seen.
func milestone[T any](xs []T, f func(T) time.Duration) string {
	ds := pick(xs, f)
	ds = slices.DeleteFunc(ds, func(d time.Duration) bool { return d <= 0 })
	if len(ds) == 0 {
		return "—"
	}
	return ms(median(ds))
}

func (r *report) vmSection(b *strings.Builder) {
	v := r.vms
	r.heading(b, "VM start")
	fmt.Fprintf(b, "%s. QEMU %s. The VM: %d MiB, 1 vCPU, q35, SeaBIOS, no display, a serial port, one empty 64 MiB qcow2 "+
		"virtio disk and no network (`POST /api/v1/vms {memory: 64, vga: none, serial: true, disks: [{bus: virtio, storage: local, size: 64M}]}`), "+
		"so it sits at SeaBIOS's \"no bootable device\" prompt.\n\n", kvmLine(v.kvm), orUnknown(v.qemu.Version), vmMemoryMiB)
	fmt.Fprintf(b, "Three ways to start it, alternating, %d runs each after an unrecorded warm-up of each:\n\n", len(v.corral))
	fmt.Fprintf(b, "- **corral API**: from sending `POST /api/v1/vms/%d/status/start` until `GET /api/v1/vms/%d/status` (polled every %s) "+
		"says running; the start task's `end_time` (it ends after QMP is attached and the VM put in its cgroup) is read from the task "+
		"record afterwards. Then `POST .../status/stop` (not timed).\n", benchVMID, benchVMID, pollEvery)
	fmt.Fprintf(b, "- **bare QEMU**: the command line from the start task's log (`starting QEMU: ...`), split on spaces, with its pidfile and "+
		"sockets moved to a temp dir, exec'd the way corral does (argument list, own session, `-daemonize`) and timed until its QMP "+
		"socket answers `query-status` with running (handshake included). Then SIGKILL.\n")
	if v.virshSkip != "" {
		fmt.Fprintf(b, "- **virsh**: not measured: %s.\n\n", v.virshSkip)
	} else {
		fmt.Fprintf(b, "- **virsh**: `virsh -c %s create domain.xml` with a transient domain of type `qemu` (TCG) equivalent to the VM "+
			"(same machine type, CPU model, memory, TCG translation cache, virtio disk on a copy of the same qcow2 with the same cache "+
			"and AIO modes, virtio RNG, serial port on a pty, no network, no display, no USB, no balloon), timed until `virsh domstate` "+
			"says running. Then `virsh destroy` (not timed). %s%s.\n\n", libvirtURI, libvirtStarted(v.libvirt), kvmNote(v.libvirt))
	}
	fmt.Fprintf(b, "| Method | Median to running | min–max | ÷ bare QEMU |\n|---|---:|---:|---:|\n")
	bare := v.bareMedian()
	row := func(name string, ds []time.Duration) {
		fmt.Fprintf(b, "| %s | %s | %s | %.2f× |\n", name, ms(median(ds)), durRange(ds), float64(median(ds))/float64(bare))
	}
	row("corral API: POST start → GET status says running", pick(v.corral, func(s corralStart) time.Duration { return s.running }))
	row("corral API: POST start → start task ended", pick(v.corral, func(s corralStart) time.Duration { return s.task }))
	row("bare QEMU: exec → QMP says running", pick(v.bare, func(s bareStart) time.Duration { return s.running }))
	if v.virshSkip == "" {
		row("virsh create → domstate says running", pick(v.virsh, func(s virshStart) time.Duration { return s.running }))
		row("virsh create returned", pick(v.virsh, func(s virshStart) time.Duration { return s.create }))
		row("`virsh uri` alone (the client's exec and connection)", v.virshNoop)
	}
	over := v.overhead()
	fmt.Fprintf(b, "\nTargets: corral adds **%+.1f ms** to the bare launch (≤ %s: **%s**)", float64(over)/1e6, msShort(targetStartOverhead), metOrMissed(over <= targetStartOverhead))
	if v.virshSkip == "" {
		fmt.Fprintf(b, " and takes %.2f× virsh's time (beats virsh: **%s**)", float64(v.corralMedian())/float64(v.virshMedian()), metOrMissed(v.corralMedian() < v.virshMedian()))
	}
	fmt.Fprintf(b, ".\n\n")

	fmt.Fprintf(b, "**Where a start's time goes.** Milestones, medians in ms from the start request (corral) or the exec (bare). "+
		"File creations in the run directories are seen through inotify, which costs the launch nothing.\n\n")
	fmt.Fprintf(b, "| Milestone | corral API | bare QEMU |\n|---|---:|---:|\n")
	fmt.Fprintf(b, "| POST answered (task record created) | %s | — |\n", milestone(v.corral, func(s corralStart) time.Duration { return s.post }))
	fmt.Fprintf(b, "| QEMU wrote its pidfile (exec'd, options parsed, daemonized) | %s | %s |\n",
		milestone(v.corral, func(s corralStart) time.Duration { return s.pidfile }), milestone(v.bare, func(s bareStart) time.Duration { return s.pidfile }))
	fmt.Fprintf(b, "| QEMU created its QMP socket | %s | %s |\n",
		milestone(v.corral, func(s corralStart) time.Duration { return s.qmpSock }), milestone(v.bare, func(s bareStart) time.Duration { return s.qmpSock }))
	fmt.Fprintf(b, "| The launching process returned (`-daemonize`: QEMU's init is done) | — | %s |\n", milestone(v.bare, func(s bareStart) time.Duration { return s.exited }))
	fmt.Fprintf(b, "| Running (corral: GET status; bare: QMP query-status) | %s | %s |\n",
		milestone(v.corral, func(s corralStart) time.Duration { return s.running }), milestone(v.bare, func(s bareStart) time.Duration { return s.running }))
	fmt.Fprintf(b, "| Start task ended | %s | — |\n\n", milestone(v.corral, func(s corralStart) time.Duration { return s.task }))
	cPid := median(pick(v.corral, func(s corralStart) time.Duration { return s.pidfile }))
	bPid := median(pick(v.bare, func(s bareStart) time.Duration { return s.pidfile }))
	if cPid > 0 && bPid > 0 {
		before := cPid - bPid
		fmt.Fprintf(b, "Of corral's %+.1f ms, **%.1f ms** come before QEMU runs (the request, the task, the config update, resolving "+
			"volume paths: the pidfile appears that much later than in the bare launch) and **%.1f ms** after QEMU's init "+
			"(waiting for the daemonizing parent, attaching QMP, the guest index update, the bench's 5 ms status polling).\n\n",
			float64(over)/1e6, float64(before)/1e6, float64(over-before)/1e6)
	}
	fmt.Fprintf(b, "The command line corral ran (VM %d), which the bare launch repeats with other runtime paths:\n\n```\n%s\n```\n\n", benchVMID, v.cmdline)

	if len(v.levels) > 0 {
		fmt.Fprintf(b, "### With more VMs running\n\n")
		fmt.Fprintf(b, "%d more VMs of the same kind are created, then started one by one through the API until each level's number runs. "+
			"At each level the daemon's memory is read (after %s of rest, three readings 0.5 s apart, the median kept; `/proc/<pid>/status`), "+
			"then the daemon is restarted and read again the same way: it re-attaches to the running VMs (QMP connection and watcher, as after "+
			"an upgrade) and frees its start-up garbage, so the second reading holds what the VMs cost, where the first mostly shows when Go "+
			"last collected garbage (the heap of a Go program is collected when it has doubled, or every two minutes). "+
			"The per-VM columns are (level − none) ÷ level on the restarted readings. Then the measured VM is started and stopped once "+
			"(unrecorded) and %d times timed, start to status running as above. MB = 10⁶ bytes.\n\n", slices.Max(r.cfg.vmLevels), r.cfg.settle, r.cfg.levelStarts)
		fmt.Fprintf(b, "| VMs running | daemon VmRSS as it ran | restarted: VmRSS | RssAnon | VmRSS per VM | RssAnon per VM | QEMU VmRSS (median per VM) | start median | min–max |\n")
		fmt.Fprintf(b, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		base := v.levels[0]
		for _, lv := range v.levels {
			perRSS, perAnon := "", ""
			if lv.vms > 0 && base.vms == 0 {
				perRSS = kb((lv.mem.RSS - base.mem.RSS) / int64(lv.vms))
				perAnon = kb((lv.mem.Anon - base.mem.Anon) / int64(lv.vms))
			}
			qrss := ""
			if lv.qemuRSS > 0 {
				qrss = mb(lv.qemuRSS * 1024)
			}
			fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", lv.vms, mb(lv.memLive.RSS*1024), mb(lv.mem.RSS*1024), mb(lv.mem.Anon*1024),
				perRSS, perAnon, qrss, ms(median(lv.starts)), durRange(lv.starts))
		}
		if per, n, ok := v.memPerVM(); ok {
			fmt.Fprintf(b, "\nTarget: < 1 MB of daemon memory per running VM: %s of VmRSS per VM with %d running, **%s**. "+
				"Single readings still move by a few hundred kB either way; the slope over %d VMs is what counts.\n\n", kb(per), n, metOrMissed(per*1024 < targetMemPerVMB), n)
		}
	}
}

func libvirtStarted(e libvirtEnv) string {
	if e.started {
		return "No libvirtd ran here, so the bench started `virtlogd` and `libvirtd` itself (no systemd to socket-activate them) and stopped them afterwards"
	}
	return "The machine's running libvirtd was used"
}

func kvmNote(e libvirtEnv) string {
	if e.kvmDevNote == "" {
		return ""
	}
	return ". Without udev, `/dev/kvm` is root-only here: libvirt then probes QEMU's capabilities as root (KVM present) but checks them " +
		"as its `libvirt-qemu` user (KVM absent), finds its cache stale on every start and re-probes for over a minute each time, a broken " +
		"host rather than libvirt's cost. So " + e.kvmDevNote + " (corral's own KVM probe ran before and is not affected)"
}
