package main

import (
	"crypto"
	"crypto/rsa"
	"fmt"
	"io"
	"os"

	"github.com/tpmcard/tpmcard/service/wire"
)

func init() {
	register("", "sign", "sign data from a file or standard input with a card key", sign)
}

func sign(e *env, args []string) error {
	fs := flags(e, "sign")
	var c common
	c.add(fs, true, false)
	var name string
	keyFlag(fs, &name, oneKey)
	in := fs.String("in", "-", "the `FILE` to sign, - for standard input")
	out := fs.String("out", "-", "the `FILE` to write the signature (ECDSA: ASN.1 DER; RSA: raw) to, - for standard output")
	hashName := fs.String("hash", "sha256", "sha256, sha384 or sha512 (sha-256 … name them too)")
	pss := fs.Bool("pss", false, "RSA keys: sign with PSS instead of PKCS#1 v1.5")
	pinStdin := fs.Bool("pin-stdin", false, "read the PIN from the first line of standard input (the data then follows, or comes from --in)")
	if err := parse(fs, args); err != nil {
		return err
	}
	h, err := parseHash(*hashName)
	if err != nil {
		return err
	}
	// A file to sign is read first, and the key found before the PIN is
	// asked for: a mistake in either costs no PIN.
	var data []byte
	if *in != "-" {
		if data, err = os.ReadFile(*in); err != nil {
			return fmt.Errorf("reading the data to sign: %w", err)
		}
	}
	cl, t, k, err := c.openKey(name)
	if err != nil {
		return err
	}
	defer cl.Close()
	sec := newSecrets(e)
	pin, err := sec.get("PIN", "--pin-stdin", *pinStdin, false)
	if err != nil {
		return err
	}
	defer pin.Wipe()
	if *in == "-" {
		r := io.Reader(e.stdin)
		if sec.in != nil {
			r = sec.in // what follows the PIN line
		}
		if data, err = io.ReadAll(r); err != nil {
			return fmt.Errorf("reading the data to sign: %w", err)
		}
	}
	sess, err := cl.OpenSession(t.Serial, false)
	if err != nil {
		return err
	}
	if err := cl.Login(sess, wire.UserNormal, pin); err != nil {
		return err
	}
	s, err := cl.Signer(t.Serial, mustHex(k.ID))
	if err != nil {
		return err
	}
	defer s.Close()
	hh := h.New()
	hh.Write(data)
	var opts crypto.SignerOpts = h
	if *pss {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
	}
	// A key made with --pin-policy always takes the PIN again for this
	// signature (C_Login(CKU_CONTEXT_SPECIFIC)); others sign on the login.
	sig, err := s.SignWithPIN(nil, hh.Sum(nil), opts, pin)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = e.stdout.Write(sig)
		return err
	}
	return os.WriteFile(*out, sig, 0o644)
}
