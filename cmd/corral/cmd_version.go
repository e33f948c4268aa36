package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/api"
)

// versionReport is what "corral version -o json" prints.
type versionReport struct {
	Client string           `json:"client"`
	Server *api.VersionInfo `json:"server,omitempty"`
}

func (a *cliApp) newVersionCmd() *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client and server versions",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep := versionReport{Client: versionString()}
			var serverErr error
			if !clientOnly {
				// /version needs no credentials: a server is enough.
				c, _, err := a.connect(true)
				if err == nil {
					defer c.Close()
					rep.Server, err = c.Version(cmd.Context())
				}
				serverErr = err
			}
			if err := a.printValue(rep, func(w io.Writer) error {
				fmt.Fprintf(w, "client\t%s\n", rep.Client)
				if rep.Server != nil {
					fmt.Fprintf(w, "server\t%s (commit %s, API %s)\n", rep.Server.Version, cell(rep.Server.Commit), rep.Server.API)
				}
				return nil
			}); err != nil {
				return err
			}
			return serverErr
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "only print the client version")
	return cmd
}
