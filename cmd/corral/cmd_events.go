package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

func (a *cliApp) newEventsCmd() *cobra.Command {
	var o client.EventsOptions
	var count int
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Follow the cluster's event stream",
		Long: `Follow the cluster's events (guest state and config changes, tasks, nodes,
storage, network) as they happen, limited to what you may see. The stream
reconnects by itself and resumes where it stopped. --output json prints one
event per line.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 0 {
				return usageErrorf("--count must not be negative")
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			seen := 0
			print := func(e api.Event) (bool, error) {
				if a.output == "table" {
					fmt.Fprintln(a.stdout, eventLine(e))
				} else {
					b, _ := json.Marshal(e)
					fmt.Fprintf(a.stdout, "%s\n", b)
				}
				seen++
				return count > 0 && seen >= count, nil
			}
			for {
				last, err := c.Events(ctx, o, print)
				if count > 0 && seen >= count {
					return nil
				}
				if ctx.Err() != nil {
					return nil
				}
				var p *api.Problem
				if errors.As(err, &p) {
					return err // refused: retrying won't help
				}
				// The server ended the stream (restart, slow reader): resume.
				o.LastEventID = last
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		},
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&o.Types, "type", nil, "only these event types or families (guest, task, node, storage.changed, ...); repeatable")
	fs.IntVar(&o.VMID, "vmid", 0, "only events about this guest")
	fs.StringVar(&o.LastEventID, "after", "", "start after this event ID (replays what is still in the server's window)")
	fs.IntVar(&count, "count", 0, "exit after this many events (0: follow until interrupted)")
	return cmd
}

// eventLine is one event as a human-readable line.
func eventLine(e api.Event) string {
	var parts []string
	add := func(k, v string) {
		if v != "" && v != "0" {
			parts = append(parts, k+"="+v)
		}
	}
	add("node", e.Node)
	add("vmid", strconv.Itoa(e.VMID))
	add("name", e.Name)
	if e.Previous != "" && e.Status != "" {
		parts = append(parts, "status="+e.Previous+"->"+e.Status)
	} else {
		add("status", e.Status)
	}
	add("storage", e.Storage)
	add("object", e.Object)
	add("digest", e.Digest)
	if e.Task != nil {
		add("task", e.Task.ID)
		add("exit", e.Task.ExitMsg)
	}
	if e.Deleted {
		parts = append(parts, "deleted")
	}
	ts := e.Time.Local().Format("15:04:05")
	return fmt.Sprintf("%s %-10s %-16s %s", ts, e.ID, e.Type, strings.Join(parts, " "))
}
