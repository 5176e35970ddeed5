package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

func init() {
	register("cert", "request", "write a certificate request (PKCS#10) signed by a card key", certRequest)
	register("cert", "import", "install a certificate on the card beside its key (administrators)", certImport)
	register("cert", "list", "list the card's certificates", certList)
	register("cert", "export", "print a certificate (PEM or DER)", certExport)
	register("cert", "delete", "remove a certificate from the card (administrators)", certDelete)
	register("cert", "self-sign", "make a self-signed certificate for a card key and install it", certSelfSign)
	register("", "enroll", "generate a key if needed and write its request; --import finishes", enroll)
}

// Limits on what the CLI reads.
const (
	maxInputFile = 1 << 20 // any PEM/DER/JSON input file
	maxChainLen  = 8       // certificates in --chain
	maxChainSize = 64 << 10
)

// OIDs (RFC 5280 §4.2.1; Microsoft's smart card logon and UPN).
var (
	oidExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidExtSAN         = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidUPN            = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
	oidSmartcardLogon = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
	oidClientAuth     = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	oidEmailProtect   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 4}
)

// certTemplate is a named certificate profile: key usage and EKUs.
type certTemplate struct {
	keyEncipherRSA bool // keyEncipherment too, for RSA keys
	ekus           []asn1.ObjectIdentifier
}

var certTemplates = map[string]certTemplate{
	"smartcard-logon": {keyEncipherRSA: true, ekus: []asn1.ObjectIdentifier{oidSmartcardLogon, oidClientAuth}},
	"client-auth":     {ekus: []asn1.ObjectIdentifier{oidClientAuth}},
	"email":           {ekus: []asn1.ObjectIdentifier{oidEmailProtect}},
	"none":            {},
}

func parseTemplate(name string) (certTemplate, error) {
	t, ok := certTemplates[name]
	if !ok {
		return t, fmt.Errorf("%w: --template %q: want smartcard-logon, client-auth, email or none", errUsage, name)
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
	sha1                         bool
}

func (r *requestFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&r.subject, "subject", "", `subject, e.g. "CN=Alice Smith,O=Example,C=DE" (CN, O, OU, C, L, ST, STREET, POSTALCODE, SERIALNUMBER, DC, UID, E)`)
	fs.Var(&r.dns, "dns", "DNS name for the subject alternative name (repeatable)")
	fs.Var(&r.email, "email", "email address for the subject alternative name (repeatable)")
	fs.Var(&r.uri, "uri", "URI for the subject alternative name (repeatable)")
	fs.StringVar(&r.upn, "upn", "", "Microsoft user principal name (otherName 1.3.6.1.4.1.311.20.2.3), e.g. alice@corp.example")
	fs.StringVar(&r.template, "template", "smartcard-logon", "key usage and EKU profile: smartcard-logon, client-auth, email or none")
	fs.Var(&r.eku, "eku", "extra extended key usage OID, dotted (repeatable)")
	fs.StringVar(&r.hash, "hash", "sha256", "signature hash: sha256, sha384 or sha512")
	fs.BoolVar(&r.sha1, "sha1-insecure", false, "sign with SHA-1 (INSECURE; only for CAs that still demand it)")
}

// contents is what a request or certificate carries besides the key.
type contents struct {
	rawSubject []byte
	subject    pkix.Name
	extensions []pkix.Extension
	hash       crypto.Hash
	tmpl       certTemplate
}

func (r *requestFlags) build(e *env, pub crypto.PublicKey) (*contents, error) {
	c := &contents{}
	var err error
	if c.tmpl, err = parseTemplate(r.template); err != nil {
		return nil, err
	}
	if r.subject == "" && r.upn == "" && len(r.dns)+len(r.email)+len(r.uri) == 0 {
		return nil, fmt.Errorf("%w: give a --subject or at least one subject alternative name", errUsage)
	}
	rdn, err := parseSubject(r.subject)
	if err != nil {
		return nil, err
	}
	if c.rawSubject, err = asn1.Marshal(rdn); err != nil {
		return nil, err
	}
	c.subject.FillFromRDNSequence(&rdn)
	switch {
	case r.sha1:
		if r.hash != "sha256" {
			return nil, fmt.Errorf("%w: --sha1-insecure and --hash exclude each other", errUsage)
		}
		fmt.Fprintln(e.stderr, "tpmcard: WARNING: signing with SHA-1, which is broken for signatures (chosen-prefix collisions): use it only for a CA that accepts nothing else")
		c.hash = crypto.SHA1
	default:
		h, ok := map[string]crypto.Hash{"sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512}[r.hash]
		if !ok {
			return nil, fmt.Errorf("%w: --hash %q: want sha256, sha384 or sha512", errUsage, r.hash)
		}
		c.hash = h
	}
	san, err := r.san()
	if err != nil {
		return nil, err
	}
	if san != nil {
		// Critical when the subject is empty (RFC 5280 §4.2.1.6).
		c.extensions = append(c.extensions, pkix.Extension{Id: oidExtSAN, Critical: len(rdn) == 0, Value: san})
	}
	if r.template != "none" {
		_, isRSA := pub.(*rsa.PublicKey)
		ku := asn1.BitString{Bytes: []byte{0x80}, BitLength: 1} // digitalSignature
		if isRSA && c.tmpl.keyEncipherRSA {
			ku = asn1.BitString{Bytes: []byte{0xa0}, BitLength: 3} // + keyEncipherment
		}
		der, err := asn1.Marshal(ku)
		if err != nil {
			return nil, err
		}
		c.extensions = append(c.extensions, pkix.Extension{Id: oidExtKeyUsage, Critical: true, Value: der})
	}
	ekus := append([]asn1.ObjectIdentifier(nil), c.tmpl.ekus...)
	for _, s := range r.eku {
		oid, err := parseOID(s)
		if err != nil {
			return nil, err
		}
		ekus = append(ekus, oid)
	}
	if len(ekus) > 0 {
		der, err := asn1.Marshal(ekus)
		if err != nil {
			return nil, err
		}
		c.extensions = append(c.extensions, pkix.Extension{Id: oidExtExtKeyUsage, Value: der})
	}
	return c, nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	parts := strings.Split(s, ".")
	for _, p := range parts {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != p {
			return nil, fmt.Errorf("%w: --eku %q is not a dotted OID", errUsage, s)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 || oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, fmt.Errorf("%w: --eku %q is not a valid OID", errUsage, s)
	}
	return oid, nil
}

// san encodes the subjectAltName GeneralNames (RFC 5280 §4.2.1.6), with
// the UPN as otherName { type-id, [0] EXPLICIT UTF8String }.
func (r *requestFlags) san() ([]byte, error) {
	var names []asn1.RawValue
	tagged := func(tag int, v string) {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, Bytes: []byte(v)})
	}
	for _, d := range r.email {
		if !strings.Contains(d, "@") || !isASCII(d) {
			return nil, fmt.Errorf("%w: --email %q is not an ASCII email address", errUsage, d)
		}
		tagged(1, d)
	}
	for _, d := range r.dns {
		if d == "" || !isASCII(d) || strings.ContainsAny(d, " /@") {
			return nil, fmt.Errorf("%w: --dns %q is not a DNS name (use its A-label form for IDNs)", errUsage, d)
		}
		tagged(2, d)
	}
	for _, u := range r.uri {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme == "" || !isASCII(u) {
			return nil, fmt.Errorf("%w: --uri %q is not an absolute ASCII URI", errUsage, u)
		}
		tagged(6, u)
	}
	if r.upn != "" {
		v, err := asn1.MarshalWithParams(r.upn, "utf8")
		if err != nil {
			return nil, err
		}
		oid, _ := asn1.Marshal(oidUPN)
		inner, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: v})
		if err != nil {
			return nil, err
		}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, inner...)})
	}
	if len(names) == 0 {
		return nil, nil
	}
	return asn1.Marshal(names)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

var subjectAttrs = map[string]asn1.ObjectIdentifier{
	"CN": {2, 5, 4, 3}, "SERIALNUMBER": {2, 5, 4, 5}, "C": {2, 5, 4, 6}, "L": {2, 5, 4, 7}, "ST": {2, 5, 4, 8},
	"STREET": {2, 5, 4, 9}, "O": {2, 5, 4, 10}, "OU": {2, 5, 4, 11}, "POSTALCODE": {2, 5, 4, 17},
	"DC": {0, 9, 2342, 19200300, 100, 1, 25}, "UID": {0, 9, 2342, 19200300, 100, 1, 1},
	"E": {1, 2, 840, 113549, 1, 9, 1}, "EMAILADDRESS": {1, 2, 840, 113549, 1, 9, 1},
}

// parseSubject reads "CN=a,O=b" (RFC 4514 order: as written, one
// attribute per RDN; "\," escapes a comma) into an RDN sequence.
func parseSubject(s string) (pkix.RDNSequence, error) {
	var rdn pkix.RDNSequence
	if strings.TrimSpace(s) == "" {
		return rdn, nil
	}
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case s[i] == ',':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.ToUpper(strings.TrimSpace(k)), strings.TrimSpace(v)
		oid, known := subjectAttrs[k]
		if !ok || !known || v == "" {
			return nil, fmt.Errorf("%w: --subject: %q is not ATTR=value with a known ATTR (CN, O, OU, C, L, ST, STREET, POSTALCODE, SERIALNUMBER, DC, UID, E)", errUsage, strings.TrimSpace(p))
		}
		var val any = v
		switch k {
		case "C":
			if len(v) != 2 || !isASCII(v) {
				return nil, fmt.Errorf("%w: --subject: C must be a two-letter country code", errUsage)
			}
		case "DC", "E", "EMAILADDRESS":
			if !isASCII(v) {
				return nil, fmt.Errorf("%w: --subject: %s must be ASCII", errUsage, k)
			}
			raw, _ := asn1.MarshalWithParams(v, "ia5")
			val = asn1.RawValue{FullBytes: raw}
		}
		rdn = append(rdn, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: val}})
	}
	return rdn, nil
}

// sigAlg picks the X.509 signature algorithm for a key and hash.
func sigAlg(pub crypto.PublicKey, h crypto.Hash) x509.SignatureAlgorithm {
	_, isEC := pub.(*ecdsa.PublicKey)
	switch h {
	case crypto.SHA384:
		if isEC {
			return x509.ECDSAWithSHA384
		}
		return x509.SHA384WithRSA
	case crypto.SHA512:
		if isEC {
			return x509.ECDSAWithSHA512
		}
		return x509.SHA512WithRSA
	}
	if isEC {
		return x509.ECDSAWithSHA256
	}
	return x509.SHA256WithRSA
}

// sha1AlgID is the AlgorithmIdentifier of SHA-1 signatures (RFC 3279).
func sha1AlgID(pub crypto.PublicKey) pkix.AlgorithmIdentifier {
	if _, ok := pub.(*ecdsa.PublicKey); ok {
		return pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}}
	}
	return pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}, Parameters: asn1.NullRawValue}
}

// resignSHA1 signs a to-be-signed structure again with SHA-1 (the standard
// library no longer makes SHA-1 signatures) and assembles the signed
// SEQUENCE { tbs, algorithm, signature } of RFC 2986 / RFC 5280.
func resignSHA1(s crypto.Signer, tbs []byte) ([]byte, error) {
	sum := crypto.SHA1.New()
	sum.Write(tbs)
	sig, err := s.Sign(rand.Reader, sum.Sum(nil), crypto.SHA1)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(struct {
		TBS asn1.RawValue
		Alg pkix.AlgorithmIdentifier
		Sig asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, sha1AlgID(s.Public()), asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
}

// makeRequest writes a PKCS#10 request signed by s.
func makeRequest(s crypto.Signer, c *contents) ([]byte, error) {
	h := c.hash
	if h == crypto.SHA1 {
		h = crypto.SHA256
	}
	tmpl := &x509.CertificateRequest{
		RawSubject:         c.rawSubject,
		ExtraExtensions:    c.extensions,
		SignatureAlgorithm: sigAlg(s.Public(), h),
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, s)
	if err != nil {
		return nil, fmt.Errorf("signing the request with the card key: %w", err)
	}
	if c.hash == crypto.SHA1 {
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return nil, err
		}
		return resignSHA1(s, csr.RawTBSCertificateRequest)
	}
	return der, nil
}

// cardSigner logs in to the card and returns a signer for the key.
func cardSigner(e *env, cl *client.Client, serial string, k keyView, pinStdin bool) (*client.Signer, error) {
	pin, err := newSecrets(e).get("PIN", pinStdin, false)
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

// writeOut writes b to path ("-" for standard output), PEM-armoured unless
// der.
func writeOut(e *env, path, pemType string, b []byte, der bool) error {
	if !der {
		b = pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: b})
	}
	if path == "-" || path == "" {
		_, err := e.stdout.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxInputFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxInputFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a certificate, request or statement", path, maxInputFile)
	}
	return b, nil
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
	fs.StringVar(&r.key, "key", "", "key ID (hex) or label (may be left out when the card has one key)")
	fs.StringVar(&r.out, "out", "-", "where to write the request, - for standard output")
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
	der, err := makeRequest(s, c)
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

// enroll: the common case in one step.
func enroll(e *env, args []string) error {
	fs := flags(e, "enroll")
	var r requestCmd
	r.add(fs)
	alg := fs.String("alg", "ecdsa-p256", "algorithm of the key generated when the card has none: ecdsa-p256, ecdsa-p384, rsa-2048 or rsa-3072")
	imp := fs.String("import", "", "finish an enrollment: install this issued certificate (PEM or DER)")
	chain := fs.String("chain", "", "with --import: the issuing CA's certificates, to check the certificate against")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *imp != "" {
		ia := importArgs{c: r.c, file: *imp, chain: *chain, template: r.rf.template}
		return ia.run(e)
	}
	cl, t, err := r.c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	keys, err := listKeys(cl, t.Serial)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		// Check the flags before generating; run warns again, so quietly.
		quiet := *e
		quiet.stderr = io.Discard
		if _, err := r.rf.build(&quiet, nil); err != nil {
			return err
		}
		sess, err := cl.OpenSession(t.Serial, true)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "generating a %s key in the TPM\n", *alg)
		_, _, err = cl.GenerateKeyPair(sess, *alg, "enrollment", nil, nil)
		cl.CloseSession(sess)
		if err != nil {
			return err
		}
		if keys, err = listKeys(cl, t.Serial); err != nil {
			return err
		}
	}
	k, err := pickKey(keys, r.key)
	if err != nil {
		return err
	}
	return r.run(e, cl, t, k)
}

// ---------------------------------------------------------------------------
// Import.

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
	fs.StringVar(&ia.chain, "chain", "", "the issuing CA's certificates (PEM), to check the certificate against")
	fs.StringVar(&ia.label, "label", "", "certificate label (default: its key's label)")
	fs.StringVar(&ia.template, "template", "smartcard-logon", "profile whose key usage and EKUs to expect: smartcard-logon, client-auth, email or none")
	fs.BoolVar(&ia.allowExpired, "allow-expired", false, "install an expired certificate all the same")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: give one certificate file: tpmcard cert import FILE [flags]", errUsage)
	}
	ia.file = pos[0]
	return ia.run(e)
}

// parseInterspersed parses flags before and after positional arguments
// ("cert import FILE --chain CA").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", errShown, err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (ia *importArgs) run(e *env) error {
	tmpl, err := parseTemplate(ia.template)
	if err != nil {
		return err
	}
	b, err := readFile(ia.file)
	if err != nil {
		return err
	}
	certs, err := parseCerts(b, ia.file)
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
		fmt.Fprintf(e.stderr, "tpmcard: warning: the certificate expired on %s\n", leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(leaf.NotBefore):
		fmt.Fprintf(e.stderr, "tpmcard: warning: the certificate is not valid before %s\n", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for _, w := range usageWarnings(leaf, tmpl, ia.template) {
		fmt.Fprintln(e.stderr, "tpmcard: warning: "+w)
	}
	if len(chain) > 0 {
		if err := verifyChain(leaf, chain); err != nil {
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
func usageWarnings(c *x509.Certificate, tmpl certTemplate, name string) []string {
	var w []string
	if name == "none" {
		return nil
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		w = append(w, "the certificate's key usage lacks digitalSignature: clients may refuse it for sign-in")
	}
	if c.KeyUsage == 0 {
		w = append(w, "the certificate has no key usage extension")
	}
	have := map[string]bool{}
	for _, u := range c.UnknownExtKeyUsage {
		have[u.String()] = true
	}
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageClientAuth:
			have[oidClientAuth.String()] = true
		case x509.ExtKeyUsageEmailProtection:
			have[oidEmailProtect.String()] = true
		case x509.ExtKeyUsageAny:
			return w
		}
	}
	if len(have) == 0 && len(c.ExtKeyUsage) == 0 {
		if len(tmpl.ekus) > 0 {
			w = append(w, fmt.Sprintf("the certificate has no extended key usage; the %s template expects %s", name, oidList(tmpl.ekus)))
		}
		return w
	}
	for _, want := range tmpl.ekus {
		if !have[want.String()] {
			w = append(w, fmt.Sprintf("the certificate lacks the extended key usage %s of the %s template", want, name))
		}
	}
	return w
}

func oidList(oids []asn1.ObjectIdentifier) string {
	s := make([]string, len(oids))
	for i, o := range oids {
		s[i] = o.String()
	}
	return strings.Join(s, " and ")
}

// verifyChain checks the leaf's signature path through the given
// certificates: self-signed ones are roots, the rest intermediates (the
// system roots when none is self-signed). Usage is not checked here.
func verifyChain(leaf *x509.Certificate, chain []*x509.Certificate) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	haveRoot := false
	for _, c := range chain {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
			haveRoot = true
		} else {
			inter.AddCert(c)
		}
	}
	opts := x509.VerifyOptions{Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if haveRoot {
		opts.Roots = roots
	}
	if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		opts.CurrentTime = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2) // dates were judged above
	}
	_, err := leaf.Verify(opts)
	return err
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

// pickCert finds the certificate of the named key, or the only one.
func pickCert(cl *client.Client, serial, name string) (client.Certificate, error) {
	certs, err := cl.Certificates(serial)
	if err != nil {
		return client.Certificate{}, err
	}
	var found []client.Certificate
	for _, c := range certs {
		if name == "" || strings.EqualFold(hex.EncodeToString(c.KeyID), name) || c.Label == name {
			found = append(found, c)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && name == "":
		return client.Certificate{}, fmt.Errorf("card %s holds no certificate", serial)
	case len(found) == 0:
		return client.Certificate{}, fmt.Errorf("card %s holds no certificate for %q: `tpmcard cert list` shows them", serial, name)
	}
	return client.Certificate{}, fmt.Errorf("%w: the card holds %d certificates: choose one with --key", errUsage, len(found))
}

func certExport(e *env, args []string) error {
	fs := flags(e, "cert export")
	var c common
	c.add(fs, true, false)
	name := fs.String("key", "", "key ID (hex) or certificate label (may be left out when the card holds one certificate)")
	out := fs.String("out", "-", "where to write it, - for standard output")
	der := fs.Bool("der", false, "write DER instead of PEM")
	if err := parse(fs, args); err != nil {
		return err
	}
	cl, t, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	ci, err := pickCert(cl, t.Serial, *name)
	if err != nil {
		return err
	}
	return writeOut(e, *out, "CERTIFICATE", ci.DER, *der)
}

func certDelete(e *env, args []string) error {
	fs := flags(e, "cert delete")
	var c common
	c.add(fs, true, false)
	name := fs.String("key", "", "key ID (hex) or certificate label")
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
	ci, err := pickCert(cl, t.Serial, *name)
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
	fs.StringVar(&r.key, "key", "", "key ID (hex) or label (may be left out when the card has one key)")
	fs.StringVar(&r.out, "out", "", "also write the certificate (PEM) to this file, - for standard output")
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
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	h := c.hash
	now := time.Now().Add(-5 * time.Minute).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          sn.Add(sn, big.NewInt(1)),
		RawSubject:            c.rawSubject,
		Subject:               c.subject,
		NotBefore:             now,
		NotAfter:              now.Add(time.Duration(*days) * 24 * time.Hour),
		ExtraExtensions:       c.extensions,
		BasicConstraintsValid: true,
		SignatureAlgorithm:    sigAlg(k.Public, h),
		SubjectKeyId:          mustHex(k.ID),
	}
	// A self-signed certificate's issuer is its subject.
	parent := *tmpl
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &parent, k.Public, s)
	if err != nil {
		return fmt.Errorf("signing the certificate with the card key: %w", err)
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
