package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/api"
)

func (a *cliApp) newNodeCmd() *cobra.Command {
	cmd := newParentCmd("node", "Show cluster nodes", "nodes")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List cluster nodes",
			Args:  usageArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				nodes, err := c.Nodes(cmd.Context())
				if err != nil {
					return err
				}
				return printList(a, nodes, []column[api.Node]{
					{"NODE", func(n api.Node) string { return n.Node }},
					{"STATUS", func(n api.Node) string {
						if n.Online {
							return "online"
						}
						return "offline"
					}},
					{"ADDRESS", func(n api.Node) string { return n.Address }},
					{"VERSION", func(n api.Node) string { return n.Version }},
					{"SEEN", func(n api.Node) string { return fmtTime(n.Seen) }},
				})
			},
		},
		&cobra.Command{
			Use:   "status NODE",
			Short: "Show a node's status and virtualization capabilities",
			Args:  usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				s, err := c.NodeStatus(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return a.printObject(s, nodeStatusFields(s))
			},
		},
	)
	return cmd
}

func nodeStatusFields(s *api.NodeStatus) []kvField {
	cpu := fmt.Sprintf("%d", s.CPUs)
	if s.CPUModel != "" {
		cpu += " x " + s.CPUModel
	}
	return []kvField{
		{"node", s.Node},
		{"kernel", s.Kernel},
		{"cpus", cpu},
		{"load", fmt.Sprintf("%.2f %.2f %.2f", s.Load[0], s.Load[1], s.Load[2])},
		{"uptime", fmtDuration(s.Uptime)},
		{"memory", fmtUsage(s.Memory.Used, s.Memory.Total)},
		{"swap", fmtUsage(s.Swap.Used, s.Swap.Total)},
		{"rootfs", fmtUsage(s.RootFS.Used, s.RootFS.Total)},
		{"kvm", fmtCapability(s.KVM)},
		{"qemu", fmtCapability(s.QEMU)},
		{"lxc", fmtCapability(s.LXC)},
		{"time", fmtTime(s.Time)},
	}
}

// fmtCapability says in one cell whether a feature works and, if not, why.
func fmtCapability(c api.Capability) string {
	parts := []string{"unavailable"}
	if c.Available {
		parts[0] = "available"
	}
	if c.Version != "" {
		parts = append(parts, c.Version)
	}
	s := strings.Join(parts, " ")
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}
