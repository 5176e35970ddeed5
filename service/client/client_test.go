package client

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"path/filepath"
	"testing"

	"github.com/tpmcard/tpmcard/service/wire"
)

func TestSocketPath(t *testing.T) {
	t.Setenv(SocketEnv, "")
	if got := SocketPath(); got != DefaultSocket {
		t.Errorf("SocketPath() = %q, want %q", got, DefaultSocket)
	}
	t.Setenv(SocketEnv, "/tmp/x.sock")
	if got := SocketPath(); got != "/tmp/x.sock" {
		t.Errorf("SocketPath() with %s = %q", SocketEnv, got)
	}
}

func TestDialNoService(t *testing.T) {
	if _, err := Dial(filepath.Join(t.TempDir(), "none.sock")); err == nil {
		t.Fatal("Dial of a missing socket worked")
	}
}

func TestDigestInfoMatchesX509(t *testing.T) {
	// The DigestInfo prefixes must be what crypto/rsa puts in a PKCS #1
	// v1.5 signature: check SHA-256 against an independent DER encoding.
	d := sha256.Sum256([]byte("x"))
	got, err := digestInfo(crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	type algID struct {
		OID  asn1.ObjectIdentifier
		Null asn1.RawValue
	}
	want, _ := asn1.Marshal(struct {
		Alg    algID
		Digest []byte
	}{algID{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, asn1.NullRawValue}, d[:]})
	if !bytes.Equal(got, want) {
		t.Errorf("DigestInfo\n got %x\nwant %x", got, want)
	}
	if _, err := digestInfo(crypto.MD5, make([]byte, 16)); err == nil {
		t.Error("MD5 DigestInfo accepted")
	}
}

func TestPSSParams(t *testing.T) {
	p, err := pssParams(crypto.SHA384)
	if err != nil || len(p) != 3*wire.ULongSize {
		t.Fatalf("pssParams = %x, %v", p, err)
	}
	n := wire.ULongSize
	h, _ := wire.ParseULong(p[:n])
	mgf, _ := wire.ParseULong(p[n : 2*n])
	sLen, _ := wire.ParseULong(p[2*n:])
	if h != 0x260 || mgf != 3 || sLen != 48 {
		t.Errorf("CK_RSA_PKCS_PSS_PARAMS = %#x, %d, %d", h, mgf, sLen)
	}
}

func TestRawToASN1(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("x"))
	der, _ := ecdsa.SignASN1(rand.Reader, k, d[:])
	var sig struct{ R, S asn1.RawValue }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64)
	r := bytes.TrimLeft(sig.R.Bytes, "\x00")
	s := bytes.TrimLeft(sig.S.Bytes, "\x00")
	copy(raw[32-len(r):32], r)
	copy(raw[64-len(s):], s)
	back, err := rawToASN1(raw)
	if err != nil || !ecdsa.VerifyASN1(&k.PublicKey, d[:], back) {
		t.Fatalf("rawToASN1 round trip: %v", err)
	}
	if _, err := rawToASN1(raw[:63]); err == nil {
		t.Error("odd-length r||s accepted")
	}
}
