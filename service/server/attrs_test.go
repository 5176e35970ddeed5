package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"sync"
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

var testKeys = sync.OnceValues(func() (tpmcard.KeyInfo, tpmcard.KeyInfo) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return tpmcard.KeyInfo{ID: []byte{0xec, 1}, Label: "ec key", Algorithm: tpmcard.ECDSAP256, Public: &ec.PublicKey},
		tpmcard.KeyInfo{ID: []byte{0x5a, 2}, Label: "rsa key", Algorithm: tpmcard.RSA2048, Public: &rk.PublicKey}
})

func TestAttribute(t *testing.T) {
	ecKey, rsaKey := testKeys()
	ecPub := ecKey.Public.(*ecdsa.PublicKey)
	rsaPub := rsaKey.Public.(*rsa.PublicKey)
	point, _ := ecPub.Bytes()
	pointDER, _ := asn1.Marshal(point)
	paramsDER, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	ecSPKI, _ := x509.MarshalPKIXPublicKey(ecPub)
	yes, no := wire.Bool(true), wire.Bool(false)

	type want struct {
		value  []byte
		status wire.Status
	}
	ok := func(v []byte) want { return want{v, wire.OK} }
	invalid := want{nil, wire.AttributeInvalid}
	sensitive := want{nil, wire.AttributeSensitive}

	for _, c := range []struct {
		name string
		kind objKind
		key  tpmcard.KeyInfo
		attr uint64
		want want
	}{
		{"ok/ec-private/class", objPrivate, ecKey, p11.CKAClass, ok(wire.ULong(ckoPrivateKey))},
		{"ok/ec-public/class", objPublic, ecKey, p11.CKAClass, ok(wire.ULong(ckoPublicKey))},
		{"ok/ec-private/key-type", objPrivate, ecKey, p11.CKAKeyType, ok(wire.ULong(p11.CKKEC))},
		{"ok/rsa-public/key-type", objPublic, rsaKey, p11.CKAKeyType, ok(wire.ULong(p11.CKKRSA))},
		{"ok/ec-private/id", objPrivate, ecKey, p11.CKAID, ok(ecKey.ID)},
		{"ok/ec-public/id", objPublic, ecKey, p11.CKAID, ok(ecKey.ID)},
		{"ok/ec-public/label", objPublic, ecKey, p11.CKALabel, ok([]byte("ec key"))},
		{"ok/ec-private/token", objPrivate, ecKey, p11.CKAToken, ok(yes)},
		{"ok/ec-private/private", objPrivate, ecKey, p11.CKAPrivate, ok(yes)},
		{"ok/ec-public/private", objPublic, ecKey, p11.CKAPrivate, ok(no)},
		{"ok/ec-private/sign", objPrivate, ecKey, p11.CKASign, ok(yes)},
		{"ok/ec-public/verify", objPublic, ecKey, p11.CKAVerify, ok(yes)},
		{"ok/ec-private/decrypt", objPrivate, ecKey, p11.CKADecrypt, ok(no)},
		{"ok/ec-private/sensitive", objPrivate, ecKey, p11.CKASensitive, ok(yes)},
		{"ok/ec-private/always-sensitive", objPrivate, ecKey, p11.CKAAlwaysSensitive, ok(yes)},
		{"ok/ec-private/extractable", objPrivate, ecKey, p11.CKAExtractable, ok(no)},
		{"ok/ec-private/never-extractable", objPrivate, ecKey, p11.CKANeverExtractable, ok(yes)},
		{"ok/ec-private/always-authenticate", objPrivate, ecKey, p11.CKAAlwaysAuthenticate, ok(no)},
		{"ok/ec-private/local", objPrivate, ecKey, p11.CKALocal, ok(yes)},
		{"ok/ec-public/local", objPublic, ecKey, p11.CKALocal, ok(yes)},
		{"ok/ec-private/keygen-mechanism", objPrivate, ecKey, p11.CKAKeyGenMechanism, ok(wire.ULong(p11.CKMECKeyPairGen))},
		{"ok/ec-public/ec-params", objPublic, ecKey, p11.CKAECParams, ok(paramsDER)},
		{"ok/ec-private/ec-params", objPrivate, ecKey, p11.CKAECParams, ok(paramsDER)},
		{"ok/ec-public/ec-point", objPublic, ecKey, p11.CKAECPoint, ok(pointDER)},
		{"ok/ec-public/public-key-info", objPublic, ecKey, p11.CKAPublicKeyInfo, ok(ecSPKI)},
		{"ok/rsa-public/modulus", objPublic, rsaKey, p11.CKAModulus, ok(rsaPub.N.Bytes())},
		{"ok/rsa-private/modulus", objPrivate, rsaKey, p11.CKAModulus, ok(rsaPub.N.Bytes())},
		{"ok/rsa-public/exponent", objPublic, rsaKey, p11.CKAPublicExponent, ok([]byte{1, 0, 1})},
		{"ok/rsa-public/modulus-bits", objPublic, rsaKey, p11.CKAModulusBits, ok(wire.ULong(2048))},
		{"ok/rsa-private/keygen-mechanism", objPrivate, rsaKey, p11.CKAKeyGenMechanism, ok(wire.ULong(p11.CKMRSAPKCSKeyPairGen))},
		{"fail/ec-private/value-sensitive", objPrivate, ecKey, p11.CKAValue, sensitive},
		{"fail/rsa-private/value-sensitive", objPrivate, rsaKey, p11.CKAValue, sensitive},
		{"fail/rsa-private/private-exponent-sensitive", objPrivate, rsaKey, p11.CKAPrivateExponent, sensitive},
		{"fail/rsa-private/prime1-sensitive", objPrivate, rsaKey, 0x124, sensitive},
		{"fail/ec-public/value-invalid", objPublic, ecKey, p11.CKAValue, invalid},
		{"fail/ec-public/sign-invalid", objPublic, ecKey, p11.CKASign, invalid},
		{"fail/ec-private/verify-invalid", objPrivate, ecKey, p11.CKAVerify, invalid},
		{"fail/ec-public/sensitive-invalid", objPublic, ecKey, p11.CKASensitive, invalid},
		{"fail/rsa-public/ec-point-invalid", objPublic, rsaKey, p11.CKAECPoint, invalid},
		{"fail/rsa-public/ec-params-invalid", objPublic, rsaKey, p11.CKAECParams, invalid},
		{"fail/ec-public/modulus-invalid", objPublic, ecKey, p11.CKAModulus, invalid},
		{"fail/unknown-attribute", objPublic, ecKey, 0x7777, invalid},
		{"fail/vendor-attribute", objPrivate, ecKey, 0x80000001, invalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, st := attribute(c.kind, c.key, c.attr)
			if st != c.want.status || !bytes.Equal(v, c.want.value) {
				t.Errorf("attribute(%#x) = %x, %v; want %x, %v", c.attr, v, st, c.want.value, c.want.status)
			}
		})
	}
}

func TestMatches(t *testing.T) {
	ecKey, rsaKey := testKeys()
	attr := func(t uint64, v []byte) wire.Attribute { return wire.Attribute{Type: t, Value: v} }
	for _, c := range []struct {
		name     string
		kind     objKind
		key      tpmcard.KeyInfo
		template []wire.Attribute
		want     bool
	}{
		{"ok/empty-template", objPublic, ecKey, nil, true},
		{"ok/class", objPrivate, ecKey, []wire.Attribute{attr(p11.CKAClass, wire.ULong(ckoPrivateKey))}, true},
		{"ok/class-and-id", objPublic, rsaKey, []wire.Attribute{attr(p11.CKAClass, wire.ULong(ckoPublicKey)), attr(p11.CKAID, rsaKey.ID)}, true},
		{"ok/bool-by-truth", objPrivate, ecKey, []wire.Attribute{attr(p11.CKASign, []byte{0xff})}, true},
		{"ok/key-type", objPublic, ecKey, []wire.Attribute{attr(p11.CKAKeyType, wire.ULong(p11.CKKEC))}, true},
		{"fail/wrong-class", objPublic, ecKey, []wire.Attribute{attr(p11.CKAClass, wire.ULong(ckoPrivateKey))}, false},
		{"fail/wrong-id", objPublic, ecKey, []wire.Attribute{attr(p11.CKAID, rsaKey.ID)}, false},
		{"fail/attribute-the-object-lacks", objPublic, ecKey, []wire.Attribute{attr(p11.CKASign, wire.Bool(true))}, false},
		{"fail/sensitive-attribute", objPrivate, ecKey, []wire.Attribute{attr(p11.CKAValue, []byte{1})}, false},
		{"fail/bad-bool-length", objPrivate, ecKey, []wire.Attribute{attr(p11.CKASign, []byte{1, 1})}, false},
		{"fail/ulong-wrong-size", objPrivate, ecKey, []wire.Attribute{attr(p11.CKAClass, []byte{3})}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := matches(c.kind, c.key, c.template); got != c.want {
				t.Errorf("matches = %v, want %v", got, c.want)
			}
		})
	}
}
