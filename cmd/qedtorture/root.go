package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/afero"
	"github.com/spf13/cobra"
)

// Exit codes shared by all subcommands (check adds 2 and 3 for findings).
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// exitError ends a command with a given exit code. A nil err exits without a
// message (check's findings, already reported on stdout).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// failf is a runtime error (exit 1).
func failf(format string, args ...any) error {
	return &exitError{code: exitRuntime, err: fmt.Errorf(format, args...)}
}

// fail wraps err as a runtime error (exit 1).
func fail(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitRuntime, err: err}
}

// usageError is a bad command line (exit 2).
type usageError struct {
	cmd string // command path, for the hint
	err error
}

func (e *usageError) Error() string {
	return fmt.Sprintf("%v (see '%s --help')", e.err, e.cmd)
}

func (e *usageError) Unwrap() error { return e.err }

func usagef(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf(format, args...)}
}

// env is what every subcommand works on: the filesystem and the output
// streams. Tests pass their own.
type env struct {
	fs     afero.Fs
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader // nil: os.Stdin (io reads its commands from it)
}

// Run executes the qedtorture command line args (without the program name)
// with output to stdout and stderr and returns the process exit code. It
// never panics: a panic inside a command is reported as an internal error
// (exit 1) on one line, with the stack only under QEDTORTURE_DEBUG.
func Run(args []string, stdout, stderr io.Writer) (code int) {
	return run(&env{fs: afero.NewOsFs(), stdout: stdout, stderr: stderr}, args)
}

func run(e *env, args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(e.stderr, "qedtorture: internal error: %v\n", r)
			if debugEnabled() {
				e.stderr.Write(debug.Stack())
			}
			code = exitRuntime
		}
	}()
	root := newRootCommand(e)
	// A first word that names no command is an unknown command, whatever
	// follows it: cobra would otherwise parse the flags meant for it
	// against the root ("unknown shorthand flag: 'u' in -u" for a
	// misspelt "rebse -u").
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") && !isCommand(root, args[0]) {
		return report(e.stderr, usagef(root, "unknown command %q for %q", args[0], root.CommandPath()))
	}
	root.SetArgs(args)
	_, err := root.ExecuteC()
	return report(e.stderr, err)
}

// report prints err as one line and maps it to an exit code.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "qedtorture: %s\n", oneLine(ee.err.Error()))
		}
		return ee.code
	}
	// Everything else comes from cobra before a command ran: unknown
	// commands, flag and argument errors.
	fmt.Fprintf(stderr, "qedtorture: %s\n", oneLine(err.Error()))
	return exitUsage
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func newRootCommand(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "qedtorture",
		Short: "Verify and torture QED (QEMU Enhanced Disk) images",
		Long: `qedtorture works with QED disk images: qemu-img-like utilities (create, info,
check, map, convert, compare, resize, rebase, commit, measure, dd) over a
spec-exact Go implementation, and torture campaigns.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       versionString(),
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef(cmd, "missing command")
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{cmd: c.CommandPath(), err: err}
	})
	root.AddCommand(
		newCreateCommand(e),
		newInfoCommand(e),
		newCheckCommand(e),
		newMapCommand(e),
		newConvertCommand(e),
		newCompareCommand(e),
		newResizeCommand(e),
		newRebaseCommand(e),
		newCommitCommand(e),
		newMeasureCommand(e),
		newDDCommand(e),
		newRunCommand(e),
		newReplayCommand(e),
		newShowCommand(e),
		newReportCommand(e),
		newBenchCommand(e),
		newQEMUCommand(e),
		newIOCommand(e),
		newRepairCommand(e),
	)
	return root
}

// isCommand reports whether name names a subcommand of root (or an alias,
// or help).
func isCommand(root *cobra.Command, name string) bool {
	if name == "help" {
		return true
	}
	for _, c := range root.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return true
		}
	}
	return false
}

// noArgs rejects stray arguments, naming them (cobra's default for a root
// without Run is to print help, hiding a typo'd subcommand).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(cmd, "unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

// argsBetween accepts min..max positional arguments, naming them in the
// error.
func argsBetween(min, max int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < min:
			return usagef(cmd, "%s: missing argument: expected %s", cmd.Name(), names)
		case len(args) > max:
			return usagef(cmd, "%s: too many arguments %q: expected %s", cmd.Name(), args[max:], names)
		}
		return nil
	}
}

// outputFormat is the --output flag: human (default) or json.
type outputFormat string

func (o *outputFormat) String() string {
	if *o == "" {
		return "human"
	}
	return string(*o)
}

func (o *outputFormat) Set(s string) error {
	switch s {
	case "human", "json":
		*o = outputFormat(s)
		return nil
	}
	return fmt.Errorf("invalid output format %q: want human or json", s)
}

func (o *outputFormat) Type() string { return "format" }

func (o *outputFormat) json() bool { return *o == "json" }

// debugEnabled reports whether QEDTORTURE_DEBUG asks for stack traces.
func debugEnabled() bool { return os.Getenv("QEDTORTURE_DEBUG") != "" }

// versionString is --version's text: the module version and, for a build
// from a git checkout, the commit (marked "+dirty" for uncommitted
// changes), from the binary's build information.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown build)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " commit " + rev[:min(12, len(rev))] + dirty
	}
	return v + ", " + bi.GoVersion
}
