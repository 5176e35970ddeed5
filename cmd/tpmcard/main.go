// Command tpmcard drives virtual smart cards kept in a TPM 2.0: the
// service that owns the TPM (tpmcard service …) and the commands people
// and scripts use against it (card, pin, key, sign).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	env := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if err := run(env, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) && !errors.Is(err, errShown) {
			fmt.Fprintf(os.Stderr, "tpmcard: %s\n", describe(err))
		}
		os.Exit(exitCode(err))
	}
}

// env is what a command may touch, so tests can drive run directly.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// command is one leaf of the command tree.
type command struct {
	summary string
	run     func(e *env, args []string) error
}

var commands = map[string]map[string]command{}

func register(group, name, summary string, run func(e *env, args []string) error) {
	if commands[group] == nil {
		commands[group] = map[string]command{}
	}
	commands[group][name] = command{summary, run}
}

func init() {
	register("", "version", "print the version", func(e *env, _ []string) error {
		fmt.Fprintln(e.stdout, "tpmcard", version)
		return nil
	})
}

func run(e *env, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stdout)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	if c, ok := commands[""][args[0]]; ok {
		return c.run(e, args[1:])
	}
	group, ok := commands[args[0]]
	if !ok {
		usage(e.stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	if len(args) < 2 {
		usage(e.stderr)
		return fmt.Errorf("%s needs a subcommand", args[0])
	}
	c, ok := group[args[1]]
	if !ok {
		usage(e.stderr)
		return fmt.Errorf("unknown command %q", args[0]+" "+args[1])
	}
	return c.run(e, args[2:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tpmcard <command> [flags]   (tpmcard <command> -h for its flags)")
	fmt.Fprintln(w)
	var groups []string
	for g := range commands {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		var names []string
		for n := range commands[g] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  %-22s %s\n", strings.TrimSpace(g+" "+n), commands[g][n].summary)
		}
	}
	fmt.Fprintln(w, "\nThe service's socket is $TPMCARD_SOCKET, or /run/tpmcard/tpmcard.sock.")
}

// flags returns a FlagSet whose errors go to stderr.
func flags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("tpmcard "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}
