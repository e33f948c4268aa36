package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

func (a *cliApp) newCTCmd() *cobra.Command {
	cmd := newParentCmd("ct", "Manage system containers (LXC)", "container", "containers", "pct")
	cmd.Long = `Manage LXC system containers: whole Linux systems with their own init,
users and network, sharing the host's kernel.

Containers and VMs share one ID space (100 and up). Commands that start a
task wait for it and report the outcome; --no-wait prints the task's ID.`
	cmd.AddCommand(a.newCTListCmd(), a.newCTShowCmd(), a.newCTConfigCmd(), a.newCTStatusCmd(), a.newCTCreateCmd(), a.newCTSetCmd(),
		a.newCTDestroyCmd(), a.newCTExecCmd(), a.newCTTermCmd("console"), a.newCTTermCmd("enter"),
		a.newCTSnapshotCmd(), a.newCTCloneCmd(),
		a.newCTTaskCmd("rollback VMID SNAPSHOT", "Return a stopped container to a snapshot", 1,
			func(ctx context.Context, c *client.Client, vmid int, args []string) (string, error) {
				return c.RollbackCT(ctx, vmid, args[0])
			}, func(args []string) string { return "rolled back to snapshot " + args[0] }),
		a.newCTTaskCmd("template VMID", "Turn a stopped container into a template", 0,
			func(ctx context.Context, c *client.Client, vmid int, _ []string) (string, error) {
				return c.TemplateCT(ctx, vmid)
			}, func([]string) string { return "is now a template" }))
	for _, s := range ctActionSpecs {
		cmd.AddCommand(a.newCTActionCmd(s))
	}
	return cmd
}

func ctStatusText(ct api.CT) string {
	if ct.Config.Template && ct.Status == "stopped" {
		return "template"
	}
	return ct.Status
}

func (a *cliApp) newCTListCmd() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List containers",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			cts, err := c.Containers(cmd.Context(), node)
			if err != nil {
				return err
			}
			return printList(a, cts, []column[api.CT]{
				{"VMID", func(v api.CT) string { return strconv.Itoa(v.Config.VMID) }},
				{"HOSTNAME", func(v api.CT) string { return v.Config.Hostname }},
				{"NODE", func(v api.CT) string { return v.Config.Node }},
				{"STATUS", ctStatusText},
				{"OS", func(v api.CT) string { return v.Config.OSType }},
				{"CORES", func(v api.CT) string { return strconv.Itoa(v.Config.Cores) }},
				{"MEMORY", func(v api.CT) string { return fmtMiB(v.Config.Memory) }},
				{"LOCK", func(v api.CT) string { return v.Lock }},
				{"PENDING", func(v api.CT) string { return yesNoEmpty(v.Pending != nil) }},
				{"TAGS", func(v api.CT) string { return strings.Join(v.Config.Tags, ",") }},
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only containers of this node")
	return cmd
}

func yesNoEmpty(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

func ctNetText(n api.CTNet) string {
	parts := []string{"name=" + n.Name}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("bridge", n.Bridge)
	add("hwaddr", n.HWAddr)
	add("ip", n.IP)
	add("gw", n.GW)
	add("ip6", n.IP6)
	add("gw6", n.GW6)
	if n.MTU != 0 {
		add("mtu", strconv.Itoa(n.MTU))
	}
	if n.Firewall {
		parts = append(parts, "firewall")
	}
	return strings.Join(parts, ",")
}

func ctMPText(m api.CTMountpoint) string {
	src := m.Volume
	if m.HostPath != "" {
		src = "host=" + m.HostPath
	}
	s := "mp=" + m.MP + "," + src
	if m.ReadOnly {
		s += ",ro"
	}
	return s
}

func ctFields(ct *api.CT) []kvField {
	c := ct.Config
	f := []kvField{
		{"vmid", strconv.Itoa(c.VMID)},
		{"hostname", c.Hostname},
		{"node", c.Node},
		{"status", ct.Status},
		{"lock", ct.Lock},
		{"ostype", c.OSType},
		{"arch", c.Arch},
		{"description", c.Description},
		{"tags", strings.Join(c.Tags, ",")},
		{"cores", strconv.Itoa(c.Cores)},
		{"cpulimit", strconv.FormatFloat(c.CPULimit, 'f', -1, 64)},
		{"cpuunits", strconv.Itoa(c.CPUUnits)},
		{"memory", fmtMiB(c.Memory)},
		{"swap", fmtMiB(c.Swap)},
		{"rootfs", c.RootFS.Volume + ",size=" + c.RootFS.Size},
	}
	for i, m := range c.Mountpoints {
		f = append(f, kvField{fmt.Sprintf("mp%d", i), ctMPText(m)})
	}
	for i, n := range c.Nets {
		f = append(f, kvField{fmt.Sprintf("net%d", i), ctNetText(n)})
	}
	f = append(f,
		kvField{"nameserver", strings.Join(c.Nameserver, " ")},
		kvField{"searchdomain", c.SearchDomain},
		kvField{"unprivileged", yesNo(c.Unprivileged)},
		kvField{"features", ctFeaturesText(c.Features)},
		kvField{"console", yesNo(c.Console)},
		kvField{"onboot", yesNo(c.OnBoot)},
		kvField{"protection", yesNo(c.Protection)},
		kvField{"template", yesNo(c.Template)},
	)
	if ct.Pending != nil {
		f = append(f, kvField{"pending", "changes wait for the next start (corral ct config --pending)"})
	}
	return append(f, kvField{"digest", ct.Digest})
}

func ctFeaturesText(f api.CTFeatures) string {
	var out []string
	for _, x := range []struct {
		n  string
		on bool
	}{{"nesting", f.Nesting}, {"fuse", f.FUSE}, {"keyctl", f.Keyctl}} {
		if x.on {
			out = append(out, x.n)
		}
	}
	return strings.Join(out, ",")
}

func (a *cliApp) newCTShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show VMID",
		Short: "Show a container's config and status",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, c, err := a.ctStart(args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			ct, err := c.Container(cmd.Context(), vmid)
			if err != nil {
				return err
			}
			return a.printObject(ct, ctFields(ct))
		},
	}
}

func (a *cliApp) newCTConfigCmd() *cobra.Command {
	var pending bool
	cmd := &cobra.Command{
		Use:   "config VMID",
		Short: "Print a container's config as stored (JSON)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, c, err := a.ctStart(args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			ct, err := c.Container(cmd.Context(), vmid)
			if err != nil {
				return err
			}
			conf := &ct.Config
			if pending && ct.Pending != nil {
				conf = ct.Pending
			}
			return a.printValue(conf, nil)
		},
	}
	cmd.Flags().BoolVar(&pending, "pending", false, "the config as it will be at the next start")
	return cmd
}

// ctStart parses the VMID argument and connects.
func (a *cliApp) ctStart(arg string) (int, *client.Client, error) {
	vmid, err := vmidArg(arg)
	if err != nil {
		return 0, nil, err
	}
	c, _, err := a.connect(false)
	return vmid, c, err
}

func (a *cliApp) newCTStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status VMID",
		Short: "Show a container's runtime state",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, c, err := a.ctStart(args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			s, err := c.CTStatus(cmd.Context(), vmid)
			if err != nil {
				return err
			}
			uptime := ""
			if s.Uptime > 0 {
				uptime = fmtDuration(s.Uptime)
			}
			return a.printObject(s, []kvField{
				{"vmid", strconv.Itoa(s.VMID)},
				{"node", s.Node},
				{"status", s.Status},
				{"pid", fmtOptInt(s.PID)},
				{"uptime", uptime},
				{"cpu", fmt.Sprintf("%.1f%%", 100*s.CPU)},
				{"memory", fmtBytes(s.Mem) + " / " + fmtBytes(s.MaxMem)},
				{"swap", fmtBytes(s.Swap) + " / " + fmtBytes(s.MaxSwap)},
				{"disk", fmtBytes(s.Disk)},
				{"netin", fmtBytes(s.NetIn)},
				{"netout", fmtBytes(s.NetOut)},
			})
		},
	}
}

var ctNetKeys = []string{"name", "bridge", "hwaddr", "ip", "gw", "ip6", "gw6", "mtu", "firewall"}

// parseCTNet parses --net name=eth0,bridge=BR,ip=10.0.0.2/24|dhcp[,gw=..][,ip6=..][,hwaddr=..].
func parseCTNet(spec string) (api.CTNet, error) {
	n := api.CTNet{}
	fields, err := specFields("--net", spec, ctNetKeys)
	if err != nil {
		return n, err
	}
	for _, f := range fields {
		k, v := f[0], f[1]
		switch k {
		case "name":
			n.Name = v
		case "bridge":
			n.Bridge = v
		case "hwaddr":
			n.HWAddr = v
		case "ip":
			n.IP = v
		case "gw":
			n.GW = v
		case "ip6":
			n.IP6 = v
		case "gw6":
			n.GW6 = v
		case "mtu":
			if n.MTU, err = strconv.Atoi(v); err != nil {
				return n, usageErrorf("invalid --net %q: mtu=%s is not a number", spec, v)
			}
		case "firewall":
			if n.Firewall, err = specBool("--net", spec, k, v); err != nil {
				return n, err
			}
		}
	}
	if n.Name == "" {
		return n, usageErrorf("invalid --net %q: name= is required (e.g. name=eth0)", spec)
	}
	return n, nil
}

// parseCTMount parses --mp mp=/data,storage=local,size=1G | volume=VOLID | host=/path [,ro].
func parseCTMount(spec string) (api.CTMountpoint, error) {
	m := api.CTMountpoint{}
	fields, err := specFields("--mp", spec, []string{"mp", "storage", "size", "volume", "host", "ro", "backup"})
	if err != nil {
		return m, err
	}
	for _, f := range fields {
		k, v := f[0], f[1]
		switch k {
		case "mp":
			m.MP = v
		case "storage":
			m.Storage = v
		case "size":
			m.Size = sizeArg(v)
		case "volume":
			m.Volume = v
		case "host":
			m.HostPath = v
		case "ro":
			if m.ReadOnly, err = specBool("--mp", spec, k, v); err != nil {
				return m, err
			}
		case "backup":
			if m.Backup, err = specBool("--mp", spec, k, v); err != nil {
				return m, err
			}
		}
	}
	if m.MP == "" {
		return m, usageErrorf("invalid --mp %q: mp= (the path inside the container) is required", spec)
	}
	return m, nil
}

// ctFlags are the config flags shared by create and set.
type ctFlags struct {
	hostname, description, searchdomain, startup, features string
	memory, swap, cores, cpuunits                          int
	cpulimit                                               float64
	tags, nets, mps, nameservers                           []string
	onboot, protection, console                            bool
}

func (f *ctFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.hostname, "hostname", "", "host name (FQDN allowed)")
	fs.StringVar(&f.description, "description", "", "free-form description")
	fs.StringSliceVar(&f.tags, "tags", nil, "tags (comma-separated or repeated)")
	fs.IntVar(&f.memory, "memory", 0, "memory limit in MiB")
	fs.IntVar(&f.swap, "swap", 0, "swap limit in MiB")
	fs.IntVar(&f.cores, "cores", 0, "CPUs the container may use")
	fs.Float64Var(&f.cpulimit, "cpulimit", 0, "CPU time limit in CPUs (0: none)")
	fs.IntVar(&f.cpuunits, "cpuunits", 0, "relative CPU weight (default 100)")
	fs.StringArrayVar(&f.nets, "net", nil, "interface name=eth0,bridge=BR,ip=CIDR|dhcp[,gw=IP][,ip6=..][,hwaddr=MAC] (repeatable)")
	fs.StringArrayVar(&f.mps, "mp", nil, "mount point mp=/path,storage=POOL,size=SIZE | volume=VOLID | host=/hostpath [,ro] (repeatable)")
	fs.StringSliceVar(&f.nameservers, "nameserver", nil, "DNS servers")
	fs.StringVar(&f.searchdomain, "searchdomain", "", "DNS search domain")
	fs.StringVar(&f.features, "features", "", "comma-separated: nesting, fuse, keyctl")
	fs.StringVar(&f.startup, "startup", "", "order=N,up=SECONDS,down=SECONDS")
	fs.BoolVar(&f.onboot, "onboot", false, "start the container when its node boots")
	fs.BoolVar(&f.protection, "protection", false, "refuse to destroy the container")
	fs.BoolVar(&f.console, "console", true, "a console on /dev/console")
}

func parseFeatures(s string) (api.CTFeatures, error) {
	var f api.CTFeatures
	for x := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(x) {
		case "":
		case "nesting":
			f.Nesting = true
		case "fuse":
			f.FUSE = true
		case "keyctl":
			f.Keyctl = true
		default:
			return f, usageErrorf("invalid --features %q: unknown feature %q (nesting, fuse, keyctl)", s, x)
		}
	}
	return f, nil
}

func (f *ctFlags) lists() ([]api.CTNet, []api.CTMountpoint, error) {
	var nets []api.CTNet
	var mps []api.CTMountpoint
	for _, s := range f.nets {
		if s == "" {
			continue
		}
		n, err := parseCTNet(s)
		if err != nil {
			return nil, nil, err
		}
		nets = append(nets, n)
	}
	for _, s := range f.mps {
		if s == "" {
			continue
		}
		m, err := parseCTMount(s)
		if err != nil {
			return nil, nil, err
		}
		mps = append(mps, m)
	}
	return nets, mps, nil
}

func (a *cliApp) newCTCreateCmd() *cobra.Command {
	var f ctFlags
	var tf taskFlags
	var vmid int
	var tmpl, storage, size, sshKeysFile string
	var unprivileged, start, passwordStdin bool
	cmd := &cobra.Command{
		Use:   "create --ostemplate STORAGE:vztmpl/FILE [--hostname NAME] [--memory MiB] [--net SPEC]...",
		Short: "Create a container from a template",
		Long: `Create a container from a template (see "corral template list"): its root
filesystem is allocated on --storage and the template unpacked into it, in
a task. Containers are unprivileged (root inside is an unprivileged user
of the host) unless --unprivileged=false, which needs Sys.Modify on /.

--password-stdin reads the root password from standard input; only its
hash is written into the container.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			wait, err := tf.waiting(fs)
			if err != nil {
				return err
			}
			if tmpl == "" {
				return usageErrorf("--ostemplate is required (e.g. local:vztmpl/busybox-1.35.0-amd64.tar.gz)")
			}
			feat, err := parseFeatures(f.features)
			if err != nil {
				return err
			}
			nets, mps, err := f.lists()
			if err != nil {
				return err
			}
			in := api.CTCreate{VMID: vmid, OSTemplate: tmpl, Hostname: f.hostname, Description: f.description, Tags: f.tags,
				Cores: f.cores, CPULimit: f.cpulimit, CPUUnits: f.cpuunits, Memory: f.memory, RootFS: api.CTRootFS{Storage: storage, Size: sizeArg(size)},
				Nets: nets, Mountpoints: mps, Nameserver: f.nameservers, SearchDomain: f.searchdomain, Features: feat,
				OnBoot: f.onboot, Startup: f.startup, Protection: f.protection, Start: start}
			if fs.Changed("swap") {
				in.Swap = &f.swap
			}
			if fs.Changed("unprivileged") {
				in.Unprivileged = &unprivileged
			}
			if fs.Changed("console") {
				in.Console = &f.console
			}
			if passwordStdin {
				line, err := readLine(a.stdin)
				if err != nil {
					return fmt.Errorf("read password: %w", err)
				}
				in.Password = strings.TrimRight(line, "\r\n")
			}
			if sshKeysFile != "" {
				b, err := os.ReadFile(sshKeysFile)
				if err != nil {
					return err
				}
				for l := range strings.SplitSeq(string(b), "\n") {
					if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
						in.SSHPublicKeys = append(in.SSHPublicKeys, l)
					}
				}
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			cr, err := c.CreateContainer(cmd.Context(), in)
			if err != nil {
				return err
			}
			done := "created"
			if start {
				done = "created and started"
			}
			return a.finishGuestCreated(cmd.Context(), c, "Container", cr, wait, done)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&vmid, "vmid", 0, "ID of the new container (default: the next free one)")
	fs.StringVar(&tmpl, "ostemplate", "", "template volume, STORAGE:vztmpl/FILE")
	fs.StringVar(&storage, "storage", "", "pool for the root filesystem (default local)")
	fs.StringVar(&size, "rootfs-size", "", "root filesystem size (default 4G)")
	fs.BoolVar(&unprivileged, "unprivileged", true, "map root in the container to an unprivileged host user")
	fs.BoolVar(&passwordStdin, "password-stdin", false, "read the root password from standard input")
	fs.StringVar(&sshKeysFile, "ssh-public-keys", "", "file of OpenSSH public keys for root")
	fs.BoolVar(&start, "start", false, "start the container once created")
	f.register(fs)
	tf.register(fs)
	return cmd
}

func (a *cliApp) newCTSetCmd() *cobra.Command {
	var f ctFlags
	var revert bool
	var digest string
	cmd := &cobra.Command{
		Use:   "set VMID",
		Short: "Change a container's config; only the given flags are changed",
		Long: `Change a container's config; only the given flags are changed. On a running
container, memory, swap and CPU limits apply at once; other changes wait
for the next start. --net and --mp replace the whole list ("" empties it).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, err := vmidArg(args[0])
			if err != nil {
				return err
			}
			fs := cmd.Flags()
			var u api.CTUpdate
			ch := func(name string) bool { return fs.Changed(name) }
			if ch("hostname") {
				u.Hostname = &f.hostname
			}
			if ch("description") {
				u.Description = &f.description
			}
			if ch("tags") {
				u.Tags = &f.tags
			}
			if ch("memory") {
				u.Memory = &f.memory
			}
			if ch("swap") {
				u.Swap = &f.swap
			}
			if ch("cores") {
				u.Cores = &f.cores
			}
			if ch("cpulimit") {
				u.CPULimit = &f.cpulimit
			}
			if ch("cpuunits") {
				u.CPUUnits = &f.cpuunits
			}
			nets, mps, err := f.lists()
			if err != nil {
				return err
			}
			if ch("net") {
				if nets == nil {
					nets = []api.CTNet{}
				}
				u.Nets = &nets
			}
			if ch("mp") {
				if mps == nil {
					mps = []api.CTMountpoint{}
				}
				u.Mountpoints = &mps
			}
			if ch("nameserver") {
				u.Nameserver = &f.nameservers
			}
			if ch("searchdomain") {
				u.SearchDomain = &f.searchdomain
			}
			if ch("features") {
				feat, err := parseFeatures(f.features)
				if err != nil {
					return err
				}
				u.Features = &feat
			}
			if ch("startup") {
				u.Startup = &f.startup
			}
			if ch("onboot") {
				u.OnBoot = &f.onboot
			}
			if ch("protection") {
				u.Protection = &f.protection
			}
			if ch("console") {
				u.Console = &f.console
			}
			u.Revert = revert
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			ct, err := c.UpdateContainer(cmd.Context(), vmid, u, client.WithIfMatch(digest))
			if err != nil {
				return err
			}
			if a.output != formatTable {
				return a.printValue(ct, nil)
			}
			if ct.Pending != nil {
				fmt.Fprintf(a.stdout, "Container %d updated; changes pending until its next start.\n", vmid)
			} else {
				fmt.Fprintf(a.stdout, "Container %d updated.\n", vmid)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	f.register(fs)
	fs.BoolVar(&revert, "revert", false, "drop the pending changes")
	fs.StringVar(&digest, "digest", "", "only change the container if its digest still matches")
	return cmd
}

var ctActionSpecs = []vmActionSpec{
	{"start", "Start a container", "", "started"},
	{"shutdown", "Ask a container's init to power off", `Signal the container's init to power off and wait for it. A container still
running after --timeout seconds is killed, unless --force=false.`, "shut down"},
	{"stop", "Stop a container at once (kill all its processes)", "", "stopped"},
	{"reboot", "Shut a container down and start it again (pending changes apply)", "", "rebooted"},
	{"suspend", "Freeze all processes of a container (cgroup freezer)", "", "suspended"},
	{"resume", "Thaw a suspended container", "", "resumed"},
}

func (a *cliApp) newCTActionCmd(s vmActionSpec) *cobra.Command {
	var tf taskFlags
	var timeout int
	var force bool
	hasShutdown := s.action == "shutdown" || s.action == "reboot"
	cmd := &cobra.Command{
		Use:   s.action + " VMID",
		Short: s.short,
		Long:  s.long,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, wait, c, err := a.vmTaskStart(cmd, args[0], &tf)
			if err != nil {
				return err
			}
			defer c.Close()
			fs := cmd.Flags()
			var sd *api.CTShutdown
			if hasShutdown && (fs.Changed("timeout") || fs.Changed("force")) {
				sd = &api.CTShutdown{Timeout: timeout}
				if fs.Changed("force") {
					sd.Force = &force
				}
			}
			upid, err := c.CTAction(cmd.Context(), vmid, s.action, sd)
			if err != nil {
				return err
			}
			return a.finishGuestTask(cmd.Context(), c, "Container", vmid, upid, wait, s.done)
		},
	}
	fs := cmd.Flags()
	if hasShutdown {
		fs.Var(secondsValue{&timeout}, "timeout", "seconds to wait for init to power off (default 60)")
		fs.BoolVar(&force, "force", true, "kill the container when the timeout passes")
	}
	tf.register(fs)
	return cmd
}

func (a *cliApp) newCTDestroyCmd() *cobra.Command {
	var tf taskFlags
	var purge, yes bool
	cmd := &cobra.Command{
		Use:     "destroy VMID",
		Aliases: []string{"delete"},
		Short:   "Destroy a stopped container and free its volumes",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, wait, c, err := a.vmTaskStart(cmd, args[0], &tf)
			if err != nil {
				return err
			}
			defer c.Close()
			if !yes {
				if !a.stdinIsTerminal() {
					return usageErrorf("refusing to destroy container %d without --yes: standard input is not a terminal to confirm on", vmid)
				}
				fmt.Fprintf(a.stderr, "This destroys container %d and frees its volumes.\nType the container ID to confirm: ", vmid)
				line, err := readLine(a.stdin)
				if err != nil || strings.TrimSpace(line) != strconv.Itoa(vmid) {
					return fmt.Errorf("not confirmed; nothing destroyed")
				}
			}
			upid, err := c.DeleteContainer(cmd.Context(), vmid, purge)
			if err != nil {
				return err
			}
			return a.finishGuestTask(cmd.Context(), c, "Container", vmid, upid, wait, "destroyed")
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&purge, "purge", false, "also remove the ACL entries on the container")
	fs.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	tf.register(fs)
	return cmd
}

func (a *cliApp) newCTExecCmd() *cobra.Command {
	var envs []string
	var tty bool
	cmd := &cobra.Command{
		Use:   "exec VMID [--env K=V]... [-t] -- COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run a command in a running container, with standard input, output and
error streamed; the command's exit code becomes corral's. No shell is
involved unless you run one: corral ct exec 100 -- sh -c 'echo $HOME'.
-t runs it on a terminal (raw mode when standard input is one).`,
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, c, err := a.ctStart(args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			in := api.CTExec{Command: args[1:], TTY: tty, Env: map[string]string{}}
			for _, e := range envs {
				k, v, ok := strings.Cut(e, "=")
				if !ok {
					return usageErrorf("invalid --env %q: want KEY=VALUE", e)
				}
				in.Env[k] = v
			}
			ctx := cmd.Context()
			sess, err := c.CTExecInteractive(ctx, vmid, in)
			if err != nil {
				return err
			}
			defer sess.Close()
			if tty && a.stdinIsTerminal() {
				fd := int(a.stdin.(*os.File).Fd())
				if w, h, err := term.GetSize(fd); err == nil {
					sess.Resize(w, h)
				}
				if state, err := term.MakeRaw(fd); err == nil {
					defer term.Restore(fd, state)
				}
			}
			go func() {
				io.Copy(sess, ctxReader{ctx, a.stdin})
				sess.CloseStdin()
			}()
			code, err := sess.Wait(a.stdout, a.stderr)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitCodeError{code: code, err: fmt.Errorf("command exited with status %d", code)}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&envs, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "run on a terminal")
	return cmd
}

// newCTTermCmd is "console" (the container's /dev/console) or "enter" (a
// login shell in it, like pct enter).
func (a *cliApp) newCTTermCmd(use string) *cobra.Command {
	mode, short := "console", "Attach to a running container's console"
	if use == "enter" {
		mode, short = "shell", "Open a root shell in a running container"
	}
	return &cobra.Command{
		Use:   use + " VMID",
		Short: short,
		Long: short + `. On a terminal, every key goes to the container;
Ctrl-] detaches. Without a terminal, standard input is sent as it is.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, c, err := a.ctStart(args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			conn, err := c.CTTerminal(cmd.Context(), vmid, mode)
			if err != nil {
				return err
			}
			defer conn.Close()
			if !a.stdinIsTerminal() {
				return a.pipeConsole(cmd.Context(), conn)
			}
			fd := int(a.stdin.(*os.File).Fd())
			fmt.Fprintf(a.stderr, "Connected to container %d (%s); press Ctrl-] to detach.\n", vmid, mode)
			state, err := term.MakeRaw(fd)
			if err != nil {
				return fmt.Errorf("set the terminal to raw mode: %w", err)
			}
			detached, err := a.attachConsole(cmd.Context(), conn)
			term.Restore(fd, state)
			if detached {
				fmt.Fprintf(a.stderr, "\nDetached from container %d.\n", vmid)
			}
			return err
		},
	}
}

// newCTTaskCmd builds a command on one container that starts a task:
// VMID plus extra arguments, --wait/--no-wait, and the outcome reported.
func (a *cliApp) newCTTaskCmd(use, short string, extra int, start func(ctx context.Context, c *client.Client, vmid int, args []string) (string, error), done func(args []string) string) *cobra.Command {
	var tf taskFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(cobra.ExactArgs(1 + extra)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, wait, c, err := a.vmTaskStart(cmd, args[0], &tf)
			if err != nil {
				return err
			}
			defer c.Close()
			upid, err := start(cmd.Context(), c, vmid, args[1:])
			if err != nil {
				return err
			}
			return a.finishGuestTask(cmd.Context(), c, "Container", vmid, upid, wait, done(args[1:]))
		},
	}
	tf.register(cmd.Flags())
	return cmd
}

func (a *cliApp) newCTSnapshotCmd() *cobra.Command {
	var description string
	cmd := newParentCmd("snapshot", "Manage a container's snapshots", "snapshots", "snap")
	create := a.newCTTaskCmd("create VMID NAME", "Snapshot a container's volumes (frozen meanwhile when running)", 1,
		func(ctx context.Context, c *client.Client, vmid int, args []string) (string, error) {
			return c.SnapshotCT(ctx, vmid, api.CTSnapshotCreate{Name: args[0], Description: description})
		}, func(args []string) string { return "snapshot " + args[0] + " taken" })
	create.Flags().StringVar(&description, "description", "", "what the snapshot is for")
	cmd.AddCommand(&cobra.Command{
		Use:   "list VMID",
		Short: "List a container's snapshots",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, c, err := a.ctStart(args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			snaps, err := c.CTSnapshots(cmd.Context(), vmid)
			if err != nil {
				return err
			}
			return printList(a, snaps, []column[api.CTSnapshot]{
				{"NAME", func(s api.CTSnapshot) string { return s.Name }},
				{"TIME", func(s api.CTSnapshot) string { return fmtTime(s.Time) }},
				{"DESCRIPTION", func(s api.CTSnapshot) string { return s.Description }},
			})
		},
	}, create,
		a.newCTTaskCmd("delete VMID NAME", "Delete a snapshot", 1,
			func(ctx context.Context, c *client.Client, vmid int, args []string) (string, error) {
				return c.DeleteCTSnapshot(ctx, vmid, args[0])
			}, func(args []string) string { return "snapshot " + args[0] + " deleted" }))
	return cmd
}

func (a *cliApp) newCTCloneCmd() *cobra.Command {
	var tf taskFlags
	var in api.CTClone
	cmd := &cobra.Command{
		Use:   "clone VMID [--newid N] [--hostname NAME] [--full]",
		Short: "Clone a stopped container or a template into a new container",
		Long: `Clone a stopped container or a template. Templates clone linked (sharing
the base volume) where the storage can; --full always copies.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, wait, c, err := a.vmTaskStart(cmd, args[0], &tf)
			if err != nil {
				return err
			}
			defer c.Close()
			cr, err := c.CloneCT(cmd.Context(), vmid, in)
			if err != nil {
				return err
			}
			return a.finishGuestCreated(cmd.Context(), c, "Container", cr, wait, fmt.Sprintf("cloned from %d", vmid))
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&in.NewID, "newid", 0, "ID of the clone (default: the next free one)")
	fs.StringVar(&in.Hostname, "hostname", "", "host name of the clone (default ct<newid>)")
	fs.BoolVar(&in.Full, "full", false, "copy in full even from a template")
	tf.register(fs)
	return cmd
}
