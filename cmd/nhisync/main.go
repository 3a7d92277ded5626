// Command nhisync keeps the governance records of non-human identities in
// step across the systems that hold them. This package wires the config,
// store, connectors and engine together: one file per command.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nhisync/nhisync"
	_ "github.com/nhisync/nhisync/connector/file"
	_ "github.com/nhisync/nhisync/connector/git"
	_ "github.com/nhisync/nhisync/connector/http"
	_ "github.com/nhisync/nhisync/connector/ldap"
	_ "github.com/nhisync/nhisync/connector/opa"
	_ "github.com/nhisync/nhisync/connector/scim"
	_ "github.com/nhisync/nhisync/connector/sql"
)

// Exit codes (SPEC §6).
const (
	exitOK      = 0
	exitFailed  = 1
	exitInvalid = 2
)

// globals are the flags every command has.
type globals struct {
	config string
	output string
	stdout io.Writer
	stderr io.Writer
	// keepKeys stops commands from creating a missing signing key and HMAC
	// secret (the audit commands, which an auditor may run on a copy of
	// the store without them).
	keepKeys bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code, exit, msg := nhisync.ErrorCode(err), exitFailed, nhisync.ErrorMessage(err)
	var usage *usageError
	switch {
	case errors.As(err, &usage):
		code, exit, msg = nhisync.EINVALID, exitInvalid, err.Error()
	case code == nhisync.EINVALID:
		exit = exitInvalid
	}
	fmt.Fprintf(stderr, "nhisync: %s\n", msg)
	// An internal error's message is general ("the store failed
	// unexpectedly (see the cause below)"): the cause is what a person
	// acts on, so it follows on stderr (never in the JSON on stdout).
	var ne *nhisync.Error
	if code == nhisync.EINTERNAL && errors.As(err, &ne) && ne.Err != nil {
		fmt.Fprintf(stderr, "nhisync: cause: %s\n", cause(ne))
	}
	// With -o json the error is also on stdout, in SPEC §6's shape, unless
	// the command already put it in the JSON it printed.
	var reported *reportedError
	if jsonOutput(g, args) && !errors.As(err, &reported) {
		_ = newOut(stdout, "json").JSON(map[string]errorJSON{"error": {Code: code, Message: msg}})
	}
	return exit
}

// cause names the innermost error under e, with the operation that met it.
func cause(e *nhisync.Error) string {
	for {
		var inner *nhisync.Error
		if !errors.As(e.Err, &inner) || inner.Err == nil {
			break
		}
		e = inner
	}
	if e.Op != "" {
		return e.Op + ": " + e.Err.Error()
	}
	return e.Err.Error()
}

// jsonOutput reports whether the command line asked for -o json, also
// when parsing stopped before the flag was read.
func jsonOutput(g *globals, args []string) bool {
	if g.output == "json" {
		return true
	}
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "-ojson" || a == "-o=json" || a == "--output=json":
			return true
		case (a == "-o" || a == "--output") && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}

// usageError marks bad command-line usage (exit 2).
type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() }
func (u *usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return &usageError{fmt.Errorf(format, args...)} }

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "nhisync",
		Short: "Keep non-human identity records in step across the systems that hold them",
		Long: `nhisync keeps the governance records of non-human identities (service accounts,
API keys, OAuth apps, tokens, workloads, AI agents) aligned across a CMDB, a
data catalog, an identity provider, a policy engine and more, in both
directions. Per-field source-of-truth rules decide which change wins,
validation stops bad values, people approve what policy says they must, and
every step lands in a verifiable audit log.

Start with:  nhisync quickstart`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Args and RunE make an unknown command bad usage (exit 2): left to
		// cobra it is a plain error, which would exit 1.
		Args: unknownCommand,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if g.output != "table" && g.output != "json" {
				return usagef("-o/--output must be table or json, not %q", g.output)
			}
			return nil
		},
	}
	def := os.Getenv("NHISYNC_CONFIG")
	if def == "" {
		def = "nhisync.yaml"
	}
	root.SuggestionsMinimumDistance = 2
	root.PersistentFlags().StringVarP(&g.config, "config", "c", def, "config file (env NHISYNC_CONFIG)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(
		quickstartCmd(g), initCmd(g), checkCmd(g), planCmd(g), syncCmd(g),
		recordsCmd(g), showCmd(g), historyCmd(g), explainCmd(g),
		conflictsCmd(g), quarantineCmd(g), approvalsCmd(g), auditCmd(g), driftCmd(g),
		tokenCmd(g), serveCmd(g), reportCmd(g), sqlCmd(g), storeCmd(g),
		unmatchedCmd(g),
	)
	return root
}

// unknownCommand refuses a word that names no command, suggesting the
// nearest one.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	hint := fmt.Sprintf("; run `%s --help` for the commands", cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf("; did you mean %q?", s[0])
	}
	return usagef("unknown command %q%s", args[0], hint)
}

// noArgs refuses positional arguments as bad usage.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// exactArgs requires n positional arguments.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("usage: %s %s", cmd.CommandPath(), what)
		}
		return nil
	}
}
