package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/corral-project/corral/api"
)

func (a *cliApp) newTopCmd() *cobra.Command {
	var (
		sortBy     string
		interval   time.Duration
		iterations int
		limit      int
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live view of nodes and guests by CPU or memory",
		Long: `Show the nodes and the running guests you may see, refreshed every interval,
busiest first. On a terminal the screen is redrawn; otherwise (or with
--iterations) each refresh is printed below the last.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sortBy != "cpu" && sortBy != "mem" {
				return usageErrorf("--sort must be cpu or mem")
			}
			if interval < 100*time.Millisecond {
				return usageErrorf("--interval must be at least 100ms")
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			f, isFile := a.stdout.(*os.File)
			redraw := isFile && term.IsTerminal(int(f.Fd())) && a.output == "table"
			for i := 0; iterations == 0 || i < iterations; i++ {
				if i > 0 {
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(interval):
					}
				}
				cur, err := c.MetricsCurrent(ctx)
				if err != nil {
					return err
				}
				if a.output != "table" {
					b, _ := json.Marshal(cur)
					fmt.Fprintf(a.stdout, "%s\n", b)
					continue
				}
				if redraw {
					fmt.Fprint(a.stdout, "\x1b[H\x1b[2J")
				} else if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				a.printTop(cur, sortBy, limit)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&sortBy, "sort", "cpu", "order guests by cpu or mem")
	fs.DurationVar(&interval, "interval", 2*time.Second, "refresh interval")
	fs.IntVarP(&iterations, "iterations", "n", 0, "stop after this many refreshes (0: until interrupted)")
	fs.IntVar(&limit, "limit", 0, "show at most this many guests (0: all)")
	return cmd
}

func pct(v float64) string { return strconv.FormatFloat(v*100, 'f', 1, 64) + "%" }

func rateStr(v float64) string { return fmtBytes(uint64(v)) + "/s" }

func (a *cliApp) printTop(cur api.MetricsCurrent, sortBy string, limit int) {
	tw := newTabWriter(a.stdout)
	fmt.Fprintln(tw, "NODE\tCPU\tCPUS\tLOAD\tMEM\tSWAP\tROOT\tNET IN\tNET OUT")
	for _, n := range cur.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f %.2f %.2f\t%s/%s\t%s/%s\t%s/%s\t%s\t%s\n", n.Node, pct(n.CPU), n.CPUs, n.Load[0], n.Load[1], n.Load[2],
			fmtBytes(n.MemUsed), fmtBytes(n.MemTotal), fmtBytes(n.SwapUsed), fmtBytes(n.SwapTotal), fmtBytes(n.RootUsed), fmtBytes(n.RootTotal),
			rateStr(n.NetIn), rateStr(n.NetOut))
	}
	tw.Flush()
	fmt.Fprintln(a.stdout)
	gs := slices.Clone(cur.Guests)
	slices.SortStableFunc(gs, func(x, y api.GuestMetrics) int {
		if sortBy == "mem" {
			return cmpDesc(float64(x.Mem), float64(y.Mem))
		}
		return cmpDesc(x.CPU, y.CPU)
	})
	if limit > 0 && len(gs) > limit {
		gs = gs[:limit]
	}
	tw = newTabWriter(a.stdout)
	fmt.Fprintln(tw, "VMID\tNAME\tTYPE\tNODE\tCPU\tMEM\tMAXMEM\tDISK R\tDISK W\tNET IN\tNET OUT")
	for _, g := range gs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.VMID, g.Name, g.Type, g.Node, pct(g.CPU), fmtBytes(g.Mem), fmtBytes(g.MaxMem),
			rateStr(g.DiskRead), rateStr(g.DiskWrite), rateStr(g.NetIn), rateStr(g.NetOut))
	}
	tw.Flush()
}

func cmpDesc(x, y float64) int {
	switch {
	case x > y:
		return -1
	case x < y:
		return 1
	}
	return 0
}
