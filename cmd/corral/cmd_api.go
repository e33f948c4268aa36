package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/client"
)

// newAPICmd is the raw escape hatch, like Proxmox VE's pvesh: any endpoint,
// including ones the CLI has no typed command for yet.
func (a *cliApp) newAPICmd() *cobra.Command {
	cmd := newParentCmd("api", "Call any API endpoint directly (like pvesh)")
	cmd.Long = `Call any API endpoint. PATH is relative to /api/v1, e.g. /access/users.

Arguments key=value become query parameters for get and delete, and the JSON
body for post and put. Body values that parse as JSON (numbers, true/false,
null, arrays, objects, "quoted strings") are sent as that JSON; anything else
is sent as a string. A key given several times becomes an array.

Examples:
  corral api get /tasks limit=5
  corral api post /access/users userid=alice@corral password=s3cret123 groups='["ops"]'
  corral api put /access/roles/Auditor privs=Sys.Audit privs=VM.Audit --if-match <digest>
  corral api post /nodes/node1/tasks/sleep seconds=10`
	for _, m := range []struct {
		method  string
		aliases []string
		hasBody bool
	}{
		{http.MethodGet, []string{"GET", "ls"}, false},
		{http.MethodPost, []string{"POST", "create"}, true},
		{http.MethodPut, []string{"PUT", "set"}, true},
		{http.MethodDelete, []string{"DELETE"}, false},
	} {
		cmd.AddCommand(a.newAPIMethodCmd(m.method, m.aliases, m.hasBody))
	}
	return cmd
}

func (a *cliApp) newAPIMethodCmd(method string, aliases []string, hasBody bool) *cobra.Command {
	var ifMatch string
	use := map[string]string{
		http.MethodGet: "get", http.MethodPost: "post", http.MethodPut: "put", http.MethodDelete: "delete",
	}[method]
	cmd := &cobra.Command{
		Use:     use + " PATH [key=value ...]",
		Short:   fmt.Sprintf("Send a %s request", method),
		Aliases: aliases,
		Args:    usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			pairs, err := parseKeyValues(args[1:])
			if err != nil {
				return err
			}
			var query url.Values
			var body any
			if hasBody {
				// Always send an object, even an empty one, so endpoints
				// whose body fields are all optional accept the request.
				body = bodyFromPairs(pairs)
			} else if len(pairs) > 0 {
				query = queryFromPairs(pairs)
			}
			// Unknown endpoints may need no credentials (/version,
			// /access/ticket), so a known server without a login is fine.
			c, _, err := a.connect(true)
			if err != nil {
				return err
			}
			defer c.Close()
			var opts []client.RequestOption
			if ifMatch != "" {
				opts = append(opts, client.WithIfMatch(ifMatch))
			}
			resp, err := c.Do(cmd.Context(), method, args[0], query, body, nil, opts...)
			if err != nil {
				return err
			}
			data, err := io.ReadAll(resp.Body)
			if err != nil {
				return fmt.Errorf("read response: %w", err)
			}
			return a.printRawJSON(data)
		},
	}
	if method != http.MethodGet {
		cmd.Flags().StringVar(&ifMatch, "if-match", "", "only apply if the object's digest (ETag) still matches")
	}
	return cmd
}
