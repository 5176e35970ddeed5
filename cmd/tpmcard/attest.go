package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/tpmcard/tpmcard/tpmcard/attest"
)

func init() {
	register("key", "attest", "write a key attestation statement a CA can verify (administrators)", keyAttest)
	register("attest", "verify", "check a key attestation statement offline (no service needed)", attestVerify)
}

func keyAttest(e *env, args []string) error {
	fs := flags(e, "key attest")
	var c common
	c.add(fs, true, false)
	var name string
	keyFlag(fs, &name, oneKey)
	out := fs.String("out", "-", "the `FILE` to write the statement (JSON) to, - for standard output")
	nonceHex := fs.String("nonce", "", "the verifier's challenge in `HEX` (up to 64 bytes)")
	if err := parse(fs, args); err != nil {
		return err
	}
	nonce, err := hex.DecodeString(*nonceHex)
	if err != nil || len(nonce) > 64 {
		return fmt.Errorf("%w: --nonce must be hex, at most 64 bytes", errUsage)
	}
	cl, t, k, err := c.openKey(name)
	if err != nil {
		return err
	}
	defer cl.Close()
	st, err := cl.AttestKey(t.Serial, mustHex(k.ID), nonce)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = e.stdout.Write(st)
		return err
	}
	if err := os.WriteFile(*out, st, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	fmt.Fprintf(e.stderr, "attestation of key %s written to %s\n", k.ID, *out)
	return nil
}

// verifyReport is attest verify's output.
type verifyReport struct {
	Verified      bool     `json:"verified"`
	Card          string   `json:"card"`
	KeyID         string   `json:"key_id"`
	PublicKey     string   `json:"public_key"` // PEM
	AKName        string   `json:"ak_name"`
	PINIndex      string   `json:"pin_index"`
	PINLimit      uint32   `json:"pin_limit"`
	HasPUK        bool     `json:"has_puk"`
	PUKLimit      uint32   `json:"puk_limit,omitempty"`
	AdminKey      string   `json:"admin_key,omitempty"` // PEM
	BoundToCSR    bool     `json:"bound_to_request,omitempty"`
	EKCertSubject string   `json:"ek_certificate_subject,omitempty"`
	EKCertIssuer  string   `json:"ek_certificate_issuer,omitempty"`
	Checked       []string `json:"checked"`
	NotProved     []string `json:"not_proved"`
}

func attestVerify(e *env, args []string) error {
	fs := flags(e, "attest verify")
	stPath := fs.String("statement", "", "the statement `FILE` (JSON) that key attest or cert request --attest wrote")
	csrPath := fs.String("csr", "", "a certificate request `FILE` (PEM or DER): its key must be the attested key")
	nonceHex := fs.String("nonce", "", "the challenge (`HEX`) the statement must answer")
	akPath := fs.String("ak", "", "pin the attestation key: an earlier statement `FILE` of the same TPM (or its raw akPubArea)")
	js := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *stPath == "" {
		return fmt.Errorf("%w: --statement is required", errUsage)
	}
	b, err := readFile(*stPath)
	if err != nil {
		return err
	}
	st, err := attest.Parse(b)
	if err != nil {
		return err
	}
	var opts attest.Options
	if *nonceHex != "" {
		if opts.Nonce, err = hex.DecodeString(*nonceHex); err != nil {
			return fmt.Errorf("%w: --nonce is not hex", errUsage)
		}
	}
	if *akPath != "" {
		ab, err := readFile(*akPath)
		if err != nil {
			return err
		}
		opts.AKPubArea = ab
		if earlier, err := attest.Parse(ab); err == nil {
			opts.AKPubArea = earlier.AKPubArea
		}
	}
	var csrRaw []byte
	if *csrPath != "" {
		cb, err := readFile(*csrPath)
		if err != nil {
			return err
		}
		if blk, _ := pem.Decode(cb); blk != nil {
			if blk.Type != "CERTIFICATE REQUEST" && blk.Type != "NEW CERTIFICATE REQUEST" {
				return fmt.Errorf("%s: PEM block %q, want CERTIFICATE REQUEST", *csrPath, blk.Type)
			}
			cb = blk.Bytes
		}
		csr, err := x509.ParseCertificateRequest(cb)
		if err != nil {
			return fmt.Errorf("%s is not a certificate request: %w", *csrPath, err)
		}
		if err := csr.CheckSignature(); err != nil {
			return fmt.Errorf("%s: the request's signature does not verify: %w", *csrPath, err)
		}
		opts.PublicKey, csrRaw = csr.PublicKey, csr.Raw
	}
	res, err := attest.Verify(st, opts)
	if err != nil {
		return err
	}
	spki, err := x509.MarshalPKIXPublicKey(res.PublicKey)
	if err != nil {
		return err
	}
	rep := verifyReport{
		Verified: true, Card: res.Card, KeyID: hex.EncodeToString(res.KeyID),
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})),
		AKName:    hex.EncodeToString(res.AKName), PINIndex: fmt.Sprintf("%#x", res.PINIndex), PINLimit: res.PINLimit,
		HasPUK: res.HasPUK, PUKLimit: res.PUKLimit,
		Checked: res.Checked, NotProved: res.NotProved,
	}
	if res.AdminKey != nil {
		ab, err := x509.MarshalPKIXPublicKey(res.AdminKey)
		if err != nil {
			return err
		}
		rep.AdminKey = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ab}))
	}
	if csrRaw != nil {
		sum := sha256.Sum256(csrRaw)
		rep.BoundToCSR = bytes.Equal(st.Nonce, sum[:])
	}
	if res.EKCert != nil {
		rep.EKCertSubject, rep.EKCertIssuer = res.EKCert.Subject.String(), res.EKCert.Issuer.String()
	}
	if *js {
		return printJSON(e.stdout, rep)
	}
	fmt.Fprintf(e.stdout, "attestation verified: key %s of card %s is a TPM key usable only after the card's PIN (the TPM locks it after %d wrong PINs)\n",
		rep.KeyID, rep.Card, rep.PINLimit)
	switch {
	case rep.HasPUK && rep.AdminKey != "":
		fmt.Fprintf(e.stdout, "the PIN counter is reset only with the PUK (the TPM locks it after %d wrong PUKs) or the admin key below\n", rep.PUKLimit)
	case rep.HasPUK:
		fmt.Fprintf(e.stdout, "the PIN counter is reset only with the PUK (the TPM locks it after %d wrong PUKs)\n", rep.PUKLimit)
	default:
		fmt.Fprintln(e.stdout, "the card has no PUK: the PIN counter is reset only with the admin key below")
	}
	if rep.AdminKey != "" {
		fmt.Fprint(e.stdout, "admin key (check that it is your administrator's):\n"+rep.AdminKey)
	}
	if csrRaw != nil {
		fmt.Fprintln(e.stdout, "the certificate request's key is the attested key")
		if rep.BoundToCSR {
			fmt.Fprintln(e.stdout, "the statement was made for this very request (its nonce is the request's SHA-256)")
		}
	}
	fmt.Fprintf(e.stdout, "attestation key name: %s\n", rep.AKName)
	if rep.EKCertSubject != "" {
		fmt.Fprintf(e.stdout, "EK certificate (NOT verified, not bound to the AK): subject %q, issuer %q\n", rep.EKCertSubject, rep.EKCertIssuer)
	} else {
		fmt.Fprintln(e.stdout, "no EK certificate in the statement (the TPM's NV holds none)")
	}
	fmt.Fprintln(e.stdout, "checked:")
	for _, c := range rep.Checked {
		fmt.Fprintln(e.stdout, "  - "+c)
	}
	fmt.Fprintln(e.stdout, "NOT proved by this statement:")
	for _, c := range rep.NotProved {
		fmt.Fprintln(e.stdout, "  - "+c)
	}
	return nil
}
