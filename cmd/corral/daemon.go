package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/internal/daemon"
)

// newDaemonCmd runs a node. Precedence: defaults < config file < CORRAL_*
// environment < flags.
func newDaemonCmd() *cobra.Command {
	var cfgFile string
	fl := daemon.Config{}
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the corral node daemon",
		Long: `Run this node: the embedded cluster store member, the REST API on HTTPS
(default :8006) and the local unix socket. Configuration comes from
/etc/corral/corral.yaml (or --config), CORRAL_* environment variables
and flags, in increasing precedence. SIGTERM shuts down cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := daemon.Defaults()
			path, explicit := daemon.DefaultConfigFile, false
			if cfgFile != "" {
				path, explicit = cfgFile, true
			}
			if err := c.LoadFile(path, explicit); err != nil {
				return err
			}
			if err := c.LoadEnv(); err != nil {
				return err
			}
			f := cmd.Flags()
			set := func(name string, dst *string, v string) {
				if f.Changed(name) {
					*dst = v
				}
			}
			set("node", &c.Node, fl.Node)
			set("data-dir", &c.DataDir, fl.DataDir)
			set("listen", &c.Listen, fl.Listen)
			set("socket", &c.Socket, fl.Socket)
			set("address", &c.Address, fl.Address)
			set("store-client-url", &c.StoreClientURL, fl.StoreClientURL)
			set("store-peer-url", &c.StorePeerURL, fl.StorePeerURL)
			set("log-level", &c.LogLevel, fl.LogLevel)
			set("log-format", &c.LogFormat, fl.LogFormat)
			if f.Changed("ticket-lifetime") {
				c.TicketLifetime = fl.TicketLifetime
			}
			if f.Changed("metrics-interval") {
				c.MetricsInterval = fl.MetricsInterval
			}
			if err := c.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			log := daemon.Logger(c, cmd.ErrOrStderr())
			return daemon.Run(ctx, c, log, cmd.OutOrStdout(), nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "configuration file (default "+daemon.DefaultConfigFile+" if present)")
	f.StringVar(&fl.Node, "node", "", "node name (default: short host name)")
	f.StringVar(&fl.DataDir, "data-dir", "", "data directory (default /var/lib/corral)")
	f.StringVar(&fl.Listen, "listen", "", "HTTPS API address (default :8006)")
	f.StringVar(&fl.Socket, "socket", "", "local unix socket; empty disables (default /run/corral/corral.sock)")
	f.StringVar(&fl.Address, "address", "", "this node's cluster address (default 127.0.0.1)")
	f.StringVar(&fl.StoreClientURL, "store-client-url", "", "embedded etcd client URL (default unix://<data-dir>/store.sock)")
	f.StringVar(&fl.StorePeerURL, "store-peer-url", "", "the store peer URL other nodes dial (default https://<address>:8008)")
	f.StringVar(&fl.LogLevel, "log-level", "", "debug, info, warn or error")
	f.StringVar(&fl.LogFormat, "log-format", "", "text or json")
	f.DurationVar(&fl.TicketLifetime, "ticket-lifetime", 0, "login ticket lifetime (default 2h)")
	f.DurationVar(&fl.MetricsInterval, "metrics-interval", 0, "how often to sample the node and its guests (default 10s)")
	return cmd
}
