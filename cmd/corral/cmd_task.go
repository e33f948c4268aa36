package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

func (a *cliApp) newTaskCmd() *cobra.Command {
	cmd := newParentCmd("task", "Inspect and stop tasks", "tasks")
	cmd.AddCommand(a.newTaskListCmd(), a.newTaskShowCmd(), a.newTaskLogCmd(), a.newTaskStopCmd())
	return cmd
}

func (a *cliApp) newTaskListCmd() *cobra.Command {
	var f client.TaskFilter
	var since string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tasks",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if since != "" {
				t, err := parseSince(since, a.now())
				if err != nil {
					return usageErrorf("--since: %v", err)
				}
				f.Since = t
			}
			if f.Limit < 0 {
				return usageErrorf("--limit must not be negative")
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			tasks, err := c.Tasks(cmd.Context(), f)
			if err != nil {
				return err
			}
			return printList(a, tasks, []column[api.Task]{
				{"UPID", func(t api.Task) string { return t.ID }},
				{"NODE", func(t api.Task) string { return t.Node }},
				{"TYPE", func(t api.Task) string { return t.Type }},
				{"TARGET", func(t api.Task) string { return t.Target }},
				{"USER", func(t api.Task) string { return t.User }},
				{"STATUS", func(t api.Task) string { return t.Status }},
				{"STARTED", func(t api.Task) string { return fmtTime(t.StartTime) }},
				{"DURATION", func(t api.Task) string { return taskDuration(t, a.now()) }},
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.Node, "node", "", "only tasks of this node")
	fs.StringVar(&f.User, "user", "", "only tasks of this user")
	fs.StringVar(&f.Type, "type", "", "only tasks of this type")
	fs.StringVar(&f.Status, "status", "", "only tasks in this state: running, ok, failed, stopped")
	fs.StringVar(&since, "since", "", "only tasks started since: RFC 3339 time or a duration ago such as 1h")
	fs.IntVar(&f.Limit, "limit", 0, "at most this many tasks (0: server default)")
	return cmd
}

// parseSince accepts an absolute time or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("negative duration %q", s)
		}
		return now.Add(-d), nil
	}
	t, err := parseTimeArg(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration nor a time", s)
	}
	return t, nil
}

func taskDuration(t api.Task, now time.Time) string {
	end := now
	if t.EndTime != nil {
		end = *t.EndTime
	}
	if t.StartTime.IsZero() || end.Before(t.StartTime) {
		return ""
	}
	return end.Sub(t.StartTime).Round(time.Second).String()
}

func (a *cliApp) newTaskShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show UPID",
		Short: "Show one task",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			t, err := c.Task(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printObject(t, []kvField{
				{"upid", t.ID},
				{"node", t.Node},
				{"type", t.Type},
				{"target", t.Target},
				{"user", t.User},
				{"status", t.Status},
				{"exit_message", t.ExitMsg},
				{"start_time", fmtTime(t.StartTime)},
				{"end_time", fmtTimePtr(t.EndTime)},
				{"duration", taskDuration(*t, a.now())},
			})
		},
	}
}

func (a *cliApp) newTaskLogCmd() *cobra.Command {
	var follow bool
	var start, limit int
	cmd := &cobra.Command{
		Use:   "log UPID",
		Short: "Print a task's log",
		Long: `Print a task's log. With -f, follow it until the task ends; the exit
status is then 0 only if the task ended ok.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			if !follow {
				lines, err := c.TaskLog(cmd.Context(), args[0], start, limit)
				if err != nil {
					return err
				}
				if lines == nil {
					lines = []api.TaskLogLine{}
				}
				if a.output != formatTable {
					return a.printValue(lines, nil)
				}
				for _, l := range lines {
					fmt.Fprintln(a.stdout, l.Text)
				}
				return nil
			}
			return a.followTaskLog(cmd, c, args[0])
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log until the task ends")
	cmd.Flags().IntVar(&start, "start", 0, "first line to print")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many lines (0: server default)")
	return cmd
}

// followTaskLog streams the log. In table mode lines are printed as text;
// in json and yaml mode each line is one compact JSON object (NDJSON), so
// the stream stays machine-readable while it is live.
func (a *cliApp) followTaskLog(cmd *cobra.Command, c *client.Client, upid string) error {
	task, err := c.FollowTaskLog(cmd.Context(), upid, func(l api.TaskLogLine) {
		if a.output == formatTable {
			fmt.Fprintln(a.stdout, l.Text)
			return
		}
		data, _ := json.Marshal(l)
		fmt.Fprintf(a.stdout, "%s\n", data)
	})
	if err != nil {
		return err
	}
	switch task.Status {
	case api.TaskOK:
		fmt.Fprintf(a.stderr, "Task %s finished: ok\n", upid)
		return nil
	default:
		msg := task.ExitMsg
		if msg == "" {
			msg = task.Status
		}
		return &exitCodeError{code: exitError, err: fmt.Errorf("task %s %s: %s", upid, task.Status, msg)}
	}
}

func (a *cliApp) newTaskStopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stop UPID",
		Short: "Stop a running task",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.StopTask(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Task %s stopped.\n", args[0])
			return nil
		},
	}
}
