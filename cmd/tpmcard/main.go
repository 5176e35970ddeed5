// Command tpmcard drives virtual smart cards kept in a TPM 2.0.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "tpmcard: %v\n", err)
		os.Exit(1)
	}
}

const usage = `usage: tpmcard <command> [flags]

commands:
  demo      walk through a card's life on a TPM (default: the in-process simulator)
  version   print the version
`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "demo":
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		fs.SetOutput(stderr)
		tpm := fs.String("tpm", "sim", "TPM backend: sim, swtpm:HOST:PORT or device[:PATH]")
		state := fs.String("state-dir", "", "state directory (default: a temporary one, removed afterwards)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return demo(stdout, *tpm, *state)
	case "version":
		fmt.Fprintln(stdout, "tpmcard", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
