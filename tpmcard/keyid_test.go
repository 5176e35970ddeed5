package tpmcard

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"testing"
)

// A new key's default CKA_ID is what NSS and OpenSC compute from a
// certificate's public key: SHA-1 of the uncompressed EC point, or of the
// RSA modulus without leading zeros. Without it NSS cannot find an RSA
// key by its certificate's nickname.
func TestKeyIDAsNSSComputesIt(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	size := (ec.Curve.Params().BitSize + 7) / 8
	point := append([]byte{4}, ec.X.FillBytes(make([]byte, size))...)
	point = append(point, ec.Y.FillBytes(make([]byte, size))...)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		pub  any
		want [20]byte
	}{
		"ec-p384":  {&ec.PublicKey, sha1.Sum(point)},
		"rsa-2048": {&rk.PublicKey, sha1.Sum(rk.N.Bytes())},
	} {
		got, err := keyID(c.pub)
		if err != nil || !bytes.Equal(got, c.want[:]) {
			t.Errorf("%s: keyID = %x, %v; want %x", name, got, err, c.want)
		}
	}
}
