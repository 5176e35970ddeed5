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

	"github.com/tpmcard/tpmcard/service/client"
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
	register("", "version", "print the version (also tpmcard --version)", printVersion)
}

func printVersion(e *env, args []string) error {
	fs := flags(e, "version")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "tpmcard", version)
	return nil
}

func run(e *env, args []string) error {
	if len(args) == 0 {
		usage(e.stderr)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	if args[0] == "--version" || args[0] == "-version" {
		return printVersion(e, args[1:])
	}
	if isHelp(args[0]) {
		if len(args) == 1 {
			usage(e.stdout)
			return nil
		}
		if _, ok := commands[args[1]]; ok && args[1] != "" {
			groupUsage(e.stdout, args[1])
			return nil
		}
		if c, ok := commands[""][args[1]]; ok {
			return c.run(e, []string{"-h"})
		}
		usage(e.stderr)
		return fmt.Errorf("%w: unknown command %q", errUsage, args[1])
	}
	if c, ok := commands[""][args[0]]; ok {
		return c.run(e, args[1:])
	}
	group, ok := commands[args[0]]
	if !ok {
		usage(e.stderr)
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	switch {
	case len(args) < 2:
		groupUsage(e.stderr, args[0])
		return fmt.Errorf("%w: %s needs a subcommand", errUsage, args[0])
	case isHelp(args[1]):
		groupUsage(e.stdout, args[0])
		return nil
	}
	c, ok := group[args[1]]
	if !ok {
		groupUsage(e.stderr, args[0])
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0]+" "+args[1])
	}
	return c.run(e, args[2:])
}

func isHelp(a string) bool { return a == "help" || a == "-h" || a == "--help" }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tpmcard <command> [flags]   (tpmcard <command> -h for its flags)")
	fmt.Fprintln(w)
	var groups []string
	for g := range commands {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		for _, n := range names(g) {
			fmt.Fprintf(w, "  %-22s %s\n", strings.TrimSpace(g+" "+n), commands[g][n].summary)
		}
	}
	fmt.Fprintf(w, "\nThe service's socket is $%s, or %s.\n", client.SocketEnv, client.DefaultSocket)
}

// groupUsage lists a group's commands, each with its synopsis and an
// example.
func groupUsage(w io.Writer, g string) {
	fmt.Fprintf(w, "usage: tpmcard %s <command> [flags]   (tpmcard %s <command> -h for its flags)\n", g, g)
	for _, n := range names(g) {
		fmt.Fprintf(w, "\n  %s %s\n      %s\n      e.g. %s\n", g, n, commands[g][n].summary, examples[g+" "+n])
	}
}

// names are a group's commands in order.
func names(g string) []string {
	var out []string
	for n := range commands[g] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// examples show each command of a group as a person types it; every
// command has one (TestEveryCommandHasAnExample).
var examples = map[string]string{
	"admin keygen":      "tpmcard admin keygen --out fleet-admin.key",
	"admin challenge":   "tpmcard admin challenge",
	"admin respond":     "tpmcard admin respond --admin-key fleet-admin.key --challenge TEXT",
	"admin unblock":     "tpmcard admin unblock --response TEXT --new-pin-stdin",
	"attest verify":     "tpmcard attest verify --statement key.att --nonce 00112233",
	"card create":       "sudo tpmcard card create --label \"$(hostname)\"",
	"card list":         "tpmcard card list",
	"card status":       "tpmcard card status",
	"card destroy":      "sudo tpmcard card destroy --card SERIAL",
	"card owner":        "sudo tpmcard card owner --card SERIAL alice:staff",
	"cert request":      "tpmcard cert request --subject CN=alice --out alice.csr",
	"cert import":       "sudo tpmcard cert import --in alice.pem",
	"cert list":         "tpmcard cert list",
	"cert export":       "tpmcard cert export --key KEY-ID",
	"cert delete":       "sudo tpmcard cert delete --key KEY-ID",
	"cert self-sign":    "tpmcard cert self-sign --subject CN=alice",
	"key generate":      "sudo tpmcard key generate --alg ecdsa-p256 --label sign-in",
	"key list":          "tpmcard key list",
	"key delete":        "sudo tpmcard key delete --key KEY-ID",
	"key export":        "tpmcard key export --key KEY-ID --format ssh",
	"key attest":        "sudo tpmcard key attest --key KEY-ID --nonce 00112233 --out key.att",
	"pin change":        "tpmcard pin change",
	"pin unblock":       "tpmcard pin unblock",
	"service run":       "sudo tpmcard service run --tpm sim",
	"service install":   "sudo tpmcard service install",
	"service uninstall": "sudo tpmcard service uninstall",
	"service start":     "sudo tpmcard service start",
	"service stop":      "sudo tpmcard service stop",
	"service status":    "tpmcard service status",
	"service unit":      "tpmcard service unit",
	"tpm info":          "sudo tpmcard tpm info",
}

// flags returns a FlagSet whose errors go to stderr.
func flags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("tpmcard "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}
