package tpmcard

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// issue makes a certificate for pub signed by a throwaway CA key.
func issue(t *testing.T, pub crypto.PublicKey, cn string) []byte {
	t.Helper()
	ca, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, ca)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCertificates(t *testing.T) {
	m := openManager(t, tpmtest.Sim(t), "")
	serial := newCard(t, m)
	k := mustGenerate(t, m, serial, ECDSAP256)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := issue(t, k.Public, "alice")

	unchanged := func(t *testing.T, want int) {
		t.Helper()
		cs, err := m.Certificates(serial)
		if err != nil || len(cs) != want {
			t.Fatalf("Certificates: %d, %v; want %d", len(cs), err, want)
		}
	}
	for _, tc := range []struct {
		name string
		der  []byte
		want error
	}{
		{"fail/empty", nil, ErrBadCertificate},
		{"fail/garbage", []byte("-----BEGIN CERTIFICATE-----"), ErrBadCertificate},
		{"fail/truncated", good[:len(good)-1], ErrBadCertificate},
		{"fail/trailing", append(bytes.Clone(good), 0), ErrBadCertificate},
		{"fail/oversize", make([]byte, MaxCertificateSize+1), ErrBadCertificate},
		{"fail/other key", issue(t, &other.PublicKey, "mallory"), ErrKeyNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.ImportCertificate(serial, tc.der, ""); !errors.Is(err, tc.want) {
				t.Fatalf("ImportCertificate: %v, want %v", err, tc.want)
			}
			unchanged(t, 0)
		})
	}
	t.Run("ok/import", func(t *testing.T) {
		ci, err := m.ImportCertificate(serial, good, "")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ci.KeyID, k.ID) || ci.Label != k.Label || k.Label == "" {
			t.Fatalf("imported %x %q", ci.KeyID, ci.Label)
		}
		// The record on disk has it.
		r, err := m.st.load(serial)
		if err != nil || len(r.Certs) != 1 || !bytes.Equal(r.Certs[0].DER, good) {
			t.Fatalf("record: %v", err)
		}
		// A renewal replaces the key's certificate.
		renewed := issue(t, k.Public, "alice2")
		if _, err := m.ImportCertificate(serial, renewed, "renewed"); err != nil {
			t.Fatal(err)
		}
		cs, _ := m.Certificates(serial)
		if len(cs) != 1 || cs[0].Label != "renewed" || !bytes.Equal(cs[0].DER, renewed) {
			t.Fatalf("after renewal: %+v", cs)
		}
		if _, err := m.Certificate(serial, k.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/long label", func(t *testing.T) {
		if _, err := m.ImportCertificate(serial, good, string(make([]byte, 65))); !errors.Is(err, ErrInvalidOptions) {
			t.Fatal(err)
		}
	})
	t.Run("ok/delete", func(t *testing.T) {
		if err := m.DeleteCertificate(serial, k.ID); err != nil {
			t.Fatal(err)
		}
		unchanged(t, 0)
		if err := m.DeleteCertificate(serial, k.ID); !errors.Is(err, ErrCertNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
	t.Run("ok/deleting the key deletes its certificate", func(t *testing.T) {
		if _, err := m.ImportCertificate(serial, good, ""); err != nil {
			t.Fatal(err)
		}
		if err := m.DeleteKey(serial, k.ID); err != nil {
			t.Fatal(err)
		}
		unchanged(t, 0)
	})
}
