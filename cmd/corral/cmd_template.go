package main

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

func (a *cliApp) newTemplateCmd() *cobra.Command {
	cmd := newParentCmd("template", "Manage container templates (vztmpl content)", "templates")
	cmd.Long = `Container templates are root filesystem archives (.tar.gz, .tar.xz,
.tar.zst) stored as vztmpl content on a pool; "corral ct create
--ostemplate STORAGE:vztmpl/FILE" unpacks one into a new container.`
	cmd.AddCommand(a.newTemplateBuildCmd(), a.newTemplateListCmd(), a.newTemplateDownloadCmd(), a.newTemplateAvailableCmd(), a.newTemplateRemoveCmd())
	return cmd
}

// templateTarget is the --node/--storage pair of the template commands.
type templateTarget struct{ node, storage string }

func (t *templateTarget) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.node, "node", "", "node (default: the only node)")
	cmd.Flags().StringVar(&t.storage, "storage", "local", "pool holding the templates")
}

func (a *cliApp) newTemplateBuildCmd() *cobra.Command {
	var t templateTarget
	var tf taskFlags
	var in api.TemplateBuild
	cmd := &cobra.Command{
		Use:   "build busybox|debian [--filename NAME] [--storage POOL]",
		Short: "Build a template on a node: a tiny busybox system, or Debian 12 minbase (debootstrap)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			in.Kind = args[0]
			if in.Kind != "busybox" && in.Kind != "debian" {
				return usageErrorf("unknown template kind %q: want busybox or debian", in.Kind)
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
			node, err := resolveNode(cmd.Context(), c, t.node)
			if err != nil {
				return err
			}
			upid, err := c.BuildTemplate(cmd.Context(), node, t.storage, in)
			if err != nil {
				return err
			}
			return a.finishTask(cmd, c, upid, wait, "Template built.")
		},
	}
	t.register(cmd)
	cmd.Flags().StringVar(&in.Filename, "filename", "", "file name (default <kind>-<release>-amd64.tar.gz)")
	cmd.Flags().StringVar(&in.Mirror, "mirror", "", "debian: archive mirror (default: the node's apt mirror)")
	tf.register(cmd.Flags())
	return cmd
}

// finishTask waits for a task (unless --no-wait) and reports it.
func (a *cliApp) finishTask(cmd *cobra.Command, c *client.Client, upid string, wait bool, done string) error {
	if !wait {
		fmt.Fprintln(a.stdout, upid)
		return nil
	}
	tk, err := c.WaitTask(cmd.Context(), upid)
	if err != nil {
		return err
	}
	if tk.Status != api.TaskOK {
		return &exitCodeError{code: exitError, err: fmt.Errorf("task %s %s: %s", upid, tk.Status, tk.ExitMsg)}
	}
	fmt.Fprintln(a.stdout, done)
	return nil
}

func (a *cliApp) newTemplateListCmd() *cobra.Command {
	var t templateTarget
	cmd := &cobra.Command{
		Use:   "list [--storage POOL]",
		Short: "List the templates on a pool",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			node, err := resolveNode(cmd.Context(), c, t.node)
			if err != nil {
				return err
			}
			vols, err := c.Content(cmd.Context(), node, t.storage, api.ContentVZTmpl, 0)
			if err != nil {
				return err
			}
			return printList(a, vols, []column[api.Volume]{
				{"VOLID", func(v api.Volume) string { return v.VolID }},
				{"SIZE", func(v api.Volume) string { return fmtBytes(v.Size) }},
				{"CREATED", func(v api.Volume) string { return fmtTime(v.CTime) }},
			})
		},
	}
	t.register(cmd)
	return cmd
}

func (a *cliApp) newTemplateDownloadCmd() *cobra.Command {
	var t templateTarget
	var tf taskFlags
	var in api.TemplateDownload
	cmd := &cobra.Command{
		Use:   "download NAME|URL [--server URL] [--sha256 HEX] [--filename NAME]",
		Short: "Download a template: a simplestreams image (images:debian/12) or an http(s) URL",
		Long: `Download a template into a pool. NAME is an image of a simplestreams server
("images:debian/12", "alpine/3.20"; see "corral template available"), verified
against the SHA-256 the server publishes. A URL is fetched as it is,
verified against --sha256 when given.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if u, err := url.Parse(args[0]); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
				in.URL = args[0]
			} else {
				in.Name = args[0]
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
			node, err := resolveNode(cmd.Context(), c, t.node)
			if err != nil {
				return err
			}
			upid, err := c.DownloadTemplate(cmd.Context(), node, t.storage, in)
			if err != nil {
				return err
			}
			return a.finishTask(cmd, c, upid, wait, "Template stored (corral template list).")
		},
	}
	t.register(cmd)
	cmd.Flags().StringVar(&in.Server, "server", "", "simplestreams server (default: the node's image_server)")
	cmd.Flags().StringVar(&in.Filename, "filename", "", "file name in the pool")
	cmd.Flags().StringVar(&in.SHA256, "sha256", "", "expected SHA-256 (URLs)")
	tf.register(cmd.Flags())
	return cmd
}

func (a *cliApp) newTemplateAvailableCmd() *cobra.Command {
	var server string
	cmd := &cobra.Command{
		Use:   "available [--server URL]",
		Short: "List the images a simplestreams server offers",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			list, err := c.AvailableTemplates(cmd.Context(), server)
			if err != nil {
				return err
			}
			return printList(a, list, []column[api.AvailableTemplate]{
				{"NAME", func(v api.AvailableTemplate) string { return "images:" + v.Name }},
				{"VERSION", func(v api.AvailableTemplate) string { return v.Version }},
				{"SIZE", func(v api.AvailableTemplate) string { return fmtBytes(uint64(v.Size)) }},
				{"FILE", func(v api.AvailableTemplate) string { return v.Filename }},
			})
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "simplestreams server (default: the node's image_server)")
	return cmd
}

func (a *cliApp) newTemplateRemoveCmd() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:     "remove STORAGE:vztmpl/FILE",
		Aliases: []string{"rm", "delete"},
		Short:   "Remove a template from its pool",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name, ok := client.SplitVolID(args[0])
			if !ok {
				return usageErrorf("invalid template %q: want STORAGE:vztmpl/FILE", args[0])
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			node, err := resolveNode(cmd.Context(), c, node)
			if err != nil {
				return err
			}
			if err := c.FreeVolume(cmd.Context(), node, pool, name, false); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Template %s removed.\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "node (default: the only node)")
	return cmd
}
