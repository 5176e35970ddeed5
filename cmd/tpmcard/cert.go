package main

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/x509req"
)

func init() {
	register("cert", "request", "write a certificate request (PKCS#10) signed by a card key", certRequest)
	register("cert", "import", "install a certificate on the card beside its key (administrators)", certImport)
	register("cert", "list", "list the card's certificates", certList)
	register("cert", "export", "print a certificate (PEM or DER)", certExport)
	register("cert", "delete", "remove a certificate from the card (administrators)", certDelete)
	register("cert", "self-sign", "make a self-signed certificate for a card key and install it", certSelfSign)
}

func parseTemplate(name string) (x509req.Template, error) {
	t, err := x509req.LookupTemplate(name)
	if err != nil {
		return t, fmt.Errorf("%w: --template: %w", errUsage, err)
	}
	return t, nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// requestFlags describe the request's contents; cert request, cert
// self-sign and enroll share them.
type requestFlags struct {
	subject, upn, template, hash string
	dns, email, uri, eku         listFlag
	principal                    listFlag
	sha1                         bool
}

func (r *requestFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&r.subject, "subject", "", `subject, e.g. "CN=Alice Smith,O=Example,C=DE" (`+x509req.SubjectAttributes+`)`)
	fs.Var(&r.dns, "dns", "DNS name for the subject alternative name (repeatable)")
	fs.Var(&r.email, "email", "email address for the subject alternative name (repeatable)")
	fs.Var(&r.uri, "uri", "URI for the subject alternative name (repeatable)")
	fs.StringVar(&r.upn, "upn", "", "Microsoft user principal name (otherName 1.3.6.1.4.1.311.20.2.3), e.g. alice@corp.example")
	fs.Var(&r.principal, "principal", "Kerberos principal for PKINIT (otherName id-pkinit-san), e.g. alice@EXAMPLE.ORG (repeatable)")
	fs.StringVar(&r.template, "template", x509req.DefaultTemplate, "key usage and EKU profile: smartcard-logon, client-auth, email, pkinit or none")
	fs.Var(&r.eku, "eku", "extra extended key usage OID, dotted (repeatable)")
	fs.StringVar(&r.hash, "hash", "sha256", "signature hash: sha256, sha384 or sha512 (sha-256 … name them too)")
	fs.BoolVar(&r.sha1, "sha1-insecure", false, "sign with SHA-1 (INSECURE; only for CAs that still demand it)")
}

// build turns the flags into the request's contents for the key pub; a
// flag that does not parse is a usage error that names it.
func (r *requestFlags) build(e *env, pub crypto.PublicKey) (*x509req.Contents, error) {
	var req x509req.Request
	var err error
	if req.Template, err = parseTemplate(r.template); err != nil {
		return nil, err
	}
	if req.Subject, err = x509req.ParseSubject(r.subject); err != nil {
		return nil, fmt.Errorf("%w: --subject: %w", errUsage, err)
	}
	req.Names = x509req.Names{DNS: r.dns, Email: r.email, URI: r.uri, UPN: r.upn}
	for _, s := range r.principal {
		p, err := x509req.ParsePrincipal(s)
		if err != nil {
			return nil, fmt.Errorf("%w: --principal: %w", errUsage, err)
		}
		req.Names.Principals = append(req.Names.Principals, p)
	}
	if req.Hash, err = parseHash(r.hash); err != nil {
		return nil, err
	}
	if r.sha1 {
		if req.Hash != crypto.SHA256 {
			return nil, fmt.Errorf("%w: --sha1-insecure and --hash exclude each other", errUsage)
		}
		fmt.Fprintln(e.stderr, "tpmcard: WARNING: signing with SHA-1, which is broken for signatures (chosen-prefix collisions): use it only for a CA that accepts nothing else")
		req.Hash = crypto.SHA1
	}
	for _, s := range r.eku {
		oid, err := x509req.ParseOID(s)
		if err != nil {
			return nil, fmt.Errorf("%w: --eku: %w", errUsage, err)
		}
		req.ExtraEKUs = append(req.ExtraEKUs, oid)
	}
	c, err := req.Build(pub)
	if err == nil {
		for _, w := range req.PKINITWarnings() {
			warn(e, "%s", w)
		}
	}
	var ne *x509req.NameError
	switch {
	case errors.Is(err, x509req.ErrNoName):
		return nil, fmt.Errorf("%w: give a --subject or at least one subject alternative name (--dns, --email, --uri, --upn, --principal)", errUsage)
	case errors.As(err, &ne):
		return nil, fmt.Errorf("%w: --%s %q is not %s", errUsage, strings.ToLower(ne.Kind), ne.Value, ne.Want)
	}
	return c, err
}

// cardSigner logs in to the card and returns a signer for the key.
func cardSigner(e *env, cl *client.Client, serial string, k keyView, pinStdin bool) (*client.Signer, error) {
	pin, err := newSecrets(e).get("PIN", "--pin-stdin", pinStdin, false)
	if err != nil {
		return nil, err
	}
	defer pin.Wipe()
	sess, err := cl.OpenSession(serial, false)
	if err != nil {
		return nil, err
	}
	if err := cl.Login(sess, wire.UserNormal, pin); err != nil {
		return nil, err
	}
	return cl.Signer(serial, mustHex(k.ID))
}

// requestCmd is cert request and enroll: the shared flags and the work.
type requestCmd struct {
	c        common
	rf       requestFlags
	key      string
	out      string
	der      bool
	attest   string
	pinStdin bool
}

func (r *requestCmd) add(fs *flag.FlagSet) {
	r.c.add(fs, true, false)
	r.rf.add(fs)
	keyFlag(fs, &r.key, oneKey)
	fs.StringVar(&r.out, "out", "-", "the `FILE` to write the request to, - for standard output")
	fs.BoolVar(&r.der, "der", false, "write DER instead of PEM")
	fs.StringVar(&r.attest, "attest", "", "also write the key's attestation statement to this file (administrators)")
	fs.BoolVar(&r.pinStdin, "pin-stdin", false, "read the PIN from the first line of standard input")
}

func (r *requestCmd) run(e *env, cl *client.Client, t wire.TokenInfo, k keyView) error {
	c, err := r.rf.build(e, k.Public)
	if err != nil {
		return err
	}
	s, err := cardSigner(e, cl, t.Serial, k, r.pinStdin)
	if err != nil {
		return err
	}
	defer s.Close()
	der, err := x509req.CreateRequest(s, c)
	if err != nil {
		return err
	}
	if r.attest != "" {
		// The statement's nonce is the request's hash: it names this request.
		sum := sha256.Sum256(der)
		st, err := cl.AttestKey(t.Serial, mustHex(k.ID), sum[:])
		if err != nil {
			return fmt.Errorf("attesting key %s: %w", k.ID, err)
		}
		if err := os.WriteFile(r.attest, st, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", r.attest, err)
		}
	}
	if err := writeOut(e, r.out, "CERTIFICATE REQUEST", der, r.der); err != nil {
		return err
	}
	if r.out != "-" {
		fmt.Fprintf(e.stderr, "request for key %s (%s) written to %s\n", k.ID, k.Algorithm, r.out)
	}
	return nil
}

func certRequest(e *env, args []string) error {
	fs := flags(e, "cert request")
	var r requestCmd
	r.add(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cl, t, k, err := r.c.openKey(r.key)
	if err != nil {
		return err
	}
	defer cl.Close()
	return r.run(e, cl, t, k)
}

// ---------------------------------------------------------------------------
// List, export, delete, self-sign.

type certView struct {
	KeyID     string    `json:"key_id"`
	Label     string    `json:"label"`
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial_number"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	SHA256    string    `json:"sha256"`
}

func viewCert(c client.Certificate) certView {
	sum := sha256.Sum256(c.DER)
	return certView{
		KeyID: hex.EncodeToString(c.KeyID), Label: c.Label, Subject: c.Certificate.Subject.String(),
		Issuer: c.Certificate.Issuer.String(), Serial: c.Certificate.SerialNumber.Text(16),
		NotBefore: c.Certificate.NotBefore.UTC(), NotAfter: c.Certificate.NotAfter.UTC(), SHA256: hex.EncodeToString(sum[:]),
	}
}

func certList(e *env, args []string) error {
	fs := flags(e, "cert list")
	var c common
	c.add(fs, true, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	certs, err := cl.Certificates(t.Serial)
	if err != nil {
		return err
	}
	views := make([]certView, 0, len(certs))
	for _, ci := range certs {
		views = append(views, viewCert(ci))
	}
	if c.json {
		return printJSON(e.stdout, views)
	}
	if len(views) == 0 {
		fmt.Fprintf(e.stdout, "card %s holds no certificate\n", t.Serial)
		return nil
	}
	for _, v := range views {
		fmt.Fprintf(e.stdout, "key %s  %s\n  subject  %s\n  issuer   %s\n  serial   %s\n  valid    %s to %s\n",
			v.KeyID, v.Label, v.Subject, v.Issuer, v.Serial, v.NotBefore.Format(time.DateOnly), v.NotAfter.Format(time.DateOnly))
	}
	return nil
}

// pickCert finds the certificate of the key that --key names (pickKey),
// or with no name the card's only certificate.
func pickCert(cl *client.Client, serial, name string) (client.Certificate, error) {
	certs, err := cl.Certificates(serial)
	if err != nil {
		return client.Certificate{}, err
	}
	if name == "" {
		switch len(certs) {
		case 1:
			return certs[0], nil
		case 0:
			return client.Certificate{}, fmt.Errorf("card %s holds no certificate", serial)
		}
		return client.Certificate{}, fmt.Errorf("%w: the card holds %d certificates: choose one with --key (`tpmcard cert list` shows them)", errUsage, len(certs))
	}
	keys, err := listKeys(cl, serial)
	if err != nil {
		return client.Certificate{}, err
	}
	k, err := pickKey(keys, name)
	if err != nil {
		return client.Certificate{}, err
	}
	for _, c := range certs {
		if hex.EncodeToString(c.KeyID) == k.ID {
			return c, nil
		}
	}
	return client.Certificate{}, fmt.Errorf("key %s (%s) has no certificate on card %s: `tpmcard cert list` shows the certificates", k.ID, k.Label, serial)
}

func certExport(e *env, args []string) error {
	fs := flags(e, "cert export")
	var c common
	c.add(fs, true, false)
	var name string
	keyFlag(fs, &name, "whose certificate; may be left out when the card holds one certificate")
	out := fs.String("out", "-", "the `FILE` to write it to, - for standard output")
	der := fs.Bool("der", false, "write DER instead of PEM")
	if err := parse(fs, args); err != nil {
		return err
	}
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	ci, err := pickCert(cl, t.Serial, name)
	if err != nil {
		return err
	}
	return writeOut(e, *out, "CERTIFICATE", ci.DER, *der)
}

func certDelete(e *env, args []string) error {
	fs := flags(e, "cert delete")
	var c common
	c.add(fs, true, false)
	var name string
	keyFlag(fs, &name, "whose certificate; may be left out when the card holds one certificate")
	yes := fs.Bool("yes", false, "confirm: the certificate is removed from the card (the key stays)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !*yes {
		return fmt.Errorf("%w: removing a certificate needs --yes", errUsage)
	}
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	ci, err := pickCert(cl, t.Serial, name)
	if err != nil {
		return err
	}
	if err := cl.DeleteCertificate(t.Serial, ci.KeyID); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "certificate of key %x removed from card %s\n", ci.KeyID, t.Serial)
	return nil
}

func certSelfSign(e *env, args []string) error {
	fs := flags(e, "cert self-sign")
	var r requestCmd
	r.c.add(fs, true, false)
	r.rf.add(fs)
	keyFlag(fs, &r.key, oneKey)
	fs.StringVar(&r.out, "out", "", "also write the certificate (PEM) to this `FILE`, - for standard output")
	fs.BoolVar(&r.pinStdin, "pin-stdin", false, "read the PIN from the first line of standard input")
	days := fs.Int("days", 365, "validity in days")
	install := fs.Bool("install", true, "install the certificate on the card (administrators)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *days < 1 || *days > 36500 {
		return fmt.Errorf("%w: --days must be 1 to 36500", errUsage)
	}
	if r.rf.sha1 {
		return fmt.Errorf("%w: --sha1-insecure applies to requests only", errUsage)
	}
	cl, t, k, err := r.c.openKey(r.key)
	if err != nil {
		return err
	}
	defer cl.Close()
	c, err := r.rf.build(e, k.Public)
	if err != nil {
		return err
	}
	s, err := cardSigner(e, cl, t.Serial, k, r.pinStdin)
	if err != nil {
		return err
	}
	defer s.Close()
	now := time.Now().Add(-5 * time.Minute).UTC().Truncate(time.Second)
	der, err := x509req.CreateSelfSigned(s, c, mustHex(k.ID), now, now.Add(time.Duration(*days)*24*time.Hour))
	if err != nil {
		return err
	}
	if *install {
		if _, err := cl.ImportCertificate(t.Serial, der, ""); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "self-signed certificate installed on card %s for key %s\n", t.Serial, k.ID)
	}
	if r.out != "" {
		return writeOut(e, r.out, "CERTIFICATE", der, false)
	}
	return nil
}
