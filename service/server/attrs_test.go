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
		attr uint32
		want want
	}{
		{"ok/ec-private/class", objPrivate, ecKey, ckaClass, ok(wire.ULong(ckoPrivateKey))},
		{"ok/ec-public/class", objPublic, ecKey, ckaClass, ok(wire.ULong(ckoPublicKey))},
		{"ok/ec-private/key-type", objPrivate, ecKey, ckaKeyType, ok(wire.ULong(ckkEC))},
		{"ok/rsa-public/key-type", objPublic, rsaKey, ckaKeyType, ok(wire.ULong(ckkRSA))},
		{"ok/ec-private/id", objPrivate, ecKey, ckaID, ok(ecKey.ID)},
		{"ok/ec-public/id", objPublic, ecKey, ckaID, ok(ecKey.ID)},
		{"ok/ec-public/label", objPublic, ecKey, ckaLabel, ok([]byte("ec key"))},
		{"ok/ec-private/token", objPrivate, ecKey, ckaToken, ok(yes)},
		{"ok/ec-private/private", objPrivate, ecKey, ckaPrivate, ok(yes)},
		{"ok/ec-public/private", objPublic, ecKey, ckaPrivate, ok(no)},
		{"ok/ec-private/sign", objPrivate, ecKey, ckaSign, ok(yes)},
		{"ok/ec-public/verify", objPublic, ecKey, ckaVerify, ok(yes)},
		{"ok/ec-private/decrypt", objPrivate, ecKey, ckaDecrypt, ok(no)},
		{"ok/ec-private/sensitive", objPrivate, ecKey, ckaSensitive, ok(yes)},
		{"ok/ec-private/always-sensitive", objPrivate, ecKey, ckaAlwaysSensitive, ok(yes)},
		{"ok/ec-private/extractable", objPrivate, ecKey, ckaExtractable, ok(no)},
		{"ok/ec-private/never-extractable", objPrivate, ecKey, ckaNeverExtractable, ok(yes)},
		{"ok/ec-private/always-authenticate", objPrivate, ecKey, ckaAlwaysAuth, ok(no)},
		{"ok/ec-private/local", objPrivate, ecKey, ckaLocal, ok(yes)},
		{"ok/ec-public/local", objPublic, ecKey, ckaLocal, ok(yes)},
		{"ok/ec-private/keygen-mechanism", objPrivate, ecKey, ckaKeyGenMechanism, ok(wire.ULong(ckmECKeyPairGen))},
		{"ok/ec-public/ec-params", objPublic, ecKey, ckaECParams, ok(paramsDER)},
		{"ok/ec-private/ec-params", objPrivate, ecKey, ckaECParams, ok(paramsDER)},
		{"ok/ec-public/ec-point", objPublic, ecKey, ckaECPoint, ok(pointDER)},
		{"ok/ec-public/public-key-info", objPublic, ecKey, ckaPublicKeyInfo, ok(ecSPKI)},
		{"ok/rsa-public/modulus", objPublic, rsaKey, ckaModulus, ok(rsaPub.N.Bytes())},
		{"ok/rsa-private/modulus", objPrivate, rsaKey, ckaModulus, ok(rsaPub.N.Bytes())},
		{"ok/rsa-public/exponent", objPublic, rsaKey, ckaPublicExponent, ok([]byte{1, 0, 1})},
		{"ok/rsa-public/modulus-bits", objPublic, rsaKey, ckaModulusBits, ok(wire.ULong(2048))},
		{"ok/rsa-private/keygen-mechanism", objPrivate, rsaKey, ckaKeyGenMechanism, ok(wire.ULong(ckmRSAKeyPairGen))},
		{"fail/ec-private/value-sensitive", objPrivate, ecKey, ckaValue, sensitive},
		{"fail/rsa-private/value-sensitive", objPrivate, rsaKey, ckaValue, sensitive},
		{"fail/rsa-private/private-exponent-sensitive", objPrivate, rsaKey, ckaPrivateExponent, sensitive},
		{"fail/rsa-private/prime1-sensitive", objPrivate, rsaKey, 0x124, sensitive},
		{"fail/ec-public/value-invalid", objPublic, ecKey, ckaValue, invalid},
		{"fail/ec-public/sign-invalid", objPublic, ecKey, ckaSign, invalid},
		{"fail/ec-private/verify-invalid", objPrivate, ecKey, ckaVerify, invalid},
		{"fail/ec-public/sensitive-invalid", objPublic, ecKey, ckaSensitive, invalid},
		{"fail/rsa-public/ec-point-invalid", objPublic, rsaKey, ckaECPoint, invalid},
		{"fail/rsa-public/ec-params-invalid", objPublic, rsaKey, ckaECParams, invalid},
		{"fail/ec-public/modulus-invalid", objPublic, ecKey, ckaModulus, invalid},
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
	attr := func(t uint32, v []byte) wire.Attribute { return wire.Attribute{Type: t, Value: v} }
	for _, c := range []struct {
		name     string
		kind     objKind
		key      tpmcard.KeyInfo
		template []wire.Attribute
		want     bool
	}{
		{"ok/empty-template", objPublic, ecKey, nil, true},
		{"ok/class", objPrivate, ecKey, []wire.Attribute{attr(ckaClass, wire.ULong(ckoPrivateKey))}, true},
		{"ok/class-and-id", objPublic, rsaKey, []wire.Attribute{attr(ckaClass, wire.ULong(ckoPublicKey)), attr(ckaID, rsaKey.ID)}, true},
		{"ok/bool-by-truth", objPrivate, ecKey, []wire.Attribute{attr(ckaSign, []byte{0xff})}, true},
		{"ok/key-type", objPublic, ecKey, []wire.Attribute{attr(ckaKeyType, wire.ULong(ckkEC))}, true},
		{"fail/wrong-class", objPublic, ecKey, []wire.Attribute{attr(ckaClass, wire.ULong(ckoPrivateKey))}, false},
		{"fail/wrong-id", objPublic, ecKey, []wire.Attribute{attr(ckaID, rsaKey.ID)}, false},
		{"fail/attribute-the-object-lacks", objPublic, ecKey, []wire.Attribute{attr(ckaSign, wire.Bool(true))}, false},
		{"fail/sensitive-attribute", objPrivate, ecKey, []wire.Attribute{attr(ckaValue, []byte{1})}, false},
		{"fail/bad-bool-length", objPrivate, ecKey, []wire.Attribute{attr(ckaSign, []byte{1, 1})}, false},
		{"fail/ulong-wrong-size", objPrivate, ecKey, []wire.Attribute{attr(ckaClass, []byte{3})}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := matches(c.kind, c.key, c.template); got != c.want {
				t.Errorf("matches = %v, want %v", got, c.want)
			}
		})
	}
}
