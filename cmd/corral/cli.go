package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes. Scripts can tell a mistyped command line (2) from a failed
// operation (1).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// cliVersion is the release stamped in at build time with
// -ldflags "-X main.cliVersion=..."; when empty the module build info is used.
var cliVersion = ""

// cliApp holds everything one CLI invocation needs. Nothing lives in package
// globals so that tests can run many invocations in one process.
type cliApp struct {
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	getenv  func(string) string
	geteuid func() int
	now     func() time.Time

	// persistent flags
	server   string
	token    string
	output   string
	insecure bool
	caFile   string
	timeout  time.Duration
}

// usageError marks a mistake in the command line (exit 2), as opposed to an
// operation that failed (exit 1).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// exitCodeError carries a specific exit code, e.g. for "task log -f" of a
// task that failed: the command itself worked but the outcome is a failure.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// Execute runs the CLI with args (without the program name) and returns the
// process exit code. Standard input is os.Stdin.
func Execute(args []string, stdout, stderr io.Writer) int {
	return ExecuteIO(args, os.Stdin, stdout, stderr)
}

// ExecuteIO is Execute with an explicit standard input, for tests that feed
// passwords through --password-stdin.
func ExecuteIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if stdin == nil {
		stdin = eofReader{}
	}
	a := &cliApp{
		stdin:   stdin,
		stdout:  stdout,
		stderr:  stderr,
		getenv:  os.Getenv,
		geteuid: os.Geteuid,
		now:     time.Now,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.run(ctx, args)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// run executes one command line and maps its error to an exit code.
func (a *cliApp) run(ctx context.Context, args []string) int {
	root := a.newRootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if cmd == nil {
		cmd = root
	}
	return a.reportError(cmd, err)
}

func (a *cliApp) reportError(cmd *cobra.Command, err error) int {
	fmt.Fprintf(a.stderr, "Error: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) {
		fmt.Fprintln(a.stderr, "Hint: pass --ca-file with the cluster CA (<data-dir>/pki/ca.crt); if the server's certificate changed legitimately, run corral logout and log in again to pin the new one.")
	}
	var ce *exitCodeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return exitError
}

func (a *cliApp) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "corral",
		Short: "Manage a corral virtualization cluster",
		Long: `corral manages a corral cluster through its REST API.

Credentials are taken, in this order, from --token (or CORRAL_TOKEN), from the
session saved by "corral login" (when --server is unset or names the same
server), or, for root on a node, from the local unix socket
(CORRAL_SOCKET, default /run/corral/corral.sock).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRunE,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return a.checkOutputFlag()
		},
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &usageError{err: err}
	})

	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", a.getenv("CORRAL_SERVER"),
		"API server, https://host[:8006] or unix:///path/to/socket (env CORRAL_SERVER)")
	pf.StringVar(&a.token, "token", a.getenv("CORRAL_TOKEN"),
		"API token user@realm!name=secret (env CORRAL_TOKEN)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table, json or yaml")
	pf.BoolVar(&a.insecure, "insecure", false, "do not verify the server's TLS certificate")
	pf.StringVar(&a.caFile, "ca-file", "", "PEM file of the CA to trust for the server's certificate")
	pf.DurationVar(&a.timeout, "timeout", 60*time.Second, "timeout of each API request")

	root.AddCommand(
		a.newLoginCmd(),
		a.newLogoutCmd(),
		a.newAPICmd(),
		a.newUserCmd(),
		a.newGroupCmd(),
		a.newRoleCmd(),
		a.newACLCmd(),
		a.newTokenCmd(),
		a.newRealmCmd(),
		a.newNodeCmd(),
		a.newTaskCmd(),
		a.newStorageCmd(),
		a.newVMCmd(),
		a.newCTCmd(),
		a.newTemplateCmd(),
		a.newNetCmd(),
		a.newFirewallCmd(),
		a.newEventsCmd(),
		a.newTopCmd(),
		a.newVersionCmd(),
		newDaemonCmd(),
	)
	return root
}

// groupRunE is the RunE of commands that only group subcommands: without
// arguments it shows help, and an unknown subcommand is a usage error
// (cobra would otherwise print help and exit 0).
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

// newParentCmd builds a command that only holds subcommands.
func newParentCmd(use, short string, aliases ...string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Aliases: aliases,
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRunE,
	}
}

// usageArgs wraps a cobra argument validator so that its complaints become
// usage errors (exit 2).
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return &usageError{err: err}
		}
		return nil
	}
}

// versionString is this binary's version for "corral version".
func versionString() string {
	if cliVersion != "" {
		return cliVersion
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}
