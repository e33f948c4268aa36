package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

func (a *cliApp) newStorageCmd() *cobra.Command {
	cmd := newParentCmd("storage", "Manage storage pools and volumes")
	cmd.Long = `Manage storage pools and the volumes on them.

Pool definitions (list, show, add, set, remove) are cluster-wide. Everything
else acts on one node's view of a pool: --node names that node and defaults
to the only node of a single-node cluster. Volumes are named by their volume
ID, <storage>:<name>, e.g. local:100/vm-100-disk-0.qcow2 or local:iso/debian.iso.`
	cmd.AddCommand(
		a.newStorageListCmd(),
		a.newStorageShowCmd(),
		a.newStorageAddCmd(),
		a.newStorageSetCmd(),
		a.newStorageRemoveCmd(),
		a.newStorageStatusCmd(),
		a.newStorageContentCmd(),
		a.newStorageAllocCmd(),
		a.newStorageFreeCmd(),
		a.newStorageResizeCmd(),
		a.newStorageCloneCmd(),
		a.newStorageUploadCmd(),
		a.newStorageDownloadCmd(),
	)
	return cmd
}

// ---- helpers ----

// resolveNode returns node, or when it is empty the node to ask: the only
// node of the cluster. With several nodes the CLI cannot know which one
// answers at the server address, so it asks for --node.
func resolveNode(ctx context.Context, c *client.Client, node string) (string, error) {
	if node != "" {
		return node, nil
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return "", fmt.Errorf("find the node to ask (give --node to skip this): %w", err)
	}
	switch len(nodes) {
	case 1:
		return nodes[0].Node, nil
	case 0:
		return "", usageErrorf("--node is required: no cluster node is visible to you (listing nodes needs Sys.Audit on /nodes/<node>), so the node answering at %s is unknown", c.Server())
	}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Node
	}
	return "", usageErrorf("--node is required: the cluster has %d nodes (%s) and this command acts on one node's view of the pool; give the node answering at %s",
		len(nodes), strings.Join(names, ", "), c.Server())
}

// volIDArg splits a VOLID argument into storage and volume name.
func volIDArg(s string) (storage, name string, err error) {
	storage, name, ok := client.SplitVolID(s)
	if !ok {
		return "", "", usageErrorf("invalid volume ID %q: want STORAGE:VOLUME, e.g. local:100/vm-100-disk-0.qcow2", s)
	}
	return storage, name, nil
}

// sizeArg accepts the lower-case unit suffixes people type ("10g") for the
// API's upper-case ones.
func sizeArg(s string) string {
	if n := len(s); n > 0 && strings.ContainsRune("kmgt", rune(s[n-1])) {
		return s[:n-1] + strings.ToUpper(s[n-1:])
	}
	return s
}

func storageLocation(s api.Storage) string {
	switch {
	case s.Path != "":
		return s.Path
	case s.Portal != "" || s.Target != "":
		return strings.Trim(s.Portal+" "+s.Target, " ")
	}
	return ""
}

func nodesText(nodes []string) string {
	if len(nodes) == 0 {
		return "all"
	}
	return strings.Join(nodes, ",")
}

func volumeColumns() []column[api.Volume] {
	return []column[api.Volume]{
		{"VOLID", func(v api.Volume) string { return v.VolID }},
		{"CONTENT", func(v api.Volume) string { return v.Content }},
		{"FORMAT", func(v api.Volume) string { return v.Format }},
		{"SIZE", func(v api.Volume) string { return fmtBytes(v.Size) }},
		{"USED", func(v api.Volume) string { return fmtOptBytes(v.Used) }},
		{"VMID", func(v api.Volume) string { return fmtOptInt(v.VMID) }},
		{"PARENT", func(v api.Volume) string { return v.Parent }},
		{"CREATED", func(v api.Volume) string { return fmtTime(v.CTime) }},
	}
}

func volumeFields(v *api.Volume) []kvField {
	return []kvField{
		{"volid", v.VolID},
		{"content", v.Content},
		{"format", v.Format},
		{"size", fmtBytes(v.Size)},
		{"used", fmtOptBytes(v.Used)},
		{"vmid", fmtOptInt(v.VMID)},
		{"parent", v.Parent},
		{"created", fmtTime(v.CTime)},
	}
}

func fmtOptBytes(n uint64) string {
	if n == 0 {
		return ""
	}
	return fmtBytes(n)
}

func fmtOptInt(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// ---- pool definitions ----

func (a *cliApp) newStorageListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List storage pool definitions",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			pools, err := c.Storages(cmd.Context())
			if err != nil {
				return err
			}
			return printList(a, pools, []column[api.Storage]{
				{"STORAGE", func(s api.Storage) string { return s.Storage }},
				{"TYPE", func(s api.Storage) string { return s.Type }},
				{"CONTENT", func(s api.Storage) string { return strings.Join(s.Content, ",") }},
				{"NODES", func(s api.Storage) string { return nodesText(s.Nodes) }},
				{"SHARED", func(s api.Storage) string { return yesNo(s.Shared) }},
				{"ENABLED", func(s api.Storage) string { return yesNo(!s.Disable) }},
				{"LOCATION", func(s api.Storage) string { return storageLocation(s) }},
				{"COMMENT", func(s api.Storage) string { return s.Comment }},
			})
		},
	}
}

func (a *cliApp) newStorageShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one storage pool definition",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			s, err := c.Storage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printObject(s, []kvField{
				{"storage", s.Storage},
				{"type", s.Type},
				{"content", strings.Join(s.Content, ",")},
				{"nodes", nodesText(s.Nodes)},
				{"shared", yesNo(s.Shared)},
				{"enabled", yesNo(!s.Disable)},
				{"path", s.Path},
				{"portal", s.Portal},
				{"target", s.Target},
				{"comment", s.Comment},
				{"digest", s.Digest},
			})
		},
	}
}

func (a *cliApp) newStorageAddCmd() *cobra.Command {
	var s api.Storage
	cmd := &cobra.Command{
		Use:   "add ID --type dir|btrfs|iscsi --content TYPES",
		Short: "Define a storage pool",
		Long: `Define a storage pool. dir and btrfs pools need --path, a mounted directory;
iscsi pools need --portal and --target. Content types are images, rootdir,
iso, vztmpl, backup and snippets.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			if !fs.Changed("type") || !fs.Changed("content") {
				return usageErrorf("--type and --content are required")
			}
			s.Storage = args[0]
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.CreateStorage(cmd.Context(), s); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Storage %s created.\n", args[0])
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&s.Type, "type", "", "storage type: dir, btrfs or iscsi")
	fs.StringSliceVar(&s.Content, "content", nil, "content types (comma-separated or repeated): images, rootdir, iso, vztmpl, backup, snippets")
	fs.StringVar(&s.Path, "path", "", "dir, btrfs: mounted directory")
	fs.StringVar(&s.Portal, "portal", "", "iscsi: portal host[:port]")
	fs.StringVar(&s.Target, "target", "", "iscsi: target IQN")
	fs.StringSliceVar(&s.Nodes, "nodes", nil, "nodes where the pool exists (default: all)")
	fs.BoolVar(&s.Shared, "shared", false, "the same data is reachable from every node")
	fs.BoolVar(&s.Disable, "disable", false, "define the pool disabled")
	fs.StringVar(&s.Comment, "comment", "", "comment")
	return cmd
}

func (a *cliApp) newStorageSetCmd() *cobra.Command {
	var content, nodes []string
	var shared, disable bool
	var comment, digest string
	cmd := &cobra.Command{
		Use:   "set ID",
		Short: "Change a storage pool definition; only the given flags are changed",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			var u api.StorageUpdate
			changed := false
			if fs.Changed("content") {
				u.Content, changed = &content, true
			}
			if fs.Changed("nodes") {
				u.Nodes, changed = &nodes, true
			}
			if fs.Changed("shared") {
				u.Shared, changed = &shared, true
			}
			if fs.Changed("disable") {
				u.Disable, changed = &disable, true
			}
			if fs.Changed("comment") {
				u.Comment, changed = &comment, true
			}
			if !changed {
				return usageErrorf("nothing to change: give at least one of --content, --nodes, --shared, --disable, --comment")
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.UpdateStorage(cmd.Context(), args[0], u, client.WithIfMatch(digest)); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Storage %s updated.\n", args[0])
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&content, "content", nil, "content types (comma-separated or repeated)")
	fs.StringSliceVar(&nodes, "nodes", nil, `nodes where the pool exists ("" for all)`)
	fs.BoolVar(&shared, "shared", false, "the same data is reachable from every node")
	fs.BoolVar(&disable, "disable", false, "disable (--disable) or enable (--disable=false) the pool")
	fs.StringVar(&comment, "comment", "", "comment")
	fs.StringVar(&digest, "digest", "", "only change the pool if its digest still matches (sent as If-Match)")
	return cmd
}

func (a *cliApp) newStorageRemoveCmd() *cobra.Command {
	var force bool
	var digest string
	cmd := &cobra.Command{
		Use:     "remove ID",
		Aliases: []string{"delete"},
		Short:   "Remove a storage pool definition (the data on it is kept)",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.DeleteStorage(cmd.Context(), args[0], force, client.WithIfMatch(digest)); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Storage %s removed.\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove the definition even though guest volumes remain on the pool")
	cmd.Flags().StringVar(&digest, "digest", "", "only remove the pool if its digest still matches (sent as If-Match)")
	return cmd
}

// ---- pools on a node ----

func (a *cliApp) newStorageStatusCmd() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "status [ID]",
		Short: "Show the state of storage pools on a node",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			node, err := resolveNode(cmd.Context(), c, node)
			if err != nil {
				return err
			}
			var list []api.StorageStatus
			if len(args) == 1 {
				s, err := c.StorageStatus(cmd.Context(), node, args[0])
				if err != nil {
					return err
				}
				if a.output != formatTable {
					return a.printValue(s, nil)
				}
				list = []api.StorageStatus{*s}
			} else if list, err = c.NodeStorage(cmd.Context(), node); err != nil {
				return err
			}
			return printList(a, list, []column[api.StorageStatus]{
				{"STORAGE", func(s api.StorageStatus) string { return s.Storage }},
				{"TYPE", func(s api.StorageStatus) string { return s.Type }},
				{"ACTIVE", func(s api.StorageStatus) string { return yesNo(s.Active) }},
				{"USED", func(s api.StorageStatus) string { return fmtUsage(s.Used, s.Total) }},
				{"AVAIL", func(s api.StorageStatus) string {
					if !s.Active {
						return ""
					}
					return fmtBytes(s.Avail)
				}},
				{"CONTENT", func(s api.StorageStatus) string { return strings.Join(s.Content, ",") }},
				{"REASON", func(s api.StorageStatus) string { return s.Reason }},
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "node whose view to show (default: the only node)")
	return cmd
}

func (a *cliApp) newStorageContentCmd() *cobra.Command {
	var node, content string
	var vmid int
	cmd := &cobra.Command{
		Use:   "content ID",
		Short: "List the volumes on a pool",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if vmid < 0 {
				return usageErrorf("--vmid must not be negative")
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
			vols, err := c.Content(cmd.Context(), node, args[0], content, vmid)
			if err != nil {
				return err
			}
			return printList(a, vols, volumeColumns())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&node, "node", "", "node whose view to list (default: the only node)")
	fs.StringVar(&content, "content", "", "only this content type: images, rootdir, iso, vztmpl, backup, snippets")
	fs.IntVar(&vmid, "vmid", 0, "only volumes of this guest")
	return cmd
}

func (a *cliApp) newStorageAllocCmd() *cobra.Command {
	var node string
	var v api.VolumeCreate
	cmd := &cobra.Command{
		Use:   "alloc ID --vmid N --size SIZE",
		Short: "Allocate a guest volume",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			if !fs.Changed("vmid") || !fs.Changed("size") {
				return usageErrorf("--vmid and --size are required")
			}
			v.Size = sizeArg(v.Size)
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			node, err := resolveNode(cmd.Context(), c, node)
			if err != nil {
				return err
			}
			vol, err := c.AllocVolume(cmd.Context(), node, args[0], v)
			if err != nil {
				return err
			}
			return a.printObject(vol, volumeFields(vol))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&node, "node", "", "node to allocate on (default: the only node)")
	fs.IntVar(&v.VMID, "vmid", 0, "owner guest ID")
	fs.StringVar(&v.Size, "size", "", "size in bytes or with a K, M, G or T suffix (binary units)")
	fs.StringVar(&v.Format, "format", "", "qcow2, raw or subvol (default: qcow2 where supported, subvol for rootdir)")
	fs.StringVar(&v.Content, "content", "", "images or rootdir (default: images)")
	fs.StringVar(&v.Name, "name", "", "name naming its owner: vm-, base- or subvol-<vmid>-disk-<n> (default: the next free one)")
	return cmd
}

func (a *cliApp) newStorageFreeCmd() *cobra.Command {
	var node string
	var force bool
	cmd := &cobra.Command{
		Use:   "free VOLID",
		Short: "Free (delete) a volume",
		Long: `Free (delete) a volume. Volumes owned by a guest are normally freed by the
guest's own operations; --force frees one anyway (needs Datastore.Allocate).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			storage, name, err := volIDArg(args[0])
			if err != nil {
				return err
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
			if err := c.FreeVolume(cmd.Context(), node, storage, name, force); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Volume %s freed.\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "node to act on (default: the only node)")
	cmd.Flags().BoolVar(&force, "force", false, "free a volume owned by a guest")
	return cmd
}

func (a *cliApp) newStorageResizeCmd() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "resize VOLID SIZE",
		Short: "Grow a volume to SIZE, or by +SIZE",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			storage, name, err := volIDArg(args[0])
			if err != nil {
				return err
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
			vol, err := c.ResizeVolume(cmd.Context(), node, storage, name, sizeArg(args[1]))
			if err != nil {
				return err
			}
			return a.printObject(vol, volumeFields(vol))
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "node to act on (default: the only node)")
	return cmd
}

func (a *cliApp) newStorageCloneCmd() *cobra.Command {
	var node string
	var cl api.VolumeClone
	cmd := &cobra.Command{
		Use:   "clone VOLID --vmid N",
		Short: "Clone a volume for a guest (on the same pool)",
		Long: `Clone a volume for a guest, on the same pool. A --linked clone is
copy-on-write from a base volume (base-<vmid>-...).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("vmid") {
				return usageErrorf("--vmid is required")
			}
			storage, _, err := volIDArg(args[0])
			if err != nil {
				return err
			}
			cl.Source = args[0]
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			node, err := resolveNode(cmd.Context(), c, node)
			if err != nil {
				return err
			}
			vol, err := c.CloneVolume(cmd.Context(), node, storage, cl)
			if err != nil {
				return err
			}
			return a.printObject(vol, volumeFields(vol))
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "node to act on (default: the only node)")
	cmd.Flags().IntVar(&cl.VMID, "vmid", 0, "guest that owns the clone")
	cmd.Flags().BoolVar(&cl.Linked, "linked", false, "copy-on-write clone of a base volume")
	return cmd
}

// ---- uploads and downloads ----

func (a *cliApp) newStorageUploadCmd() *cobra.Command {
	var node, content, filename, sum string
	var checksum, overwrite bool
	cmd := &cobra.Command{
		Use:   "upload ID FILE --content iso|vztmpl|backup|snippets",
		Short: "Upload an ISO image, container template, backup or snippet",
		Long: `Upload a file to a pool. The file is streamed, never held in memory. With
--sha256 or --checksum (which computes it locally first, reading the file
twice) the server verifies the digest before the file appears on the pool.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if content == "" {
				return usageErrorf("--content is required")
			}
			if checksum && sum != "" {
				return usageErrorf("--sha256 and --checksum are mutually exclusive")
			}
			path := args[1]
			if filename == "" {
				filename = filepath.Base(path)
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			if fi.IsDir() {
				return usageErrorf("%s is a directory", path)
			}
			size := int64(-1) // a pipe or device: length unknown
			if fi.Mode().IsRegular() {
				size = fi.Size()
			}
			if checksum {
				if !fi.Mode().IsRegular() {
					return usageErrorf("--checksum needs a regular file (%s can only be read once); give --sha256", path)
				}
				if sum, err = a.fileSHA256(cmd.Context(), f, size); err != nil {
					return err
				}
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
			var body io.Reader = f
			progress := a.newProgress("Uploading "+filename, size)
			if progress != nil {
				progress.r = f
				body = progress
			}
			vol, err := c.Upload(cmd.Context(), node, args[0], content, filename, body, size, sum, overwrite)
			if progress != nil {
				progress.finish()
			}
			if err != nil {
				return err
			}
			return a.printObject(vol, volumeFields(vol))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&node, "node", "", "node to upload to (default: the only node)")
	fs.StringVar(&content, "content", "", "content type: iso, vztmpl, backup or snippets")
	fs.StringVar(&filename, "filename", "", "file name on the pool (default: FILE's base name)")
	fs.StringVar(&sum, "sha256", "", "hex SHA-256 of the file, verified by the server")
	fs.BoolVar(&checksum, "checksum", false, "compute the SHA-256 locally and have the server verify it")
	fs.BoolVar(&overwrite, "overwrite", false, "replace an existing file of that name")
	return cmd
}

// fileSHA256 hashes f from its start and rewinds it.
func (a *cliApp) fileSHA256(ctx context.Context, f *os.File, size int64) (string, error) {
	h := sha256.New()
	var r io.Reader = ctxReader{ctx, f}
	progress := a.newProgress("Computing SHA-256", size)
	if progress != nil {
		progress.r = r
		r = progress
	}
	_, err := io.Copy(h, r)
	if progress != nil {
		progress.finish()
	}
	if err != nil {
		return "", fmt.Errorf("compute SHA-256 of %s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops a local read when the command is interrupted.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (a *cliApp) newStorageDownloadCmd() *cobra.Command {
	var node string
	var wait bool
	var d api.DownloadURL
	cmd := &cobra.Command{
		Use:   "download ID URL --content TYPE --filename NAME",
		Short: "Have the node fetch a file from an http(s) URL into a pool, as a task",
		Long: `Have the node fetch a file from an http(s) URL into a pool. This starts a
task and prints its ID; with --wait the task's log is followed until it ends
(like "corral task log -f"), and the exit status says whether it succeeded.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if d.Content == "" || d.Filename == "" {
				return usageErrorf("--content and --filename are required")
			}
			d.URL = args[1]
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			node, err := resolveNode(cmd.Context(), c, node)
			if err != nil {
				return err
			}
			upid, err := c.DownloadURL(cmd.Context(), node, args[0], d)
			if err != nil {
				return err
			}
			if wait {
				// stdout carries the log (NDJSON with -o json), so the
				// task ID goes to stderr.
				fmt.Fprintf(a.stderr, "Task %s started.\n", upid)
				return a.followTaskLog(cmd, c, upid)
			}
			if a.output == formatTable {
				fmt.Fprintln(a.stdout, upid)
				return nil
			}
			return a.printValue(api.TaskRef{Task: upid}, nil)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&node, "node", "", "node that downloads (default: the only node)")
	fs.StringVar(&d.Content, "content", "", "content type: iso, vztmpl, backup or snippets")
	fs.StringVar(&d.Filename, "filename", "", "file name on the pool")
	fs.StringVar(&d.SHA256, "sha256", "", "hex SHA-256 the download must match")
	fs.BoolVar(&d.Overwrite, "overwrite", false, "replace an existing file of that name")
	fs.BoolVarP(&wait, "wait", "w", false, "follow the task's log until it ends")
	return cmd
}

// ---- progress ----

// progressInterval is how often the progress line is redrawn.
const progressInterval = 200 * time.Millisecond

// progressReader counts what passes through it and redraws one status
// line. The HTTP transport reads the body in its own goroutine, which may
// still be running when the request returns early with an error, hence
// the lock.
type progressReader struct {
	r     io.Reader
	w     io.Writer
	label string
	total int64 // negative: unknown
	now   func() time.Time

	mu    sync.Mutex
	done  int64
	start time.Time
	last  time.Time
}

// newProgress returns a progress reader drawing on stderr, or nil when
// stderr is not a terminal (a log file must not fill with redraws). The
// caller sets its r.
func (a *cliApp) newProgress(label string, total int64) *progressReader {
	f, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return newProgressReader(nil, a.stderr, label, total, a.now)
}

func newProgressReader(r io.Reader, w io.Writer, label string, total int64, now func() time.Time) *progressReader {
	t := now()
	return &progressReader{r: r, w: w, label: label, total: total, now: now, start: t, last: t}
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	if t := p.now(); t.Sub(p.last) >= progressInterval {
		p.last = t
		p.draw(t)
	}
	return n, err
}

// finish draws the final state and ends the line.
func (p *progressReader) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw(p.now())
	fmt.Fprintln(p.w)
}

func (p *progressReader) draw(t time.Time) {
	s := p.label + ": " + fmtBytes(uint64(p.done))
	if p.total > 0 {
		s += fmt.Sprintf(" / %s (%d%%)", fmtBytes(uint64(p.total)), p.done*100/p.total)
	}
	if el := t.Sub(p.start).Seconds(); el > 0 {
		s += ", " + fmtBytes(uint64(float64(p.done)/el)) + "/s"
	}
	// \r returns to the line start, ESC[K clears what a longer previous
	// line left behind.
	fmt.Fprintf(p.w, "\r%s\x1b[K", s)
}
