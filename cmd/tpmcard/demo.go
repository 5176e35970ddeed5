package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/backend"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// demo walks through a card's life: create with the default PIN, forced
// PIN change, key generation, a signed and verified challenge, wrong PINs
// until the TPM locks the card, PUK unblock, and a signature again.
func demo(w io.Writer, tpmSpec, stateDir string) error {
	spec, err := backend.Parse(tpmSpec)
	if err != nil {
		return err
	}
	tpm, err := backend.Open(spec)
	if err != nil {
		return err
	}
	defer tpm.Close()
	if !spec.HardwareProtected() {
		fmt.Fprintf(w, "WARNING: TPM backend %s is software: keys are NOT hardware-protected (demo only)\n\n", spec)
	}
	if stateDir == "" {
		if stateDir, err = os.MkdirTemp("", "tpmcard-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(stateDir)
	}
	m, err := tpmcard.Open(tpm, tpmcard.WithStateDir(stateDir))
	if err != nil {
		return err
	}
	defer m.Close()

	step := func(format string, a ...any) { fmt.Fprintf(w, "==> "+format+"\n", a...) }

	step("create a card with the default PIN %s", tpmcard.DefaultPIN)
	c, err := m.Create(tpmcard.CreateOptions{Label: "demo card", PINTries: 3})
	if err != nil {
		return err
	}
	serial := c.Card.Serial
	fmt.Fprintf(w, "    serial %s, PUK %s (shown once: the administrator keeps it)\n", serial, string(c.PUK))
	puk := c.PUK

	step("generate an ECDSA P-256 key inside the TPM")
	k, err := m.GenerateKey(context.Background(), serial, tpmcard.KeyOptions{Algorithm: tpmcard.ECDSAP256, Label: "sign-in"}, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    key %x\n", k.ID)

	challenge := sha256.Sum256([]byte("sign-in challenge from the server"))
	sign := func() error {
		sig, err := m.Sign(serial, k.ID, challenge[:], tpmcard.SignOptions{Hash: crypto.SHA256})
		if err != nil {
			return err
		}
		asn, err := tpmcard.RawToASN1(sig)
		if err != nil {
			return err
		}
		if !ecdsa.VerifyASN1(k.Public.(*ecdsa.PublicKey), challenge[:], asn) {
			return errors.New("signature does not verify")
		}
		fmt.Fprintf(w, "    signature verified with the exported public key (%d bytes r||s)\n", len(sig))
		return nil
	}

	step("log in with the default PIN and try to sign")
	if err := m.Login(serial, secret.FromString(tpmcard.DefaultPIN)); err != nil {
		return err
	}
	if err := sign(); !errors.Is(err, tpmcard.ErrPINExpired) {
		return fmt.Errorf("signing with the default PIN: got %v, want a refusal", err)
	}
	fmt.Fprintf(w, "    refused: %v\n", tpmcard.ErrPINExpired)

	pin := secret.FromString("my new PIN 2468")
	step("change the PIN, then sign")
	if err := m.ChangePIN(serial, secret.FromString(tpmcard.DefaultPIN), pin); err != nil {
		return err
	}
	if err := sign(); err != nil {
		return err
	}

	step("log out and guess wrong PINs until the TPM locks the card")
	m.Logout(serial)
	for i := 1; ; i++ {
		err := m.Login(serial, secret.FromString(fmt.Sprintf("guess %04d", i)))
		fmt.Fprintf(w, "    guess %d: %v\n", i, err)
		if errors.Is(err, tpmcard.ErrPINLocked) {
			break
		}
		if i > 10 {
			return errors.New("the card never locked")
		}
	}
	if err := m.Login(serial, pin); !errors.Is(err, tpmcard.ErrPINLocked) {
		return fmt.Errorf("right PIN on a locked card: got %v", err)
	}
	fmt.Fprintf(w, "    even the right PIN is refused now: %v\n", tpmcard.ErrPINLocked)

	step("unblock with the PUK and set a new PIN (which must be changed again)")
	temp := secret.FromString("temporary 1357")
	if err := m.Unblock(serial, puk, temp); err != nil {
		return err
	}
	st, err := m.Status(serial)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    PIN tries left %d/%d, PUK tries left %d/%d, must change %v\n",
		st.PINTriesLeft, st.PINTries, st.PUKTriesLeft, st.PUKTries, st.MustChange)
	if err := m.Login(serial, temp); err != nil {
		return err
	}
	if err := m.ChangePIN(serial, temp, pin); err != nil {
		return err
	}

	step("sign again")
	if err := sign(); err != nil {
		return err
	}
	step("destroy the card")
	if err := m.Destroy(serial); err != nil {
		return err
	}
	fmt.Fprintln(w, "done")
	return nil
}
