package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tpmcard/tpmcard/tpmcard/secret"
	"golang.org/x/term"
)

// secrets hands a command the PINs and PUKs it needs, in the order it asks:
// each from its own line of standard input when its --*-stdin flag is set,
// else from a prompt on the terminal that does not echo.
type secrets struct {
	e  *env
	in *bufio.Reader
}

func newSecrets(e *env) *secrets { return &secrets{e: e} }

// get returns one secret. what names it in prompts and errors ("PIN",
// "new PIN", "PUK"), flag is the flag that reads it from standard input;
// confirm asks twice on a terminal.
func (s *secrets) get(what, flag string, fromStdin, confirm bool) (secret.Secret, error) {
	if fromStdin {
		return s.line(what)
	}
	f, ok := s.e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, fmt.Errorf("%w: no terminal to ask for the %s: pass it on standard input with %s", errUsage, what, flag)
	}
	v, err := s.prompt(f, "Enter "+what+": ")
	if err != nil || !confirm {
		return v, err
	}
	again, err := s.prompt(f, "Repeat "+what+": ")
	if err != nil {
		v.Wipe()
		return nil, err
	}
	defer again.Wipe()
	if !v.Equal(again) {
		v.Wipe()
		return nil, fmt.Errorf("the two %ss differ", what)
	}
	return v, nil
}

func (s *secrets) prompt(f *os.File, text string) (secret.Secret, error) {
	fmt.Fprint(s.e.stderr, text)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(s.e.stderr)
	if err != nil {
		return nil, fmt.Errorf("reading from the terminal: %w", err)
	}
	return secret.Secret(b), nil
}

// line reads one line of standard input, without its line ending.
func (s *secrets) line(what string) (secret.Secret, error) {
	if s.in == nil {
		s.in = bufio.NewReader(s.e.stdin)
	}
	b, err := s.in.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(b) > 0) {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: standard input ended before the %s", errUsage, what)
		}
		return nil, fmt.Errorf("reading the %s: %w", what, err)
	}
	v := secret.New(bytes.TrimRight(b, "\r\n"))
	secret.Secret(b).Wipe()
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty %s on standard input", errUsage, what)
	}
	return v, nil
}
