package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

func (a *cliApp) newVMCmd() *cobra.Command {
	cmd := newParentCmd("vm", "Manage virtual machines", "vms", "qm")
	cmd.Long = `Manage QEMU/KVM virtual machines.

VMs are named by their numeric ID (VMID, 100 and up). Commands that start
a task (create, destroy, the power actions, template, clone, snapshots and
disk operations) wait for it to end and report the outcome; --no-wait
prints the task's ID instead, to follow with "corral task log -f".`
	cmd.AddCommand(
		a.newVMListCmd(),
		a.newVMShowCmd(),
		a.newVMConfigCmd(),
		a.newVMCreateCmd(),
		a.newVMSetCmd(),
		a.newVMStatusCmd(),
		a.newVMDestroyCmd(),
		a.newVMConsoleCmd(),
		a.newVMVNCCmd(),
		a.newVMTemplateCmd(),
		a.newVMCloneCmd(),
		a.newVMSnapshotCmd(),
		a.newVMResizeCmd(),
		a.newVMMoveDiskCmd(),
	)
	for _, s := range vmActionSpecs {
		cmd.AddCommand(a.newVMActionCmd(s))
	}
	return cmd
}

// ---- helpers ----

// vmidArg parses a VMID argument.
func vmidArg(s string) (int, error) {
	id, err := strconv.Atoi(s)
	if err != nil || id <= 0 {
		return 0, usageErrorf("invalid VM ID %q: want a number such as 100", s)
	}
	return id, nil
}

// fmtMiB renders a size in MiB, in GiB when it is a whole number of them.
func fmtMiB(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return strconv.Itoa(n/1024) + " GiB"
	}
	return strconv.Itoa(n) + " MiB"
}

func vmStatusText(v api.VM) string {
	if v.Config.Template && v.Status == "stopped" {
		return "template"
	}
	return v.Status
}

// taskFlags are the --wait/--no-wait flags of commands that start a task.
type taskFlags struct {
	wait, noWait bool
}

func (f *taskFlags) register(fs *pflag.FlagSet) {
	fs.BoolVarP(&f.wait, "wait", "w", true, "wait for the task to end and report its outcome")
	fs.BoolVar(&f.noWait, "no-wait", false, "print the task's ID and return without waiting")
}

// waiting reports whether to wait for the task.
func (f *taskFlags) waiting(fs *pflag.FlagSet) (bool, error) {
	if f.noWait && fs.Changed("wait") && f.wait {
		return false, usageErrorf("--wait and --no-wait are mutually exclusive")
	}
	return f.wait && !f.noWait, nil
}

// vmTaskStart is the common start of a command that runs a task on one VM:
// the VM ID argument, --wait/--no-wait, and a connected client.
func (a *cliApp) vmTaskStart(cmd *cobra.Command, arg string, tf *taskFlags) (int, bool, *client.Client, error) {
	vmid, err := vmidArg(arg)
	if err != nil {
		return 0, false, nil, err
	}
	wait, err := tf.waiting(cmd.Flags())
	if err != nil {
		return 0, false, nil, err
	}
	c, _, err := a.connect(false)
	if err != nil {
		return 0, false, nil, err
	}
	return vmid, wait, c, nil
}

// vmTaskResult is what a task-starting VM command prints with -o json or
// yaml: the task's ID and, once waited for, its outcome.
type vmTaskResult struct {
	VMID    int    `json:"vmid"`
	Task    string `json:"task"`
	Status  string `json:"status,omitempty"`
	ExitMsg string `json:"exit_message,omitempty"`
}

// finishVMTask reports a task a VM command started. Without wait it prints
// the task ID (in table mode just the UPID, for scripts). With wait it
// waits for the task and says how it ended; a task that did not end ok
// makes the command fail.
func (a *cliApp) finishVMTask(ctx context.Context, c *client.Client, vmid int, upid string, wait bool, done string) error {
	return a.finishGuestTask(ctx, c, "VM", vmid, upid, wait, done)
}

// finishGuestTask is finishVMTask for any guest type (kind: "VM", "Container").
func (a *cliApp) finishGuestTask(ctx context.Context, c *client.Client, kind string, vmid int, upid string, wait bool, done string) error {
	res := vmTaskResult{VMID: vmid, Task: upid}
	if !wait {
		if a.output == formatTable {
			fmt.Fprintln(a.stdout, upid)
			return nil
		}
		return a.printValue(res, nil)
	}
	task, err := c.WaitTask(ctx, upid)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w (the task goes on; follow it with: corral task log -f %s)", err, upid)
		}
		return err
	}
	res.Status, res.ExitMsg = task.Status, task.ExitMsg
	if task.Status != api.TaskOK {
		if a.output != formatTable {
			if err := a.printValue(res, nil); err != nil {
				return err
			}
		}
		msg := task.ExitMsg
		if msg == "" {
			msg = task.Status
		}
		return &exitCodeError{code: exitError, err: fmt.Errorf("task %s %s: %s", upid, task.Status, msg)}
	}
	if a.output == formatTable {
		fmt.Fprintf(a.stdout, "%s %d %s.\n", kind, vmid, done)
		return nil
	}
	return a.printValue(res, nil)
}

// finishVMCreated is finishVMTask for the commands that make a VM (create,
// clone): without waiting, the table also names the new VM's ID.
func (a *cliApp) finishVMCreated(ctx context.Context, c *client.Client, cr *client.VMCreated, wait bool, done string) error {
	return a.finishGuestCreated(ctx, c, "VM", cr, wait, done)
}

func (a *cliApp) finishGuestCreated(ctx context.Context, c *client.Client, kind string, cr *client.VMCreated, wait bool, done string) error {
	if !wait && a.output == formatTable {
		return a.printObject(cr, []kvField{{"vmid", strconv.Itoa(cr.VMID)}, {"task", cr.Task}})
	}
	return a.finishGuestTask(ctx, c, kind, cr.VMID, cr.Task, wait, done)
}

// specFields splits a key=value,... spec as --disk and --net take. A key
// without a value is "true" (for the boolean options).
func specFields(flag, spec string, keys []string) ([][2]string, error) {
	var out [][2]string
	for part := range strings.SplitSeq(spec, ",") {
		if part == "" {
			continue
		}
		k, v, hasValue := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		known := false
		for _, want := range keys {
			known = known || k == want
		}
		if !known {
			return nil, usageErrorf("invalid %s %q: unknown key %q (want %s)", flag, spec, k, strings.Join(keys, ", "))
		}
		if !hasValue {
			v = "true"
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func specBool(flag, spec, k, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes", "on":
		return true, nil
	case "no", "off":
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, usageErrorf("invalid %s %q: %s=%s is not a boolean", flag, spec, k, v)
	}
	return b, nil
}

var diskKeys = []string{"bus", "storage", "size", "volume", "format", "cache", "discard", "iothread", "readonly"}

// parseDiskSpec parses --disk: bus=virtio,storage=local,size=10G for a new
// disk, or bus=virtio,volume=local:100/vm-100-disk-0.qcow2 for an existing
// volume. The bus defaults to virtio.
func parseDiskSpec(spec string) (api.VMDisk, error) {
	d := api.VMDisk{Bus: "virtio"}
	fields, err := specFields("--disk", spec, diskKeys)
	if err != nil {
		return d, err
	}
	for _, f := range fields {
		k, v := f[0], f[1]
		switch k {
		case "bus":
			d.Bus = v
		case "storage":
			d.Storage = v
		case "size":
			d.Size = sizeArg(v)
		case "volume":
			d.Volume = v
		case "format":
			d.Format = v
		case "cache":
			d.Cache = v
		default:
			b, err := specBool("--disk", spec, k, v)
			if err != nil {
				return d, err
			}
			switch k {
			case "discard":
				d.Discard = b
			case "iothread":
				d.IOThread = b
			case "readonly":
				d.ReadOnly = b
			}
		}
	}
	switch {
	case d.Volume != "" && (d.Storage != "" || d.Size != ""):
		return d, usageErrorf("invalid --disk %q: give either volume= (an existing volume) or storage= and size= (a new one)", spec)
	case d.Volume == "" && (d.Storage == "" || d.Size == ""):
		return d, usageErrorf("invalid --disk %q: a new disk needs storage= and size=, an existing one volume=", spec)
	}
	return d, nil
}

var netKeys = []string{"model", "bridge", "mac", "tag", "rate", "firewall"}

// parseNetSpec parses --net: model=virtio,bridge=vmbr0[,mac=..][,tag=N][,rate=MBps][,firewall].
func parseNetSpec(spec string) (api.VMNet, error) {
	n := api.VMNet{Model: "virtio"}
	fields, err := specFields("--net", spec, netKeys)
	if err != nil {
		return n, err
	}
	for _, f := range fields {
		k, v := f[0], f[1]
		switch k {
		case "model":
			n.Model = v
		case "bridge":
			n.Bridge = v
		case "mac":
			n.MAC = v
		case "tag":
			if n.Tag, err = strconv.Atoi(v); err != nil {
				return n, usageErrorf("invalid --net %q: tag=%s is not a number", spec, v)
			}
		case "rate":
			if n.Rate, err = strconv.ParseFloat(v, 64); err != nil {
				return n, usageErrorf("invalid --net %q: rate=%s is not a number", spec, v)
			}
		case "firewall":
			if n.Firewall, err = specBool("--net", spec, k, v); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// cdromList turns --cdrom values into drives. A single empty value means
// no drives at all (for set, to remove them).
func cdromList(vals []string) []api.VMCDROM {
	out := []api.VMCDROM{}
	if len(vals) == 1 && vals[0] == "" {
		return out
	}
	for _, v := range vals {
		out = append(out, api.VMCDROM{Volume: v})
	}
	return out
}

func netList(vals []string) ([]api.VMNet, error) {
	out := []api.VMNet{}
	if len(vals) == 1 && vals[0] == "" {
		return out, nil
	}
	for _, v := range vals {
		n, err := parseNetSpec(v)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func diskText(d api.VMDisk) string {
	parts := []string{"bus=" + d.Bus}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("volume", d.Volume)
	add("storage", d.Storage)
	add("size", d.Size)
	add("format", d.Format)
	add("cache", d.Cache)
	for _, b := range []struct {
		k  string
		on bool
	}{{"discard", d.Discard}, {"iothread", d.IOThread}, {"readonly", d.ReadOnly}} {
		if b.on {
			parts = append(parts, b.k)
		}
	}
	return strings.Join(parts, ",")
}

func netText(n api.VMNet) string {
	parts := []string{"model=" + n.Model}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("bridge", n.Bridge)
	add("mac", n.MAC)
	if n.Tag != 0 {
		add("tag", strconv.Itoa(n.Tag))
	}
	if n.Rate != 0 {
		add("rate", strconv.FormatFloat(n.Rate, 'f', -1, 64))
	}
	if n.Firewall {
		parts = append(parts, "firewall")
	}
	return strings.Join(parts, ",")
}

// vmConfigSections renders a config as ordered key/value rows in
// sections: general settings, disks, CD-ROMs, network interfaces, flags.
// Devices get one row each (disk0, cdrom0, net0, ...).
func vmConfigSections(c *api.VMConfig) [][]kvField {
	balloon := "off"
	if c.Balloon > 0 {
		balloon = fmtMiB(c.Balloon)
	}
	general := []kvField{
		{"name", c.Name},
		{"description", c.Description},
		{"tags", strings.Join(c.Tags, ",")},
		{"cores", strconv.Itoa(c.Cores)},
		{"sockets", strconv.Itoa(c.Sockets)},
		{"vcpus", vcpuText(c)},
		{"hotplug", strings.Join(c.Hotplug, ",")},
		{"cpu", c.CPU},
		{"memory", fmtMiB(c.Memory)},
		{"balloon", balloon},
		{"machine", c.Machine},
		{"bios", c.BIOS},
		{"boot", strings.Join(c.Boot, ",")},
	}
	var disks, cdroms, nets []kvField
	for i, d := range c.Disks {
		disks = append(disks, kvField{fmt.Sprintf("disk%d", i), diskText(d)})
	}
	for i, d := range c.CDROMs {
		cdroms = append(cdroms, kvField{fmt.Sprintf("cdrom%d", i), d.Volume})
	}
	for i, n := range c.Nets {
		nets = append(nets, kvField{fmt.Sprintf("net%d", i), netText(n)})
	}
	flags := []kvField{
		{"serial", yesNo(c.Serial)},
		{"vga", c.VGA},
		{"onboot", yesNo(c.OnBoot)},
		{"protection", yesNo(c.Protection)},
		{"template", yesNo(c.Template)},
	}
	return [][]kvField{general, disks, cdroms, nets, flags}
}

// vmShowFields lists a VM's config with its pending changes marked:
// "memory  64 MiB → 96 MiB (pending)". A device that only exists on one
// side shows "-" on the other.
func vmShowFields(v *api.VM) []kvField {
	c := &v.Config
	fields := []kvField{
		{"vmid", strconv.Itoa(c.VMID)},
		{"node", c.Node},
		{"status", v.Status},
		{"lock", v.Lock},
	}
	cur := vmConfigSections(c)
	next := cur
	if v.Pending != nil {
		next = vmConfigSections(v.Pending)
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for i := range cur {
		nextByKey := map[string]string{}
		for _, r := range next[i] {
			nextByKey[r.key] = r.value
		}
		seen := map[string]bool{}
		for _, r := range cur[i] {
			seen[r.key] = true
			if to, ok := nextByKey[r.key]; ok && to == r.value {
				fields = append(fields, r)
			} else {
				fields = append(fields, kvField{r.key, dash(r.value) + " → " + dash(to) + " (pending)"})
			}
		}
		for _, r := range next[i] {
			if !seen[r.key] {
				fields = append(fields, kvField{r.key, "- → " + dash(r.value) + " (pending)"})
			}
		}
	}
	return append(fields,
		kvField{"uuid", c.UUID},
		kvField{"digest", v.Digest},
	)
}

// ---- listing and inspection ----

func (a *cliApp) newVMListCmd() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List VMs",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			vms, err := c.VMs(cmd.Context(), node)
			if err != nil {
				return err
			}
			return printList(a, vms, []column[api.VM]{
				{"VMID", func(v api.VM) string { return strconv.Itoa(v.Config.VMID) }},
				{"NAME", func(v api.VM) string { return v.Config.Name }},
				{"NODE", func(v api.VM) string { return v.Config.Node }},
				{"STATUS", vmStatusText},
				{"CPUS", func(v api.VM) string { return strconv.Itoa(v.Config.Cores * v.Config.Sockets) }},
				{"MEMORY", func(v api.VM) string { return fmtMiB(v.Config.Memory) }},
				{"LOCK", func(v api.VM) string { return v.Lock }},
				{"PENDING", func(v api.VM) string {
					if v.Pending == nil {
						return ""
					}
					return "yes"
				}},
				{"TAGS", func(v api.VM) string { return strings.Join(v.Config.Tags, ",") }},
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only VMs of this node")
	return cmd
}

func (a *cliApp) newVMShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show VMID",
		Short: "Show a VM's config, with pending changes marked",
		Long: `Show a VM's config, status and lock. Changes made while the VM runs that
only apply at its next start are shown as "old → new (pending)"; -o json
gives the config and the pending config as two objects.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, err := vmidArg(args[0])
			if err != nil {
				return err
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := c.VM(cmd.Context(), vmid)
			if err != nil {
				return err
			}
			return a.printObject(v, vmShowFields(v))
		},
	}
}

func (a *cliApp) newVMConfigCmd() *cobra.Command {
	var pending bool
	cmd := &cobra.Command{
		Use:   "config VMID",
		Short: "Print a VM's config as stored",
		Long: `Print a VM's config as stored, field by field. With --pending, print the
config the VM gets at its next start (the current one when nothing is
pending).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, err := vmidArg(args[0])
			if err != nil {
				return err
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := c.VM(cmd.Context(), vmid)
			if err != nil {
				return err
			}
			conf := &v.Config
			if pending && v.Pending != nil {
				conf = v.Pending
			}
			if a.output != formatTable {
				return a.printValue(conf, nil)
			}
			data, err := json.Marshal(conf)
			if err != nil {
				return err
			}
			return a.printRawJSON(data)
		},
	}
	cmd.Flags().BoolVar(&pending, "pending", false, "the config as it will be at the next start")
	return cmd
}

func (a *cliApp) newVMStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status VMID",
		Short: "Show a VM's runtime state",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, err := vmidArg(args[0])
			if err != nil {
				return err
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			s, err := c.VMStatus(cmd.Context(), vmid)
			if err != nil {
				return err
			}
			running := s.Status != "stopped"
			uptime, cpu, mem := "", "", ""
			if running {
				if s.Uptime > 0 {
					uptime = fmtDuration(s.Uptime)
				}
				cpu = fmt.Sprintf("%.1f%%", 100*s.CPU)
				mem = fmtBytes(s.Mem)
			}
			return a.printObject(s, []kvField{
				{"vmid", strconv.Itoa(s.VMID)},
				{"node", s.Node},
				{"status", s.Status},
				{"qmpstatus", s.QMPStatus},
				{"pid", fmtOptInt(s.PID)},
				{"uptime", uptime},
				{"started", fmtTime(s.Started)},
				{"cpu", cpu},
				{"memory", mem},
				{"maxmem", fmtBytes(s.MaxMem)},
				{"accel", s.Accel},
				{"warning", s.Warning},
			})
		},
	}
}

// ---- create and change ----

// vmFlags are the config flags shared by create and set.
type vmFlags struct {
	name, description, cpu, machine, bios, vga string
	memory, balloon, cores, sockets, vcpus     int
	maxmemory                                  int
	tags, boot, cdroms, nets, hotplug          []string
	serial, onboot, protection                 bool
}

func (f *vmFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "VM name (a DNS label)")
	fs.StringVar(&f.description, "description", "", "free-form description")
	fs.StringSliceVar(&f.tags, "tags", nil, "tags (comma-separated or repeated)")
	fs.IntVar(&f.memory, "memory", 0, "memory in MiB")
	fs.IntVar(&f.balloon, "balloon", 0, "balloon target in MiB (0: no balloon device)")
	fs.IntVar(&f.cores, "cores", 0, "cores per socket")
	fs.IntVar(&f.sockets, "sockets", 0, "CPU sockets")
	fs.IntVar(&f.vcpus, "vcpus", 0, "vCPUs online (default cores×sockets; live with --hotplug cpu)")
	fs.StringSliceVar(&f.hotplug, "hotplug", nil, `what may be added while running: cpu, memory ("" for none)`)
	fs.IntVar(&f.maxmemory, "maxmemory", 0, "MiB memory may grow to while running (--hotplug memory; default 4×memory)")
	fs.StringVar(&f.cpu, "cpu", "", "CPU model: host, max, x86-64-v2, x86-64-v2-AES, x86-64-v3, qemu64, kvm64")
	fs.StringVar(&f.machine, "machine", "", "machine type: q35 or pc")
	fs.StringVar(&f.bios, "bios", "", "firmware: seabios or ovmf")
	fs.StringSliceVar(&f.boot, "boot", nil, "boot order, e.g. cdrom0,disk0")
	fs.StringArrayVar(&f.cdroms, "cdrom", nil, `CD-ROM drive with an ISO volume (local:iso/x.iso) or "none" (repeatable)`)
	fs.StringArrayVar(&f.nets, "net", nil, "network interface model=virtio,bridge=BR[,mac=M][,tag=VLAN][,rate=MBps][,firewall] (repeatable)")
	fs.BoolVar(&f.serial, "serial", true, "a serial port (serial0), reachable with corral vm console")
	fs.StringVar(&f.vga, "vga", "", "display: std, virtio, qxl, serial0 or none")
	fs.BoolVar(&f.onboot, "onboot", false, "start the VM when its node boots")
	fs.BoolVar(&f.protection, "protection", false, "refuse to destroy the VM")
}

func (a *cliApp) newVMCreateCmd() *cobra.Command {
	var f vmFlags
	var tf taskFlags
	var vmid int
	var disks []string
	var start bool
	cmd := &cobra.Command{
		Use:   "create [--vmid N] [--name NAME] [--memory MiB] [--disk SPEC]...",
		Short: "Create a VM",
		Long: `Create a VM on the node answering. Unset fields get the server's defaults:
the next free VMID, 1 socket with 1 core, 512 MiB, q35, SeaBIOS, CPU host
(qemu64 without KVM), std VGA and a serial port.

--disk adds a disk (repeatable), either a new volume on a pool or an existing
volume; the bus defaults to virtio:
  --disk bus=virtio,storage=local,size=10G[,format=qcow2|raw][,cache=MODE][,discard][,iothread][,readonly]
  --disk bus=scsi,volume=local:100/vm-100-disk-0.qcow2

The disks are allocated in a task; the command waits for it unless
--no-wait is given.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			wait, err := tf.waiting(fs)
			if err != nil {
				return err
			}
			in := api.VMCreate{VMID: vmid, Name: f.name, Description: f.description, Tags: f.tags,
				Cores: f.cores, Sockets: f.sockets, CPU: f.cpu, Memory: f.memory, Balloon: f.balloon,
				VCPUs: f.vcpus, MaxMemory: f.maxmemory, Hotplug: f.hotplug,
				Machine: f.machine, BIOS: f.bios, Boot: f.boot, VGA: f.vga,
				OnBoot: f.onboot, Protection: f.protection, Start: start}
			for _, spec := range disks {
				d, err := parseDiskSpec(spec)
				if err != nil {
					return err
				}
				in.Disks = append(in.Disks, d)
			}
			if len(f.cdroms) > 0 {
				in.CDROMs = cdromList(f.cdroms)
			}
			if len(f.nets) > 0 {
				if in.Nets, err = netList(f.nets); err != nil {
					return err
				}
			}
			if fs.Changed("serial") {
				in.Serial = &f.serial
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			cr, err := c.CreateVM(cmd.Context(), in)
			if err != nil {
				return err
			}
			done := "created"
			if start {
				done = "created and started"
			}
			return a.finishVMCreated(cmd.Context(), c, cr, wait, done)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&vmid, "vmid", 0, "ID of the new VM (default: the next free one)")
	f.register(fs)
	fs.StringArrayVar(&disks, "disk", nil, "disk bus=B,storage=POOL,size=SIZE or bus=B,volume=VOLID (repeatable)")
	fs.BoolVar(&start, "start", false, "start the VM once created")
	tf.register(fs)
	return cmd
}

func (a *cliApp) newVMSetCmd() *cobra.Command {
	var f vmFlags
	var revert bool
	var digest string
	cmd := &cobra.Command{
		Use:   "set VMID",
		Short: "Change a VM's config; only the given flags are changed",
		Long: `Change a VM's config; only the given flags are changed. On a running VM,
changes to the hardware (CPU, memory, machine, firmware, devices, boot
order, display) are kept pending until the VM is next started: see
"corral vm show". --revert drops the pending changes.

--cdrom and --net replace the whole list of drives or interfaces; give
--cdrom "" (or --net "") to remove them all.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, err := vmidArg(args[0])
			if err != nil {
				return err
			}
			fs := cmd.Flags()
			var u api.VMUpdate
			changed := false
			str := func(flag string, dst **string, v *string) {
				if fs.Changed(flag) {
					*dst, changed = v, true
				}
			}
			num := func(flag string, dst **int, v *int) {
				if fs.Changed(flag) {
					*dst, changed = v, true
				}
			}
			flag := func(flag string, dst **bool, v *bool) {
				if fs.Changed(flag) {
					*dst, changed = v, true
				}
			}
			str("name", &u.Name, &f.name)
			str("description", &u.Description, &f.description)
			if fs.Changed("tags") {
				u.Tags, changed = &f.tags, true
			}
			num("cores", &u.Cores, &f.cores)
			num("sockets", &u.Sockets, &f.sockets)
			str("cpu", &u.CPU, &f.cpu)
			num("memory", &u.Memory, &f.memory)
			num("balloon", &u.Balloon, &f.balloon)
			num("vcpus", &u.VCPUs, &f.vcpus)
			num("maxmemory", &u.MaxMemory, &f.maxmemory)
			if fs.Changed("hotplug") {
				h := slices.DeleteFunc(f.hotplug, func(s string) bool { return s == "" })
				u.Hotplug, changed = &h, true
			}
			str("machine", &u.Machine, &f.machine)
			str("bios", &u.BIOS, &f.bios)
			if fs.Changed("boot") {
				u.Boot, changed = &f.boot, true
			}
			if fs.Changed("cdrom") {
				l := cdromList(f.cdroms)
				u.CDROMs, changed = &l, true
			}
			if fs.Changed("net") {
				l, err := netList(f.nets)
				if err != nil {
					return err
				}
				u.Nets, changed = &l, true
			}
			flag("serial", &u.Serial, &f.serial)
			str("vga", &u.VGA, &f.vga)
			flag("onboot", &u.OnBoot, &f.onboot)
			flag("protection", &u.Protection, &f.protection)
			if revert {
				if changed {
					// The server would drop the other changes silently.
					return usageErrorf("--revert drops the pending changes; give it without other changes")
				}
				u.Revert = true
			} else if !changed {
				return usageErrorf("nothing to change: give at least one flag (see --help)")
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := c.UpdateVM(cmd.Context(), vmid, u, client.WithIfMatch(digest))
			if err != nil {
				return err
			}
			if a.output != formatTable {
				return a.printValue(v, nil)
			}
			switch {
			case revert:
				fmt.Fprintf(a.stdout, "VM %d: pending changes dropped.\n", vmid)
			case v.Pending != nil:
				fmt.Fprintf(a.stdout, "VM %d updated; changes pending until its next start (see corral vm show %d).\n", vmid, vmid)
			default:
				fmt.Fprintf(a.stdout, "VM %d updated.\n", vmid)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	f.register(fs)
	fs.BoolVar(&revert, "revert", false, "drop the pending changes")
	fs.StringVar(&digest, "digest", "", "only change the VM if its digest still matches (sent as If-Match)")
	return cmd
}

// ---- power ----

type vmActionSpec struct {
	action, short, long, done string
}

var vmActionSpecs = []vmActionSpec{
	{client.VMStart, "Start a VM", "", "started"},
	{client.VMShutdown, "Shut a VM down through ACPI",
		`Press the VM's ACPI power button and wait for the guest to power off. A
guest still running after --timeout seconds is stopped, unless --force=false,
in which case the task fails and the VM keeps running.`, "shut down"},
	{client.VMStop, "Stop a VM at once, like pulling its plug", "", "stopped"},
	{client.VMReboot, "Shut a VM down through ACPI and start it again",
		`Shut the VM down as "corral vm shutdown" does, then start it again: pending
changes apply.`, "rebooted"},
	{client.VMReset, "Reset a VM, like pressing its reset button", "", "reset"},
	{client.VMSuspend, "Pause a VM's vCPUs (the VM stays in memory)", "", "suspended"},
	{client.VMResume, "Resume a suspended VM", "", "resumed"},
}

// secondsValue is a --timeout in seconds that also takes a duration
// ("90", "90s", "2m").
type secondsValue struct{ n *int }

func (s secondsValue) String() string {
	if s.n == nil {
		return "0"
	}
	return strconv.Itoa(*s.n)
}

func (s secondsValue) Set(v string) error {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		*s.n = n
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d%time.Second != 0 {
		return fmt.Errorf("want whole seconds, e.g. 90 or 2m")
	}
	*s.n = int(d / time.Second)
	return nil
}

func (s secondsValue) Type() string { return "seconds" }

func (a *cliApp) newVMActionCmd(s vmActionSpec) *cobra.Command {
	var tf taskFlags
	var timeout int
	var force bool
	hasShutdown := s.action == client.VMShutdown || s.action == client.VMReboot
	cmd := &cobra.Command{
		Use:   s.action + " VMID",
		Short: s.short,
		Long:  s.long,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, err := vmidArg(args[0])
			if err != nil {
				return err
			}
			fs := cmd.Flags()
			wait, err := tf.waiting(fs)
			if err != nil {
				return err
			}
			var sd *api.VMShutdown
			if hasShutdown && (fs.Changed("timeout") || fs.Changed("force")) {
				sd = &api.VMShutdown{Timeout: timeout}
				if fs.Changed("force") {
					f := force
					sd.Force = &f
				}
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			upid, err := c.VMAction(cmd.Context(), vmid, s.action, sd)
			if err != nil {
				return err
			}
			return a.finishVMTask(cmd.Context(), c, vmid, upid, wait, s.done)
		},
	}
	fs := cmd.Flags()
	if hasShutdown {
		// Shadows the global request --timeout on this command.
		fs.Var(secondsValue{&timeout}, "timeout", "seconds to wait for the guest to power off (default 60)")
		fs.BoolVar(&force, "force", true, "stop the VM when the timeout passes")
	}
	tf.register(fs)
	return cmd
}

// ---- destroy ----

func (a *cliApp) newVMDestroyCmd() *cobra.Command {
	var tf taskFlags
	var purge, yes bool
	cmd := &cobra.Command{
		Use:     "destroy VMID",
		Aliases: []string{"delete"},
		Short:   "Destroy a stopped VM and free its disks",
		Long: `Destroy a stopped VM and free its disks. On a terminal the VM's ID must be
typed to confirm; otherwise --yes is required. --purge also removes the
ACL entries on the VM.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, err := vmidArg(args[0])
			if err != nil {
				return err
			}
			wait, err := tf.waiting(cmd.Flags())
			if err != nil {
				return err
			}
			interactive := !yes && a.stdinIsTerminal()
			if !yes && !interactive {
				return usageErrorf("refusing to destroy VM %d without --yes: standard input is not a terminal to confirm on", vmid)
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			if interactive {
				v, err := c.VM(cmd.Context(), vmid)
				if err != nil {
					return err
				}
				if err := confirmDestroy(a.stdin, a.stderr, v); err != nil {
					return err
				}
			}
			upid, err := c.DeleteVM(cmd.Context(), vmid, purge)
			if err != nil {
				return err
			}
			return a.finishVMTask(cmd.Context(), c, vmid, upid, wait, "destroyed")
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&purge, "purge", false, "also remove the ACL entries on the VM")
	fs.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	tf.register(fs)
	return cmd
}

// confirmDestroy says what will be destroyed and has the VM's ID typed.
func confirmDestroy(r io.Reader, w io.Writer, v *api.VM) error {
	c := v.Config
	what := fmt.Sprintf("VM %d", c.VMID)
	if c.Name != "" {
		what += " (" + c.Name + ")"
	}
	fmt.Fprintf(w, "This destroys %s", what)
	var vols []string
	for _, d := range c.Disks {
		if d.Volume != "" {
			vols = append(vols, d.Volume)
		}
	}
	if len(vols) > 0 {
		fmt.Fprintf(w, " and frees its disks %s", strings.Join(vols, ", "))
	}
	fmt.Fprintf(w, ".\nType the VM ID to confirm: ")
	line, err := readLine(r)
	if err != nil {
		return fmt.Errorf("not confirmed: %w", err)
	}
	if strings.TrimSpace(line) != strconv.Itoa(c.VMID) {
		return fmt.Errorf("not confirmed (%q is not %d); nothing destroyed", line, c.VMID)
	}
	return nil
}

// ---- console ----

// detachKey is Ctrl-], telnet's escape character.
const detachKey = 0x1d

func (a *cliApp) newVMConsoleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "console VMID",
		Short: "Attach to a running VM's serial console",
		Long: `Attach to a running VM's serial console (serial0). On a terminal, the
terminal is put in raw mode, so every key (Ctrl-C included) goes to the
guest; Ctrl-] detaches, leaving the VM running.

When standard input is not a terminal its bytes are sent as they are and
the console's output is copied to standard output, until the server closes
the connection or the command is interrupted.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, err := vmidArg(args[0])
			if err != nil {
				return err
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			conn, err := c.SerialConsole(cmd.Context(), vmid)
			if err != nil {
				return err
			}
			defer conn.Close()
			if !a.stdinIsTerminal() {
				return a.pipeConsole(cmd.Context(), conn)
			}
			fd := int(a.stdin.(*os.File).Fd())
			fmt.Fprintf(a.stderr, "Connected to the serial console of VM %d; press Ctrl-] to detach.\n", vmid)
			state, err := term.MakeRaw(fd)
			if err != nil {
				return fmt.Errorf("set the terminal to raw mode: %w", err)
			}
			detached, err := a.attachConsole(cmd.Context(), conn)
			term.Restore(fd, state)
			if detached {
				fmt.Fprintf(a.stderr, "\nDetached from VM %d.\n", vmid)
			} else if err == nil {
				fmt.Fprintf(a.stderr, "\nConsole of VM %d closed by the server.\n", vmid)
			}
			return err
		},
	}
}

// consoleOutput copies the console to standard output and reports how
// that ended: nil when the server closed the console (or ctx ended).
func (a *cliApp) consoleOutput(ctx context.Context, conn net.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(a.stdout, conn)
		if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			err = nil
		}
		done <- err
	}()
	return done
}

// pipeConsole sends standard input to the console and copies its output
// to standard output. The end of standard input is not the end of the
// session: the output is copied until the server closes the connection or
// ctx ends.
func (a *cliApp) pipeConsole(ctx context.Context, conn net.Conn) error {
	out := a.consoleOutput(ctx, conn)
	go io.Copy(conn, ctxReader{ctx, a.stdin})
	select {
	case err := <-out:
		return err
	case <-ctx.Done():
		conn.Close()
		<-out
		return nil
	}
}

// attachConsole runs an interactive session on a raw terminal until the
// user detaches (detached is true) or the server ends the console.
func (a *cliApp) attachConsole(ctx context.Context, conn net.Conn) (detached bool, err error) {
	out := a.consoleOutput(ctx, conn)
	keys := make(chan struct{})
	go func() {
		defer close(keys)
		buf := make([]byte, 4096)
		for {
			n, err := a.stdin.Read(buf)
			if i := bytes.IndexByte(buf[:n], detachKey); i >= 0 {
				conn.Write(buf[:i])
				return
			}
			if n > 0 {
				if _, werr := conn.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case err := <-out:
		return false, err
	case <-keys:
		// Detach key or the end of the terminal's input.
		conn.Close()
		<-out
		return true, nil
	case <-ctx.Done():
		conn.Close()
		<-out
		return false, nil
	}
}

// ---- templates and clones ----

func (a *cliApp) newVMTemplateCmd() *cobra.Command {
	var tf taskFlags
	cmd := &cobra.Command{
		Use:   "template VMID",
		Short: "Turn a stopped VM into a template",
		Long: `Turn a stopped VM into a template: its disks become read-only base volumes
that linked clones share. A template cannot be started; clone it instead.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, wait, c, err := a.vmTaskStart(cmd, args[0], &tf)
			if err != nil {
				return err
			}
			defer c.Close()
			upid, err := c.TemplateVM(cmd.Context(), vmid)
			if err != nil {
				return err
			}
			return a.finishVMTask(cmd.Context(), c, vmid, upid, wait, "is now a template")
		},
	}
	tf.register(cmd.Flags())
	return cmd
}

func (a *cliApp) newVMCloneCmd() *cobra.Command {
	var tf taskFlags
	var in api.VMClone
	cmd := &cobra.Command{
		Use:   "clone VMID [--newid N] [--name NAME] [--full]",
		Short: "Clone a stopped VM or a template into a new VM",
		Long: `Clone a stopped VM or a template into a new VM on the same node. Clones of
a template are linked (copy-on-write from its base volumes) where the
storage can; --full copies the disks instead. Clones of a VM are always
full copies. The clone gets new MAC addresses and a new SMBIOS UUID.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, wait, c, err := a.vmTaskStart(cmd, args[0], &tf)
			if err != nil {
				return err
			}
			defer c.Close()
			cr, err := c.CloneVM(cmd.Context(), vmid, in)
			if err != nil {
				return err
			}
			return a.finishVMCreated(cmd.Context(), c, cr, wait, fmt.Sprintf("created as a clone of VM %d", vmid))
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&in.NewID, "newid", 0, "ID of the clone (default: the next free one)")
	fs.StringVar(&in.Name, "name", "", `name of the clone (default: the source's name with "-clone")`)
	fs.BoolVar(&in.Full, "full", false, "copy the disks even when cloning a template")
	tf.register(fs)
	return cmd
}

// ---- snapshots ----

func (a *cliApp) newVMSnapshotCmd() *cobra.Command {
	cmd := newParentCmd("snapshot", "Manage a VM's snapshots", "snapshots", "snap")
	cmd.Long = `Manage a VM's snapshots. A snapshot of a running VM holds its RAM too, and
rolling back to it resumes the VM where it was; a stopped VM's snapshot
holds its disks. Snapshots form a tree: each one's parent is the snapshot
the VM derived from when it was taken.`
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list VMID",
			Short: "List a VM's snapshots as a tree",
			Args:  usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				vmid, err := vmidArg(args[0])
				if err != nil {
					return err
				}
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				snaps, err := c.VMSnapshots(cmd.Context(), vmid)
				if err != nil {
					return err
				}
				tree := snapshotTree(snaps)
				list := make([]api.VMSnapshot, len(tree))
				for i, n := range tree {
					list[i] = n.snap
				}
				depth := map[string]int{}
				for _, n := range tree {
					depth[n.snap.Name] = n.depth
				}
				return printList(a, list, []column[api.VMSnapshot]{
					{"NAME", func(s api.VMSnapshot) string { return strings.Repeat("  ", depth[s.Name]) + s.Name }},
					{"TIME", func(s api.VMSnapshot) string { return fmtTime(s.Time) }},
					{"RAM", func(s api.VMSnapshot) string { return yesNo(s.VMState) }},
					{"CURRENT", func(s api.VMSnapshot) string {
						if s.Current {
							return "yes"
						}
						return ""
					}},
					{"DESCRIPTION", func(s api.VMSnapshot) string { return s.Description }},
				})
			},
		},
		a.newVMSnapshotTaskCmd("create VMID NAME", "Take a snapshot (with RAM when the VM runs)", "take",
			func(ctx context.Context, c *client.Client, vmid int, name, description string) (string, error) {
				return c.SnapshotVM(ctx, vmid, api.VMSnapshotCreate{Name: name, Description: description})
			}),
		a.newVMSnapshotTaskCmd("rollback VMID NAME", "Return a VM to a snapshot", "rollback",
			func(ctx context.Context, c *client.Client, vmid int, name, _ string) (string, error) {
				return c.RollbackVM(ctx, vmid, name)
			}),
		a.newVMSnapshotTaskCmd("delete VMID NAME", "Delete a snapshot", "delete",
			func(ctx context.Context, c *client.Client, vmid int, name, _ string) (string, error) {
				return c.DeleteVMSnapshot(ctx, vmid, name)
			}),
	)
	return cmd
}

// newVMSnapshotTaskCmd builds the snapshot commands that start a task.
func (a *cliApp) newVMSnapshotTaskCmd(use, short, kind string, start func(ctx context.Context, c *client.Client, vmid int, name, description string) (string, error)) *cobra.Command {
	var tf taskFlags
	var description string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, wait, c, err := a.vmTaskStart(cmd, args[0], &tf)
			if err != nil {
				return err
			}
			defer c.Close()
			upid, err := start(cmd.Context(), c, vmid, args[1], description)
			if err != nil {
				return err
			}
			done := map[string]string{
				"take":     "snapshot " + args[1] + " taken",
				"rollback": "rolled back to snapshot " + args[1],
				"delete":   "snapshot " + args[1] + " deleted",
			}[kind]
			return a.finishVMTask(cmd.Context(), c, vmid, upid, wait, done)
		},
	}
	if kind == "take" {
		cmd.Flags().StringVar(&description, "description", "", "what the snapshot is for")
	}
	tf.register(cmd.Flags())
	return cmd
}

type snapshotNode struct {
	snap  api.VMSnapshot
	depth int
}

// snapshotTree orders snapshots depth-first from the roots, children
// oldest first. A snapshot whose parent is missing counts as a root.
func snapshotTree(snaps []api.VMSnapshot) []snapshotNode {
	names := map[string]bool{}
	for _, s := range snaps {
		names[s.Name] = true
	}
	children := map[string][]api.VMSnapshot{}
	for _, s := range snaps {
		p := s.Parent
		if !names[p] {
			p = ""
		}
		children[p] = append(children[p], s)
	}
	for _, l := range children {
		slices.SortFunc(l, func(x, y api.VMSnapshot) int {
			if c := x.Time.Compare(y.Time); c != 0 {
				return c
			}
			return strings.Compare(x.Name, y.Name)
		})
	}
	var out []snapshotNode
	seen := map[string]bool{}
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, s := range children[parent] {
			if seen[s.Name] { // a cycle: show each snapshot once
				continue
			}
			seen[s.Name] = true
			out = append(out, snapshotNode{s, depth})
			walk(s.Name, depth+1)
		}
	}
	walk("", 0)
	// Snapshots only reachable through a cycle.
	for _, s := range snaps {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, snapshotNode{s, 0})
		}
	}
	return out
}

// ---- disks ----

// diskArg parses a disk argument: disk0 or 0.
func diskArg(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "disk"))
	if err != nil || n < 0 || n > 29 {
		return 0, usageErrorf("invalid disk %q: want disk0 to disk29 (or just the number)", s)
	}
	return n, nil
}

func (a *cliApp) newVMResizeCmd() *cobra.Command {
	var tf taskFlags
	cmd := &cobra.Command{
		Use:   "resize VMID DISK SIZE",
		Short: "Grow a VM's disk to SIZE, or by +SIZE",
		Long: `Grow a VM's disk (disk0, disk1, ...) to SIZE, or by +SIZE, with a K, M, G or
T suffix (binary units). A running VM's disk grows live: the guest sees the
new size at once, though its partitions and filesystems need growing too.`,
		Args: usageArgs(cobra.ExactArgs(3)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, err := vmidArg(args[0])
			if err != nil {
				return err
			}
			disk, err := diskArg(args[1])
			if err != nil {
				return err
			}
			wait, err := tf.waiting(cmd.Flags())
			if err != nil {
				return err
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			upid, err := c.ResizeVMDisk(cmd.Context(), vmid, disk, sizeArg(args[2]))
			if err != nil {
				return err
			}
			return a.finishVMTask(cmd.Context(), c, vmid, upid, wait, fmt.Sprintf("disk%d resized", disk))
		},
	}
	tf.register(cmd.Flags())
	return cmd
}

func (a *cliApp) newVMMoveDiskCmd() *cobra.Command {
	var tf taskFlags
	var in api.VMDiskMove
	cmd := &cobra.Command{
		Use:   "move-disk VMID DISK STORAGE",
		Short: "Move a stopped VM's disk to another pool",
		Long: `Move a stopped VM's disk (disk0, disk1, ...) to another pool, converting it
to --format if given. The source volume is kept unless --delete.`,
		Args: usageArgs(cobra.ExactArgs(3)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, err := vmidArg(args[0])
			if err != nil {
				return err
			}
			disk, err := diskArg(args[1])
			if err != nil {
				return err
			}
			wait, err := tf.waiting(cmd.Flags())
			if err != nil {
				return err
			}
			in.Storage = args[2]
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			upid, err := c.MoveVMDisk(cmd.Context(), vmid, disk, in)
			if err != nil {
				return err
			}
			return a.finishVMTask(cmd.Context(), c, vmid, upid, wait, fmt.Sprintf("disk%d moved to %s", disk, in.Storage))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&in.Format, "format", "", "format of the new volume: raw or qcow2 (default: the pool's)")
	fs.BoolVar(&in.Delete, "delete", false, "free the source volume once moved")
	tf.register(fs)
	return cmd
}

// ---- VNC ----

// vncTicketTTL is how long a VNC ticket is used after it was issued; the
// server accepts it for 60 seconds.
const vncTicketTTL = 45 * time.Second

func (a *cliApp) newVMVNCCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "vnc VMID [--listen ADDR]",
		Short: "Forward a local port to a VM's display, for a VNC viewer",
		Long: `Listen on a local TCP port and forward every connection to a running VM's
display, so that any VNC viewer can show it. Each connection is its own VNC
session with a one-time password, printed when the viewer connects (the
viewer asks for it). Runs until interrupted.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			vmid, err := vmidArg(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			// Fails early for a VM without a display; the ticket serves
			// the first viewer if it comes soon.
			first, err := c.VNCProxy(ctx, vmid)
			if err != nil {
				return err
			}
			firstAt := a.now()
			var lc net.ListenConfig
			ln, err := lc.Listen(ctx, "tcp", listen)
			if err != nil {
				return err
			}
			defer ln.Close()
			go func() {
				<-ctx.Done()
				ln.Close()
			}()
			var mu sync.Mutex // a.stdout and a.stderr
			say := func(w io.Writer, format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintf(w, format, args...)
			}
			say(a.stdout, "Forwarding %s to the display of VM %d; point a VNC viewer there. Interrupt to stop.\n", ln.Addr(), vmid)
			var wg sync.WaitGroup
			defer wg.Wait()
			for {
				local, err := ln.Accept()
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				tk := first
				if tk == nil || a.now().Sub(firstAt) > vncTicketTTL {
					if tk, err = c.VNCProxy(ctx, vmid); err != nil {
						local.Close()
						say(a.stderr, "Viewer from %s: %v\n", local.RemoteAddr(), err)
						continue
					}
				}
				first = nil
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer local.Close()
					remote, err := c.VNCConsole(ctx, vmid, tk.Ticket)
					if err != nil {
						say(a.stderr, "Viewer from %s: %v\n", local.RemoteAddr(), err)
						return
					}
					defer remote.Close()
					say(a.stdout, "Viewer connected from %s; VNC password: %s\n", local.RemoteAddr(), tk.Password)
					proxy(local, remote)
					say(a.stdout, "Viewer from %s disconnected.\n", local.RemoteAddr())
				}()
			}
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "local address to listen on (port 0: any free port)")
	return cmd
}

// proxy copies both ways until either side ends, then closes both.
func proxy(x, y net.Conn) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(x, y); done <- struct{}{} }()
	go func() { io.Copy(y, x); done <- struct{}{} }()
	<-done
	x.Close()
	y.Close()
	<-done
}

// vcpuText shows the vCPUs online, blank when all are (the default).
func vcpuText(c *api.VMConfig) string {
	if c.VCPUs == 0 {
		return ""
	}
	return strconv.Itoa(c.VCPUs)
}
