package x509req

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParsePrincipal(t *testing.T) {
	for _, c := range []struct {
		name, in string
		comps    []string
		realm    string
		err      string
	}{
		{"ok/user", "alice@EXAMPLE.ORG", []string{"alice"}, "EXAMPLE.ORG", ""},
		{"ok/instance", "alice/admin@EXAMPLE.ORG", []string{"alice", "admin"}, "EXAMPLE.ORG", ""},
		{"ok/service", "krbtgt/EXAMPLE.ORG@EXAMPLE.ORG", []string{"krbtgt", "EXAMPLE.ORG"}, "EXAMPLE.ORG", ""},
		{"ok/escaped", `a\/b\@c\\d@R`, []string{`a/b@c\d`}, "R", ""},
		{"ok/realm at escaped", `bob@EX\@MPLE`, []string{"bob"}, "EX@MPLE", ""},
		{"fail/no realm", "alice", nil, "", "names no realm"},
		{"fail/empty realm", "alice@", nil, "", "empty realm"},
		{"fail/empty name", "@EXAMPLE.ORG", nil, "", "empty name component"},
		{"fail/empty instance", "alice/@EXAMPLE.ORG", nil, "", "empty name component"},
		{"fail/two at", "a@b@C", nil, "", "second unescaped @"},
		{"fail/lone backslash", `a@B\`, nil, "", "lone backslash"},
		{"fail/not ascii", "jürgen@EXAMPLE.ORG", nil, "", "not printable ASCII"},
		{"fail/control", "a\tb@EXAMPLE.ORG", nil, "", "not printable ASCII"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParsePrincipal(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("ParsePrincipal(%q) = %v, %v; want an error with %q", c.in, p, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Components, c.comps) || p.Realm != c.realm || p.NameType != NTPrincipal {
				t.Fatalf("ParsePrincipal(%q) = %#v", c.in, p)
			}
			// String writes what ParsePrincipal reads back.
			q, err := ParsePrincipal(p.String())
			if err != nil || !q.Equal(p) {
				t.Fatalf("%q -> %q -> %#v, %v", c.in, p.String(), q, err)
			}
		})
	}
}

// The KRB5PrincipalName of alice@EXAMPLE.ORG, written out by hand from RFC
// 4556 §3.2.2 and RFC 4120 §5.2.2 (explicit tags, GeneralString 0x1b).
const aliceDER = "3023" + // KRB5PrincipalName SEQUENCE
	"a00d" + "1b0b" + "4558414d504c452e4f5247" + // realm [0] GeneralString "EXAMPLE.ORG"
	"a112" + "3010" + // principalName [1] PrincipalName SEQUENCE
	"a003" + "020101" + // name-type [0] INTEGER 1 (NT-PRINCIPAL)
	"a109" + "3007" + "1b05" + "616c696365" // name-string [1] SEQUENCE OF GeneralString "alice"

func TestKRB5PrincipalNameEncoding(t *testing.T) {
	p, err := ParsePrincipal("alice@EXAMPLE.ORG")
	if err != nil {
		t.Fatal(err)
	}
	der, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(der); got != aliceDER {
		t.Fatalf("KRB5PrincipalName\n got %s\nwant %s", got, aliceDER)
	}

	// Read back with encoding/asn1 alone, field by field.
	var k struct {
		Realm asn1.RawValue `asn1:"explicit,tag:0"`
		Name  struct {
			NameType int             `asn1:"explicit,tag:0"`
			Strings  []asn1.RawValue `asn1:"explicit,tag:1"`
		} `asn1:"explicit,tag:1"`
	}
	rest, err := asn1.Unmarshal(der, &k)
	if err != nil || len(rest) != 0 {
		t.Fatalf("asn1.Unmarshal: %v (%d bytes left)", err, len(rest))
	}
	// An explicitly tagged RawValue stays wrapped in its [0].
	var realm asn1.RawValue
	if _, err := asn1.Unmarshal(k.Realm.Bytes, &realm); err != nil {
		t.Fatal(err)
	}
	if realm.Tag != asn1.TagGeneralString || string(realm.Bytes) != "EXAMPLE.ORG" {
		t.Errorf("realm: tag %d %q", realm.Tag, realm.Bytes)
	}
	if k.Name.NameType != NTPrincipal || len(k.Name.Strings) != 1 ||
		k.Name.Strings[0].Tag != asn1.TagGeneralString || string(k.Name.Strings[0].Bytes) != "alice" {
		t.Errorf("principal name: %d %v", k.Name.NameType, k.Name.Strings)
	}

	// And with ParseKRB5PrincipalName, for a two-component name of
	// another type (a KDC's krbtgt/REALM).
	tgs := Principal{Components: []string{"krbtgt", "EXAMPLE.ORG"}, NameType: NTSrvInst, Realm: "EXAMPLE.ORG"}
	der, err = tgs.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKRB5PrincipalName(der)
	if err != nil || !back.Equal(tgs) || back.NameType != NTSrvInst {
		t.Fatalf("ParseKRB5PrincipalName = %#v, %v", back, err)
	}

	// A UTF8String where a GeneralString belongs is refused.
	bad, _ := hex.DecodeString(strings.Replace(aliceDER, "1b0b", "0c0b", 1))
	if _, err := ParseKRB5PrincipalName(bad); err == nil {
		t.Error("a UTF8String realm was accepted")
	}
	if _, err := (Principal{Components: []string{""}, Realm: "R"}).Marshal(); err == nil {
		t.Error("an empty component was encoded")
	}
}

// TestPKINITRequest: the pkinit template and a principal give the request,
// and a self-signed certificate, the id-pkinit-san otherName beside the
// other names, id-pkinit-KPClientAuth and digitalSignature alone, for RSA
// and EC keys.
func TestPKINITRequest(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := ParsePrincipal("alice@EXAMPLE.ORG")
	for _, c := range []struct {
		name string
		key  crypto.Signer
	}{{"RSA", rsaKey}, {"EC", newKey(t)}} {
		t.Run(c.name, func(t *testing.T) {
			r := request(t, "CN=Alice", "pkinit", Names{Email: []string{"alice@example.org"}, UPN: "alice@corp.example", Principals: []Principal{alice}})
			if w := r.PKINITWarnings(); len(w) != 0 {
				t.Errorf("warnings: %q", w)
			}
			cont, err := r.Build(c.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			der, err := CreateRequest(c.key, cont)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(csr.EmailAddresses, []string{"alice@example.org"}) {
				t.Errorf("emails %v", csr.EmailAddresses)
			}
			checkPKINITExtensions(t, csr.Extensions)
		})
	}
	// A self-signed certificate carries the same.
	r := request(t, "CN=Alice", "pkinit", Names{Principals: []Principal{alice}})
	cont, err := r.Build(rsaKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	der, err := CreateSelfSigned(rsaKey, cont, []byte{1, 2, 3}, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	checkPKINITExtensions(t, cert.Extensions)
	if !slices.ContainsFunc(cert.UnknownExtKeyUsage, OIDPKINITClientAuth.Equal) || !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("crypto/x509 reads the EKUs as %v and %v", cert.ExtKeyUsage, cert.UnknownExtKeyUsage)
	}
	if w := UsageWarnings(cert, r.Template); len(w) != 0 {
		t.Errorf("usage warnings for a certificate of the template's own: %q", w)
	}
}

func checkPKINITExtensions(t *testing.T, exts []pkix.Extension) {
	t.Helper()
	var sawSAN, sawEKU, sawKU bool
	for _, e := range exts {
		switch {
		case e.Id.Equal(OIDExtSAN):
			sawSAN = true
			ps, err := SANPrincipals(e.Value)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != 1 || ps[0].String() != "alice@EXAMPLE.ORG" || ps[0].NameType != NTPrincipal {
				t.Errorf("principals in the SAN: %v", ps)
			}
		case e.Id.Equal(OIDExtExtKeyUsage):
			sawEKU = true
			var ekus []asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(e.Value, &ekus); err != nil {
				t.Fatal(err)
			}
			if len(ekus) != 2 || !ekus[0].Equal(OIDPKINITClientAuth) || !ekus[1].Equal(OIDClientAuth) {
				t.Errorf("EKUs %v, want %v and %v", ekus, OIDPKINITClientAuth, OIDClientAuth)
			}
		case e.Id.Equal(OIDExtKeyUsage):
			sawKU = true
			var ku asn1.BitString
			if _, err := asn1.Unmarshal(e.Value, &ku); err != nil {
				t.Fatal(err)
			}
			if ku.BitLength != 1 || ku.At(0) != 1 || !e.Critical {
				t.Errorf("key usage %x/%d critical %v, want digitalSignature alone, critical", ku.Bytes, ku.BitLength, e.Critical)
			}
		}
	}
	if !sawSAN || !sawEKU || !sawKU {
		t.Errorf("SAN %v, EKU %v, key usage %v", sawSAN, sawEKU, sawKU)
	}
}

func TestPKINITWarnings(t *testing.T) {
	alice, _ := ParsePrincipal("alice@EXAMPLE.ORG")
	for _, c := range []struct {
		name, template string
		names          Names
		extra          []asn1.ObjectIdentifier
		want           string
	}{
		{"ok/pkinit with principal", "pkinit", Names{Principals: []Principal{alice}}, nil, ""},
		{"ok/smartcard-logon with the EKU added", "smartcard-logon", Names{Principals: []Principal{alice}}, []asn1.ObjectIdentifier{OIDPKINITClientAuth}, ""},
		{"ok/no principal, no pkinit", "client-auth", Names{DNS: []string{"a.example"}}, nil, ""},
		{"ok/none", "none", Names{Principals: []Principal{alice}}, nil, ""},
		{"warn/smartcard-logon without the EKU", "smartcard-logon", Names{Principals: []Principal{alice}}, nil, "lacks the extended key usage id-pkinit-KPClientAuth"},
		{"warn/pkinit without principal", "pkinit", Names{UPN: "alice@corp.example"}, nil, "without a Kerberos principal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := request(t, "CN=x", c.template, c.names)
			r.ExtraEKUs = c.extra
			w := r.PKINITWarnings()
			switch {
			case c.want == "" && len(w) != 0:
				t.Errorf("warnings %q", w)
			case c.want != "" && (len(w) != 1 || !strings.Contains(w[0], c.want)):
				t.Errorf("warnings %q, want one with %q", w, c.want)
			}
		})
	}
}

func TestSANPrincipalsBesideOtherNames(t *testing.T) {
	alice, _ := ParsePrincipal("alice@EXAMPLE.ORG")
	svc, _ := ParsePrincipal("host/a.example@EXAMPLE.ORG")
	der, err := Names{DNS: []string{"a.example"}, UPN: "alice@corp.example", Principals: []Principal{alice, svc}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := SANPrincipals(der)
	if err != nil || len(ps) != 2 || !ps[0].Equal(alice) || !ps[1].Equal(svc) {
		t.Fatalf("SANPrincipals = %v, %v", ps, err)
	}
	_, err = Names{Principals: []Principal{{Components: []string{"a"}}}}.Marshal()
	var ne *NameError
	if !errors.As(err, &ne) {
		t.Fatalf("a principal without a realm: %v", err)
	}
}

// TestPrincipalAsOpenSSLWritesIt compares the subjectAltName with the one
// OpenSSL writes from the configuration MIT's PKINIT documentation has
// administrators use for client certificates (an ASN1_GENERATE otherName
// with EXP tags and GeneralStrings): the same bytes.
func TestPrincipalAsOpenSSLWritesIt(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("TPMCARD_REQUIRE_TOOLS") != "" {
			t.Fatal("TPMCARD_REQUIRE_TOOLS: openssl is not installed (Debian package openssl)")
		}
		t.Skip("openssl is not installed (Debian package openssl)")
	}
	dir := t.TempDir()
	conf := `[req]
distinguished_name = dn
prompt = no
req_extensions = ext
[dn]
CN = alice
[ext]
subjectAltName = otherName:1.3.6.1.5.2.2;SEQUENCE:krb5name
[krb5name]
realm = EXP:0,GeneralString:EXAMPLE.ORG
principal = EXP:1,SEQUENCE:pname
[pname]
type = EXP:0,INTEGER:1
strings = EXP:1,SEQUENCE:comps
[comps]
c1 = GeneralString:alice
c2 = GeneralString:admin
`
	cf := filepath.Join(dir, "req.cnf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(dir, "k.pem"), "-config", cf).Output()
	if err != nil {
		t.Fatalf("openssl req: %v", err)
	}
	blk, _ := pem.Decode(out)
	if blk == nil {
		t.Fatalf("openssl req wrote no PEM:\n%s", out)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var theirs []byte
	for _, e := range csr.Extensions {
		if e.Id.Equal(OIDExtSAN) {
			theirs = e.Value
		}
	}
	p, _ := ParsePrincipal("alice/admin@EXAMPLE.ORG")
	ours, err := Names{Principals: []Principal{p}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, theirs) {
		t.Fatalf("subjectAltName\n ours    %x\n openssl %x", ours, theirs)
	}
}
