// Package subcmd runs a command line of the form "PROG COMMAND [flags]":
// dispatch, usage text, flag sets whose errors come back as values (so
// tests can drive the commands), exit codes and the logger. vehiclegw and
// wallctl share it.
package subcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Command is one sub-command.
type Command struct {
	Name    string
	Summary string
	Run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// ErrUsage marks an error the user can fix by reading the usage text; it
// exits 2.
var ErrUsage = errors.New("usage")

// Run dispatches args to the named command and returns the exit code: 0
// done, 1 failed, 2 usage, 130 interrupted.
func Run(ctx context.Context, prog string, cmds []Command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		Usage(stderr, prog, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	// "wallctl session show ID": a two-word command is matched first.
	for _, c := range cmds {
		words := strings.Fields(c.Name)
		if len(args) < len(words) || strings.Join(args[:len(words)], " ") != c.Name {
			continue
		}
		err := c.Run(ctx, args[len(words):], stdout, stderr)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, context.Canceled):
			return 130
		case errors.Is(err, ErrUsage):
			fmt.Fprintf(stderr, "%s %s: %v\n", prog, c.Name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "%s %s: %v\n", prog, c.Name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n\n", prog, args[0])
	Usage(stderr, prog, cmds)
	return 2
}

// Usage prints the command list.
func Usage(w io.Writer, prog string, cmds []Command) {
	fmt.Fprintf(w, "usage: %s COMMAND [flags]\n\ncommands:\n", prog)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-13s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND -h' for the flags of a command.\n", prog)
}

// NewFlagSet makes a flag set whose errors come back as values.
func NewFlagSet(prog, name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// Parse parses flags, allowing at most maxArgs positional arguments.
func Parse(fs *flag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > maxArgs {
		return fmt.Errorf("%w: unexpected arguments: %s", ErrUsage, strings.Join(fs.Args()[maxArgs:], " "))
	}
	return nil
}

// NewLogger makes a text logger at the named level.
func NewLogger(stderr io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q: use debug, info, warn or error", ErrUsage, level)
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l})), nil
}
