package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/x509req"
)

// parseCerts reads PEM (CERTIFICATE blocks, other blocks refused) or one
// DER certificate.
func parseCerts(b []byte, what string) ([]*x509.Certificate, error) {
	trimmed := bytes.TrimSpace(b)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		c, err := tpmcard.ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("%s is neither PEM nor one DER certificate: %w", what, err)
		}
		return []*x509.Certificate{c}, nil
	}
	var out []*x509.Certificate
	rest := trimmed
	for len(bytes.TrimSpace(rest)) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("%s: malformed PEM after %d certificate(s)", what, len(out))
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: PEM block %q, want CERTIFICATE", what, blk.Type)
		}
		c, err := tpmcard.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", what, len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", what)
	}
	return out, nil
}

type importArgs struct {
	c            common
	file, chain  string
	label        string
	template     string
	allowExpired bool
}

func certImport(e *env, args []string) error {
	fs := flags(e, "cert import")
	var ia importArgs
	ia.c.add(fs, true, false)
	fs.StringVar(&ia.chain, "chain", "", "a `FILE` of the issuing CA's certificates (PEM), to check the certificate against")
	fs.StringVar(&ia.label, "label", "", "certificate label (default: its key's label)")
	fs.StringVar(&ia.template, "template", x509req.DefaultTemplate, "the template whose key usage and EKUs to expect: smartcard-logon, client-auth, email, pkinit or none")
	fs.BoolVar(&ia.allowExpired, "allow-expired", false, "install an expired certificate all the same")
	fs.StringVar(&ia.file, "in", "", "the certificate `FILE` (PEM, the leaf first, or DER), - for standard input")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errShown, err)
	}
	if fs.NArg() > 0 || ia.file == "" {
		return fmt.Errorf("%w: name the certificate with --in FILE: tpmcard cert import --in FILE [flags]", errUsage)
	}
	return ia.run(e)
}

func (ia *importArgs) run(e *env) error {
	tmpl, err := parseTemplate(ia.template)
	if err != nil {
		return err
	}
	b, err := readInput(e, ia.file)
	if err != nil {
		return err
	}
	what := ia.file
	if what == "-" {
		what = "standard input"
	}
	certs, err := parseCerts(b, what)
	if err != nil {
		return err
	}
	leaf := certs[0]
	var chain []*x509.Certificate
	if len(certs) > 1 {
		chain = certs[1:] // a bundle: the leaf first, then its issuers
	}
	if ia.chain != "" {
		cb, err := readFile(ia.chain)
		if err != nil {
			return err
		}
		if len(cb) > maxChainSize {
			return fmt.Errorf("--chain %s: %d bytes, the limit is %d", ia.chain, len(cb), maxChainSize)
		}
		more, err := parseCerts(cb, ia.chain)
		if err != nil {
			return err
		}
		chain = append(chain, more...)
	}
	if len(chain) > maxChainLen {
		return fmt.Errorf("the chain holds %d certificates, the limit is %d", len(chain), maxChainLen)
	}
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter) && !ia.allowExpired:
		return fmt.Errorf("the certificate expired on %s: nothing was installed (--allow-expired installs it all the same)", leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.After(leaf.NotAfter):
		warn(e, "the certificate expired on %s", leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(leaf.NotBefore):
		warn(e, "the certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for _, w := range x509req.UsageWarnings(leaf, tmpl) {
		warn(e, "%s", w)
	}
	if len(chain) > 0 {
		if err := x509req.VerifyChain(leaf, chain); err != nil {
			return fmt.Errorf("the certificate does not chain to the given CA certificates: %w (nothing was installed)", err)
		}
	}
	cl, t, err := ia.c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	keys, err := listKeys(cl, t.Serial)
	if err != nil {
		return err
	}
	var k *keyView
	for i := range keys {
		if eq, ok := keys[i].Public.(interface{ Equal(crypto.PublicKey) bool }); ok && eq.Equal(leaf.PublicKey) {
			k = &keys[i]
		}
	}
	if k == nil {
		return fmt.Errorf("the certificate (subject %q) is for a key that is not on card %s: nothing was installed; `tpmcard key list` shows the card's keys", leaf.Subject.String(), t.Serial)
	}
	ci, err := cl.ImportCertificate(t.Serial, leaf.Raw, ia.label)
	if err != nil {
		if wire.StatusOf(err) == wire.KeyNotFound {
			return fmt.Errorf("the certificate is for a key that is not on card %s: nothing was installed", t.Serial)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "certificate %q installed on card %s for key %s (%s)\n", leaf.Subject.String(), t.Serial, hex.EncodeToString(ci.KeyID), k.Label)
	return nil
}

// usageWarnings compares the certificate with the template.
