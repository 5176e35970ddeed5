package x509req

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

// The signer is a software key: these tests are about encodings, which do
// not depend on where the key lives (the CLI's tests sign with card keys).
func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func request(t *testing.T, subject, template string, names Names) Request {
	t.Helper()
	rdn, err := ParseSubject(subject)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := LookupTemplate(template)
	if err != nil {
		t.Fatal(err)
	}
	return Request{Subject: rdn, Names: names, Template: tmpl}
}

func TestRequestCarriesTemplateAndNames(t *testing.T) {
	k := newKey(t)
	r := request(t, "CN=Alice Smith,O=Example,C=DE", "smartcard-logon",
		Names{DNS: []string{"alice.example"}, Email: []string{"alice@example.com"}, URI: []string{"urn:x:alice"}, UPN: "alice@corp.example"})
	r.ExtraEKUs = []asn1.ObjectIdentifier{OIDEmailProtect}
	c, err := r.Build(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	der, err := CreateRequest(k, c)
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
	if csr.Subject.String() != "CN=Alice Smith,O=Example,C=DE" || csr.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("subject %q, algorithm %v", csr.Subject, csr.SignatureAlgorithm)
	}
	if !slices.Equal(csr.DNSNames, []string{"alice.example"}) || !slices.Equal(csr.EmailAddresses, []string{"alice@example.com"}) ||
		len(csr.URIs) != 1 || csr.URIs[0].String() != "urn:x:alice" {
		t.Errorf("names %v %v %v", csr.DNSNames, csr.EmailAddresses, csr.URIs)
	}
	var upn string
	for _, e := range csr.Extensions {
		switch {
		case e.Id.Equal(OIDExtSAN):
			if e.Critical {
				t.Error("the SAN is critical though the subject is not empty")
			}
			upn = findUPN(t, e.Value)
		case e.Id.Equal(OIDExtKeyUsage):
			var ku asn1.BitString
			if _, err := asn1.Unmarshal(e.Value, &ku); err != nil || !e.Critical || ku.BitLength != 1 || ku.At(0) != 1 {
				t.Errorf("key usage %+v critical=%v (%v): want digitalSignature alone for an EC key", ku, e.Critical, err)
			}
		case e.Id.Equal(OIDExtExtKeyUsage):
			var ekus []asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(e.Value, &ekus); err != nil || len(ekus) != 3 ||
				!ekus[0].Equal(OIDSmartcardLogon) || !ekus[1].Equal(OIDClientAuth) || !ekus[2].Equal(OIDEmailProtect) {
				t.Errorf("EKUs %v (%v)", ekus, err)
			}
		}
	}
	if upn != "alice@corp.example" {
		t.Errorf("UPN %q", upn)
	}
}

// findUPN digs the otherName UPN out of GeneralNames.
func findUPN(t *testing.T, der []byte) string {
	var names []asn1.RawValue
	if _, err := asn1.Unmarshal(der, &names); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n.Tag != 0 || n.Class != asn1.ClassContextSpecific {
			continue
		}
		var oid asn1.ObjectIdentifier
		rest, err := asn1.Unmarshal(n.Bytes, &oid)
		if err != nil || !oid.Equal(OIDUPN) {
			t.Fatalf("otherName %v (%v)", oid, err)
		}
		var outer asn1.RawValue
		if _, err := asn1.Unmarshal(rest, &outer); err != nil {
			t.Fatal(err)
		}
		var s string
		if _, err := asn1.UnmarshalWithParams(outer.Bytes, &s, "utf8"); err != nil {
			t.Fatal(err)
		}
		return s
	}
	return ""
}

func TestRSAKeyUsageAndHashes(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []crypto.Hash{crypto.SHA384, crypto.SHA512} {
		r := request(t, "CN=bob", "smartcard-logon", Names{})
		r.Hash = h
		c, err := r.Build(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		der, err := CreateRequest(k, c)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil || csr.CheckSignature() != nil {
			t.Fatalf("%v: %v", h, err)
		}
		want := map[crypto.Hash]x509.SignatureAlgorithm{crypto.SHA384: x509.SHA384WithRSA, crypto.SHA512: x509.SHA512WithRSA}[h]
		if csr.SignatureAlgorithm != want {
			t.Errorf("%v: %v", h, csr.SignatureAlgorithm)
		}
		for _, e := range csr.Extensions {
			if e.Id.Equal(OIDExtKeyUsage) {
				var ku asn1.BitString
				asn1.Unmarshal(e.Value, &ku)
				if ku.At(0) != 1 || ku.At(2) != 1 {
					t.Errorf("RSA key usage %v: want digitalSignature and keyEncipherment", ku)
				}
			}
		}
	}
}

// A SHA-1 request (for CAs that demand it) is signed again with SHA-1 and
// verifies under the key.
func TestSHA1Request(t *testing.T) {
	k := newKey(t)
	r := request(t, "CN=old", "email", Names{})
	r.Hash = crypto.SHA1
	c, err := r.Build(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	der, err := CreateRequest(k, c)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if csr.SignatureAlgorithm != x509.ECDSAWithSHA1 {
		t.Fatalf("algorithm %v", csr.SignatureAlgorithm)
	}
	sum := sha1.Sum(csr.RawTBSCertificateRequest)
	if !ecdsa.VerifyASN1(&k.PublicKey, sum[:], csr.Signature) {
		t.Fatal("the SHA-1 signature does not verify")
	}
	if _, err := CreateSelfSigned(k, c, nil, time.Now(), time.Now().Add(time.Hour)); err == nil {
		t.Fatal("a SHA-1 self-signed certificate was made")
	}
}

func TestNamesOnlyAndNoName(t *testing.T) {
	k := newKey(t)
	c, err := request(t, "", "none", Names{DNS: []string{"host.example"}}).Build(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Extensions) != 1 || !c.Extensions[0].Id.Equal(OIDExtSAN) || !c.Extensions[0].Critical {
		t.Errorf("extensions %+v: want the SAN alone, critical for an empty subject", c.Extensions)
	}
	if _, err := request(t, "", "none", Names{}).Build(k.Public()); !errors.Is(err, ErrNoName) {
		t.Errorf("no name: %v", err)
	}
	for _, n := range []Names{{DNS: []string{"a b"}}, {DNS: []string{""}}, {Email: []string{"nobody"}}, {URI: []string{"relative/path"}}} {
		var ne *NameError
		if _, err := request(t, "CN=x", "none", n).Build(k.Public()); !errors.As(err, &ne) {
			t.Errorf("%+v: %v", n, err)
		}
	}
}

func TestSelfSigned(t *testing.T) {
	k := newKey(t)
	c, err := request(t, "CN=standalone", "client-auth", Names{}).Build(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	der, err := CreateSelfSigned(k, c, []byte{1, 2, 3, 4}, now, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	// Not a CA, so not CheckSignatureFrom: the key signed its own TBS.
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Fatal(err)
	}
	if cert.Subject.String() != "CN=standalone" || cert.Issuer.String() != "CN=standalone" || string(cert.SubjectKeyId) != "\x01\x02\x03\x04" ||
		!cert.NotAfter.Equal(now.Add(24*time.Hour)) || !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("certificate %v %v %x %v %v", cert.Subject, cert.Issuer, cert.SubjectKeyId, cert.NotAfter, cert.ExtKeyUsage)
	}
	if w := UsageWarnings(cert, mustTemplate(t, "client-auth")); len(w) != 0 {
		t.Errorf("warnings for a certificate made by its template: %q", w)
	}
}

func mustTemplate(t *testing.T, name string) Template {
	t.Helper()
	tm, err := LookupTemplate(name)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestUsageWarnings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cert     x509.Certificate
		template string
		want     []string // substrings, one per warning
	}{
		{"ok/scl", x509.Certificate{KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			UnknownExtKeyUsage: []asn1.ObjectIdentifier{OIDSmartcardLogon}}, "smartcard-logon", nil},
		{"ok/any-eku", x509.Certificate{KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}, "smartcard-logon", nil},
		{"ok/none-checks-nothing", x509.Certificate{}, "none", nil},
		{"fail/no-digital-signature", x509.Certificate{KeyUsage: x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			"client-auth", []string{"lacks digitalSignature"}},
		{"fail/no-extensions", x509.Certificate{}, "client-auth", []string{"no key usage extension", "no extended key usage; the client-auth template expects 1.3.6.1.5.5.7.3.2"}},
		{"fail/missing-scl", x509.Certificate{KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			"smartcard-logon", []string{"lacks the extended key usage 1.3.6.1.4.1.311.20.2.2 of the smartcard-logon template"}},
	} {
		got := UsageWarnings(&tc.cert, mustTemplate(t, tc.template))
		if len(got) != len(tc.want) {
			t.Errorf("%s: %q, want %d warnings", tc.name, got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: warning %q, want %q", tc.name, got[i], w)
			}
		}
	}
}

func TestVerifyChain(t *testing.T) {
	caKey, other := newKey(t), newKey(t)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey := newKey(t)
	// An expired leaf still chains: its dates are the caller's to judge.
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-50 * time.Minute), NotAfter: time.Now().Add(-time.Minute)}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, leafKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafCert, _ := x509.ParseCertificate(leafDER)
	if err := VerifyChain(leafCert, []*x509.Certificate{caCert}); err != nil {
		t.Fatalf("leaf under its CA: %v", err)
	}
	otherCA := *ca
	otherDER, _ := x509.CreateCertificate(rand.Reader, &otherCA, &otherCA, other.Public(), other)
	otherCert, _ := x509.ParseCertificate(otherDER)
	if err := VerifyChain(leafCert, []*x509.Certificate{otherCert}); err == nil {
		t.Fatal("the leaf chains to a CA of the same name and another key")
	}
}

func TestLookupTemplate(t *testing.T) {
	if got := strings.Join(TemplateNames(), ","); got != "smartcard-logon,client-auth,email,pkinit,none" {
		t.Errorf("templates %s", got)
	}
	if _, err := LookupTemplate(DefaultTemplate); err != nil {
		t.Error(err)
	}
	_, err := LookupTemplate("nope")
	if err == nil || !strings.Contains(err.Error(), "smartcard-logon, client-auth, email, pkinit or none") {
		t.Errorf("unknown template: %v", err)
	}
	// A caller's change to the EKUs is its own.
	a := mustTemplate(t, "client-auth")
	a.EKUs[0] = OIDEmailProtect
	if b := mustTemplate(t, "client-auth"); !b.EKUs[0].Equal(OIDClientAuth) {
		t.Error("LookupTemplate hands out the table's slice")
	}
}
