//go:build linux

package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/attest"
)

// certFor issues a certificate for pub from a throwaway CA.
func certFor(t *testing.T, pub any) []byte {
	t.Helper()
	ca, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x1234),
		Subject:      pkix.Name{CommonName: "card user"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, ca)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCertificateObjects(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	serial := e.provisionFor(admin, &wire.CardOwner{UID: 1000})
	id := e.generate(admin, serial, wire.AlgECDSAP256)
	s := mustOpen(t, admin, serial, true)
	pub := publicKeyOf(t, admin, s, id)
	der := certFor(t, pub)
	certClass := wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOCertificate)}

	t.Run("fail/missing key", func(t *testing.T) {
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		_, err := admin.CreateObject(s, certClass, wire.Attribute{Type: p11.CKAValue, Value: certFor(t, &other.PublicKey)})
		wantStatus(t, "certificate for another key", err, wire.KeyNotFound)
	})
	t.Run("fail/malformed", func(t *testing.T) {
		_, err := admin.CreateObject(s, certClass, wire.Attribute{Type: p11.CKAValue, Value: der[:100]})
		wantStatus(t, "truncated certificate", err, wire.CertificateInvalid)
		_, err = admin.CreateObject(s, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOPublicKey)})
		wantStatus(t, "a public key object", err, wire.TemplateInconsistent)
		_, err = admin.CreateObject(s, certClass)
		wantStatus(t, "no value", err, wire.TemplateIncomplete)
		_, err = admin.CreateObject(s, certClass, wire.Attribute{Type: p11.CKAValue, Value: der}, wire.Attribute{Type: p11.CKAID, Value: []byte{9}})
		wantStatus(t, "another key's ID", err, wire.TemplateInconsistent)
		_, err = admin.CreateObject(s, certClass, wire.Attribute{Type: p11.CKAValue, Value: der}, wire.Attribute{Type: p11.CKASubject, Value: []byte{0x30, 0}})
		wantStatus(t, "another subject", err, wire.TemplateInconsistent)
	})
	t.Run("fail/read-only session", func(t *testing.T) {
		ro := mustOpen(t, admin, serial, false)
		_, err := admin.CreateObject(ro, certClass, wire.Attribute{Type: p11.CKAValue, Value: der})
		wantStatus(t, "read-only session", err, wire.SessionReadOnly)
	})
	t.Run("fail/not an admin", func(t *testing.T) {
		user := e.dialAs(Peer{UID: 1000, GID: 1000})
		us := mustOpen(t, user, serial, true)
		_, err := user.CreateObject(us, certClass, wire.Attribute{Type: p11.CKAValue, Value: der})
		wantStatus(t, "user CreateObject", err, wire.PermissionDenied)
		_, err = user.AttestKey(serial, id, nil)
		wantStatus(t, "user AttestKey", err, wire.PermissionDenied)
	})
	if cs, err := admin.Certificates(serial); err != nil || len(cs) != 0 {
		t.Fatalf("after refusals: %v %v", cs, err)
	}

	t.Run("ok/create and read without login", func(t *testing.T) {
		c, err := admin.ImportCertificate(serial, der, "my cert")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.KeyID, id) || c.Label != "my cert" {
			t.Fatalf("created %+v", c)
		}
		// Another application, not logged in, sees it.
		other := e.dial()
		os := mustOpen(t, other, serial, false)
		hs, err := other.FindObjects(os, certClass, wire.Attribute{Type: p11.CKAID, Value: id})
		if err != nil || len(hs) != 1 {
			t.Fatalf("FindObjects: %v %v", hs, err)
		}
		cert, _ := x509.ParseCertificate(der)
		sn, _ := asn1.Marshal(cert.SerialNumber)
		want := map[uint32][]byte{
			p11.CKAClass:           wire.ULong(p11.CKOCertificate),
			p11.CKACertificateType: wire.ULong(p11.CKCX509),
			p11.CKAID:              id,
			p11.CKALabel:           []byte("my cert"),
			p11.CKAValue:           der,
			p11.CKASubject:         cert.RawSubject,
			p11.CKAIssuer:          cert.RawIssuer,
			p11.CKASerialNumber:    sn,
			p11.CKAToken:           wire.Bool(true),
			p11.CKAPrivate:         wire.Bool(false),
		}
		for typ, v := range want {
			got, err := other.GetAttributes(os, hs[0], typ)
			if err != nil || got[0].Status != wire.OK || !bytes.Equal(got[0].Value, v) {
				t.Errorf("attribute %#x: %v %v", typ, got, err)
			}
		}
		got, _ := other.GetAttributes(os, hs[0], p11.CKAModulus)
		if got[0].Status != wire.AttributeInvalid {
			t.Errorf("CKA_MODULUS of a certificate: %v", got[0].Status)
		}
		// Only administrators delete it.
		user := e.dialAs(Peer{UID: 1000, GID: 1000})
		us := mustOpen(t, user, serial, true)
		uh, err := user.FindObjects(us, certClass)
		if err != nil || len(uh) != 1 {
			t.Fatalf("user FindObjects: %v %v", uh, err)
		}
		wantStatus(t, "user DestroyObject", user.DestroyObject(us, uh[0]), wire.PermissionDenied)
		// Signing with a certificate object is refused.
		mustLogin(t, other, os)
		_, err = other.Sign(os, hs[0], p11.CKMECDSA, nil, make([]byte, 32))
		wantStatus(t, "sign with a certificate", err, wire.KeyTypeInconsistent)
	})

	t.Run("ok/attest through the service", func(t *testing.T) {
		b, err := admin.AttestKey(serial, id, []byte("n"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := attest.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := attest.Verify(st, attest.Options{PublicKey: pub, Nonce: []byte("n")}); err != nil {
			t.Fatal(err)
		}
		_, err = admin.AttestKey(serial, []byte("nope"), nil)
		wantStatus(t, "attest a missing key", err, wire.KeyNotFound)
	})

	t.Run("ok/destroy", func(t *testing.T) {
		if err := admin.DeleteCertificate(serial, id); err != nil {
			t.Fatal(err)
		}
		if cs, err := admin.Certificates(serial); err != nil || len(cs) != 0 {
			t.Fatalf("after delete: %v %v", cs, err)
		}
		// The key is still there.
		_ = publicKeyOf(t, admin, s, id)
		wantStatus(t, "second delete", admin.DeleteCertificate(serial, id), wire.ObjectNotFound)
	})
}
