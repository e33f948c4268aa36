package main

import (
	"fmt"
	"strings"
	"time"
)

// ctLabel names a template kind in the report.
func ctLabel(kind string) string {
	if kind == "debian" {
		return "Debian 12"
	}
	return kind
}

func (r *report) ctSection(b *strings.Builder) {
	c := r.cts
	r.heading(b, "Container create and start")
	fmt.Fprintf(b, "Two system containers, each created from a template on the `local` dir pool and started, %d times per method, with LXC %s", r.cfg.ctStarts, c.lxcVersion)
	if c.lxdVersion != "" {
		fmt.Fprintf(b, " and LXD %s (Debian's `lxd` package)", c.lxdVersion)
	}
	fmt.Fprintf(b, ". Both have a 64 MiB memory limit and no network, and run unprivileged (corral and bare LXC with the 100000 ID mapping; LXD with its own from `/etc/subuid`).\n\n")
	fmt.Fprintf(b, "- **busybox**: the template `corral template build busybox` makes: Debian's static busybox, an inittab with a console getty.\n")
	fmt.Fprintf(b, "- **Debian 12**: the template `corral template build debian` makes (debootstrap minbase with systemd, ifupdown, iproute2, openssh-server), cached in `%s` between runs; `lxc-start -d` returns before systemd has finished booting, for all three methods alike.\n\n", debianCache)
	fmt.Fprintf(b, "Methods, interleaved round by round so drift hits all alike:\n\n")
	fmt.Fprintf(b, "- **corral**: `POST /containers {ostemplate, memory, start: true}` to the create task's recorded end: "+
		"reserve the ID, allocate the root filesystem on the `local` dir pool, unpack the template under `lxc-usernsexec`, "+
		"detect the OS, write host name, hosts and network files, generate the LXC config, `lxc-start -d`.\n")
	fmt.Fprintf(b, "- **bare LXC**: the same by hand, timed in the bench process: make the directory, unpack the same template with "+
		"the same `lxc-usernsexec … tar`, write the config corral generated (rootfs path and cgroup directory changed), `lxc-start -d`.\n")
	if c.lxdSkip != "" {
		fmt.Fprintf(b, "- **LXD**: not measured. The bench tried to start a private LXD daemon and it failed: `%s`.\n", c.lxdSkip)
	} else {
		fmt.Fprintf(b, "- **LXD**: a private `lxd` daemon (state in a temp `LXD_DIR`, initialised with `lxd init --preseed`: a `dir` storage pool, "+
			"a default profile with a root disk and no NIC, so no bridge and no NAT), the same template imported with `lxc image import` "+
			"(a generated `metadata.yaml` tarball plus the template as the rootfs tarball), timed as `lxc launch IMAGE NAME -c limits.memory=64MiB` "+
			"in the bench process, which returns once the container runs. The daemon is shut down and its state removed after the run.\n")
	}
	fmt.Fprintf(b, "- **start only**: the stopped container started again: `POST …/status/start` to the task's end, `lxc-start -d` of the bare one, `lxc start` of the LXD one.\n\n")
	for _, run := range c.runs {
		fmt.Fprintf(b, "### %s\n\n", ctLabel(run.kind))
		if run.skip != "" {
			fmt.Fprintf(b, "Not measured: %s.\n\n", run.skip)
			continue
		}
		fmt.Fprintf(b, "Template `%s`, %s compressed.\n\n", run.template, mib(run.size))
		lxd := len(run.lxd) > 0
		if lxd {
			fmt.Fprintf(b, "| | corral | bare LXC | LXD | corral ÷ bare | corral ÷ LXD |\n|---|---:|---:|---:|---:|---:|\n")
		} else {
			fmt.Fprintf(b, "| | corral | bare LXC | corral ÷ bare |\n|---|---:|---:|---:|\n")
		}
		row := func(name string, a, bare, x []time.Duration) {
			if lxd {
				fmt.Fprintf(b, "| %s, median | %s | %s | %s | %.2f× | %.2f× |\n", name, ms(median(a)), ms(median(bare)), ms(median(x)),
					float64(median(a))/float64(median(bare)), float64(median(a))/float64(median(x)))
				fmt.Fprintf(b, "| %s, range | %s | %s | %s | | |\n", name, durRange(a), durRange(bare), durRange(x))
				return
			}
			fmt.Fprintf(b, "| %s, median | %s | %s | %.2f× |\n", name, ms(median(a)), ms(median(bare)), float64(median(a))/float64(median(bare)))
			fmt.Fprintf(b, "| %s, range | %s | %s | |\n", name, durRange(a), durRange(bare))
		}
		row("create + start", run.corral, run.bare, run.lxd)
		row("start only", run.corralRun, run.bareRun, run.lxdRun)
		empty := "| | |" // the bare LXC and ratio cells
		if lxd {
			empty = "| | | | |"
		}
		fmt.Fprintf(b, "| create POST answered (task queued), median | %s %s\n\n", ms(median(run.corralPost)), empty)
		fmt.Fprintf(b, "Target: create+start within %.0f %% of bare LXC: **%s** (%+.0f %%).", 100*(targetCTOverRatio-1), metOrMissed(run.ratio() <= targetCTOverRatio), 100*(run.ratio()-1))
		if lxd {
			fmt.Fprintf(b, " Faster than LXD: **%s** (%.2f×).", metOrMissed(median(run.corral) < median(run.lxd)), float64(median(run.corral))/float64(median(run.lxd)))
		}
		fmt.Fprintf(b, "\n\n")
	}
	r.fleetSection(b)
}

func (r *report) fleetSection(b *strings.Builder) {
	f := r.cts.fleet
	if f.n == 0 {
		return
	}
	fmt.Fprintf(b, "### %d containers on one node\n\n", f.n)
	fmt.Fprintf(b, "%d busybox containers (as above) created and started on the same node, %d requests at a time, "+
		"timed from the first request to the last one's end; the daemon's memory read %s after the last start, "+
		"and before the first (with no container). Then the same with LXD (`lxc launch`, %d at a time; the `lxd` process's memory).\n\n",
		f.n, fleetWorkers, r.cfg.settle, fleetWorkers)
	fmt.Fprintf(b, "| | total | total ÷ %d | daemon VmRSS, none running | with %d running | difference ÷ %d |\n|---|---:|---:|---:|---:|---:|\n", f.n, f.n, f.n)
	line := func(name string, total time.Duration, before, after memInfo) {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", name, total.Round(time.Millisecond), ms(total/time.Duration(f.n)),
			kb(before.RSS), kb(after.RSS), kb((after.RSS-before.RSS)/int64(f.n)))
	}
	line("corral", f.total, f.memBefore, f.memAfter)
	if f.lxdSkip != "" {
		fmt.Fprintf(b, "| LXD | not measured: %s | | | | |\n", f.lxdSkip)
	} else {
		line("LXD", f.lxdTotal, f.lxdBefore, f.lxdAfter)
	}
	fmt.Fprintf(b, "\n")
}

// ctSummary adds the container targets to the summary table.
func (r *report) ctSummary(b *strings.Builder) {
	c := r.cts
	for _, run := range c.runs {
		name := ctLabel(run.kind)
		if run.skip != "" {
			fmt.Fprintf(b, "| Container create+start through the API within %.0f %% of bare LXC, %s | not measured: %s | — |\n", 100*(targetCTOverRatio-1), name, run.skip)
			continue
		}
		fmt.Fprintf(b, "| Container create+start through the API within %.0f %% of bare LXC doing the same (unpack, config, `lxc-start`), %s (medians of %d) | %s vs %s (%+.0f %%) | %s |\n",
			100*(targetCTOverRatio-1), name, len(run.corral), ms(median(run.corral)), ms(median(run.bare)), 100*(run.ratio()-1), yesNo(run.ratio() <= targetCTOverRatio))
		if c.lxdSkip != "" {
			fmt.Fprintf(b, "| Container create+start through the API faster than LXD, %s | not measured: LXD cannot run here (see §Containers) | — |\n", name)
			continue
		}
		fmt.Fprintf(b, "| Container create+start through the API faster than LXD's `lxc launch` of the same template, %s (medians of %d) | %s vs %s (%.2f×) | %s |\n",
			name, len(run.lxd), ms(median(run.corral)), ms(median(run.lxd)), float64(median(run.corral))/float64(median(run.lxd)), yesNo(median(run.corral) < median(run.lxd)))
	}
}
