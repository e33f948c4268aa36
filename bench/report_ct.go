package main

import (
	"fmt"
	"strings"
	"time"
)

func (r *report) ctSection(b *strings.Builder) {
	c := r.cts
	r.heading(b, "Container create and start")
	fmt.Fprintf(b, "A busybox system container (the template `corral template build busybox` makes: Debian's static busybox, "+
		"an inittab with a console getty; 64 MiB memory limit, no network, unprivileged with the 100000 ID mapping) "+
		"is created from `%s` and started, %d times, with LXC %s.\n\n", c.template, len(c.corral), c.lxcVersion)
	fmt.Fprintf(b, "- **corral**: `POST /containers {ostemplate, memory, start: true}` to the create task's recorded end: "+
		"reserve the ID, allocate the root filesystem on the `local` dir pool, unpack the template under `lxc-usernsexec`, "+
		"detect the OS, write host name, hosts and network files, generate the LXC config, `lxc-start -d`.\n")
	fmt.Fprintf(b, "- **bare LXC**: the same by hand, timed in the bench process: make the directory, unpack the same template with "+
		"the same `lxc-usernsexec … tar`, write the config corral generated (rootfs path and cgroup directory changed), `lxc-start -d`.\n")
	fmt.Fprintf(b, "- **start only**: the stopped container started again (`POST …/status/start` to the task's end), and `lxc-start -d` of the bare one.\n")
	fmt.Fprintf(b, "- LXD: not measured (%s).\n\n", c.lxdSkip)
	fmt.Fprintf(b, "| | corral | bare LXC | corral ÷ bare |\n|---|---:|---:|---:|\n")
	row := func(name string, a, bare []time.Duration) {
		fmt.Fprintf(b, "| %s, median | %s | %s | %.2f× |\n", name, ms(median(a)), ms(median(bare)), float64(median(a))/float64(median(bare)))
		fmt.Fprintf(b, "| %s, range | %s | %s | |\n", name, durRange(a), durRange(bare))
	}
	row("create + start", c.corral, c.bare)
	row("start only", c.corralRun, c.bareRun)
	fmt.Fprintf(b, "| create POST answered (task queued), median | %s | | |\n\n", ms(median(c.corralPost)))
	fmt.Fprintf(b, "Target: create+start within %.0f %% of bare LXC: **%s** (%+.0f %%).\n\n", 100*(targetCTOverRatio-1), metOrMissed(c.ratio() <= targetCTOverRatio), 100*(c.ratio()-1))
}
