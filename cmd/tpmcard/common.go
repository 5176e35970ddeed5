package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/wire"
)

// common holds the flags most commands share.
type common struct {
	socket string
	card   string
	json   bool
}

func (c *common) add(fs *flag.FlagSet, card, js bool) {
	fs.StringVar(&c.socket, "socket", client.SocketPath(), "the service's socket `PATH` (the default is $"+client.SocketEnv+" when it is set)")
	if card {
		fs.StringVar(&c.card, "card", "", "the card: its `SERIAL` or label (may be left out when there is one card)")
	}
	if js {
		fs.BoolVar(&c.json, "json", false, "print JSON")
	}
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errShown, err) // the flag package printed it
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

func (c *common) dial() (*client.Client, error) { return client.Dial(c.socket) }

// open dials the service and picks the card the flags name.
func (c *common) open() (*client.Client, wire.TokenInfo, error) {
	cl, err := c.dial()
	if err != nil {
		return nil, wire.TokenInfo{}, err
	}
	t, err := c.pick(cl)
	if err != nil {
		cl.Close()
		return nil, wire.TokenInfo{}, err
	}
	return cl, t, nil
}

// keyFlag defines --key, which names a card key the same way in every
// command: by its ID, a prefix of the ID, or its label (pickKey).
// note follows in parentheses when not empty.
func keyFlag(fs *flag.FlagSet, p *string, note string) {
	usage := "the card key: its `ID` (hex), a prefix of the ID, or its label"
	if note != "" {
		usage += " (" + note + ")"
	}
	fs.StringVar(p, "key", "", usage)
}

// oneKey is keyFlag's note for a command that takes the card's only key.
const oneKey = "may be left out when the card has one key"

// openKey is open, then the card's key named as --key names it (or its
// only key).
func (c *common) openKey(name string) (*client.Client, wire.TokenInfo, keyView, error) {
	cl, t, err := c.open()
	if err != nil {
		return nil, wire.TokenInfo{}, keyView{}, err
	}
	keys, err := listKeys(cl, t.Serial)
	if err == nil {
		var k keyView
		if k, err = pickKey(keys, name); err == nil {
			return cl, t, k, nil
		}
	}
	cl.Close()
	return nil, wire.TokenInfo{}, keyView{}, err
}

// pick finds the card the user named, or the only one.
func (c *common) pick(cl *client.Client) (wire.TokenInfo, error) {
	cards, err := cl.ListCards()
	if err != nil {
		return wire.TokenInfo{}, err
	}
	var found []wire.TokenInfo
	for _, t := range cards {
		if c.card == "" || t.Serial == c.card || t.Label == c.card {
			found = append(found, t)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && c.card == "":
		return wire.TokenInfo{}, errors.New("there is no card yet: an administrator creates one with `tpmcard card create`")
	case len(found) == 0:
		return wire.TokenInfo{}, wire.NewError(wire.CardNotFound, "no card "+c.card)
	}
	return wire.TokenInfo{}, fmt.Errorf("%w: there are %d cards: choose one with --card", errUsage, len(found))
}

// warn tells the user something on standard error, never standard output,
// so that --json output stays parseable.
func warn(e *env, format string, a ...any) {
	fmt.Fprintf(e.stderr, "tpmcard: warning: "+format+"\n", a...)
}

// softwareTPM is the warning of every command that shows a card or TPM
// without hardware protection.
func softwareTPM(e *env) {
	fmt.Fprintln(e.stderr, "tpmcard: WARNING: the service runs on a software TPM: keys are NOT hardware-protected")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
