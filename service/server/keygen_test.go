package server

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// TestKeygenTemplates: C_GenerateKeyPair's checks, with the CK_RV the
// module returns for each refusal.
func TestKeygenTemplates(t *testing.T) {
	ul := func(typ, v uint64) wire.Attribute { return wire.Attribute{Type: typ, Value: wire.ULong(v)} }
	b := func(typ uint64, v bool) wire.Attribute { return wire.Attribute{Type: typ, Value: wire.Bool(v)} }
	curve := func(der []byte) wire.Attribute { return wire.Attribute{Type: p11.CKAECParams, Value: der} }
	ec, rsa := uint64(p11.CKMECKeyPairGen), uint64(p11.CKMRSAPKCSKeyPairGen)
	for _, c := range []struct {
		name      string
		mech      uint64
		param     []byte
		pub, priv []wire.Attribute
		alg       string
		token     bool           // ok cases: a token key, else a session key
		use       tpmcard.PINUse // ok cases
		rv        uint64
	}{
		// CKA_TOKEN is false unless a template says otherwise (§4.4).
		{name: "ok/p256-session-key", mech: ec, pub: []wire.Attribute{curve(derP256)}, alg: wire.AlgECDSAP256},
		{name: "ok/p384-in-private", mech: ec, priv: []wire.Attribute{curve(derP384), b(p11.CKAToken, true), ul(p11.CKAKeyType, p11.CKKEC)}, alg: wire.AlgECDSAP384, token: true},
		{name: "ok/token-in-both", mech: ec, pub: []wire.Attribute{curve(derP256), b(p11.CKAToken, true)}, priv: []wire.Attribute{b(p11.CKAToken, true)}, alg: wire.AlgECDSAP256, token: true},
		{name: "ok/token-in-public", mech: ec, pub: []wire.Attribute{curve(derP256), b(p11.CKAToken, true)}, alg: wire.AlgECDSAP256, token: true},
		{name: "ok/session-in-both", mech: ec, pub: []wire.Attribute{curve(derP256), b(p11.CKAToken, false)}, priv: []wire.Attribute{b(p11.CKAToken, false)}, alg: wire.AlgECDSAP256},
		{name: "fail/token-halves-differ", mech: ec, pub: []wire.Attribute{curve(derP256), b(p11.CKAToken, false)}, priv: []wire.Attribute{b(p11.CKAToken, true)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/token-not-bool", mech: ec, pub: []wire.Attribute{curve(derP256), {Type: p11.CKAToken, Value: []byte{1, 0}}}, rv: p11.CKRAttributeValueInvalid},
		{name: "ok/token-modifiable", mech: ec, pub: []wire.Attribute{curve(derP256), b(p11.CKAToken, true), b(p11.CKAModifiable, true)}, priv: []wire.Attribute{b(p11.CKAModifiable, true)}, alg: wire.AlgECDSAP256, token: true},
		{name: "ok/session-not-modifiable", mech: ec, pub: []wire.Attribute{curve(derP256), b(p11.CKAModifiable, false)}, alg: wire.AlgECDSAP256},
		{name: "fail/token-not-modifiable", mech: ec, pub: []wire.Attribute{curve(derP256), b(p11.CKAToken, true)}, priv: []wire.Attribute{b(p11.CKAModifiable, false)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/session-modifiable", mech: ec, pub: []wire.Attribute{curve(derP256), b(p11.CKAModifiable, true)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/modifiable-not-bool", mech: ec, pub: []wire.Attribute{curve(derP256), {Type: p11.CKAModifiable, Value: []byte{2, 0}}}, rv: p11.CKRAttributeValueInvalid},
		// CKA_ALWAYS_AUTHENTICATE: a key that needs the PIN for every signature.
		{name: "ok/always-authenticate", mech: ec, pub: []wire.Attribute{curve(derP256)}, priv: []wire.Attribute{b(p11.CKAToken, true), b(p11.CKAAlwaysAuthenticate, true)}, alg: wire.AlgECDSAP256, token: true, use: tpmcard.PINAlways},
		{name: "ok/always-authenticate-false", mech: rsa, pub: []wire.Attribute{ul(p11.CKAModulusBits, 2048)}, priv: []wire.Attribute{b(p11.CKAAlwaysAuthenticate, false)}, alg: wire.AlgRSA2048},
		{name: "ok/always-authenticate-session-key", mech: ec, pub: []wire.Attribute{curve(derP384)}, priv: []wire.Attribute{b(p11.CKAAlwaysAuthenticate, true)}, alg: wire.AlgECDSAP384, use: tpmcard.PINAlways},
		{name: "fail/always-authenticate-on-public-key", mech: ec, pub: []wire.Attribute{curve(derP256), b(p11.CKAAlwaysAuthenticate, true)}, rv: p11.CKRAttributeTypeInvalid},
		{name: "fail/always-authenticate-not-bool", mech: ec, pub: []wire.Attribute{curve(derP256)}, priv: []wire.Attribute{{Type: p11.CKAAlwaysAuthenticate, Value: nil}}, rv: p11.CKRAttributeValueInvalid},
		{name: "ok/rsa2048", mech: rsa, pub: []wire.Attribute{ul(p11.CKAModulusBits, 2048), {Type: p11.CKAPublicExponent, Value: []byte{1, 0, 1}}}, alg: wire.AlgRSA2048},
		{name: "ok/rsa3072", mech: rsa, pub: []wire.Attribute{ul(p11.CKAModulusBits, 3072), {Type: p11.CKAPublicExponent, Value: []byte{0, 1, 0, 1}}}, alg: wire.AlgRSA3072},
		{name: "fail/param", mech: ec, param: []byte{0}, pub: []wire.Attribute{curve(derP256)}, rv: p11.CKRMechanismParamInvalid},
		{name: "fail/no-curve", mech: ec, rv: p11.CKRTemplateIncomplete},
		{name: "fail/ed25519", mech: ec, pub: []wire.Attribute{curve([]byte{0x06, 0x03, 0x2b, 0x65, 0x70})}, rv: p11.CKRCurveNotSupported},
		{name: "fail/no-bits", mech: rsa, rv: p11.CKRTemplateIncomplete},
		{name: "fail/bits-not-ulong", mech: rsa, pub: []wire.Attribute{{Type: p11.CKAModulusBits, Value: []byte{8}}}, rv: p11.CKRAttributeValueInvalid},
		{name: "fail/rsa1024", mech: rsa, pub: []wire.Attribute{ul(p11.CKAModulusBits, 1024)}, rv: p11.CKRKeySizeRange},
		{name: "fail/exponent-3", mech: rsa, pub: []wire.Attribute{ul(p11.CKAModulusBits, 2048), {Type: p11.CKAPublicExponent, Value: []byte{3}}}, rv: p11.CKRAttributeValueInvalid},
		{name: "fail/not-sensitive", mech: ec, pub: []wire.Attribute{curve(derP256)}, priv: []wire.Attribute{b(p11.CKASensitive, false)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/extractable", mech: ec, pub: []wire.Attribute{curve(derP256)}, priv: []wire.Attribute{b(p11.CKAExtractable, true)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/key-type", mech: ec, pub: []wire.Attribute{curve(derP256), ul(p11.CKAKeyType, p11.CKKRSA)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/mechanism", mech: 0x4242, rv: p11.CKRMechanismInvalid},
		{name: "fail/mechanism-with-param", mech: 0x4242, param: []byte{1}, rv: p11.CKRMechanismInvalid},
		{name: "fail/mechanism-64-bit", mech: 1<<40 | p11.CKMECKeyPairGen, pub: []wire.Attribute{curve(derP256)}, rv: p11.CKRMechanismInvalid},
		// Honoured or refused, never quietly changed.
		{name: "ok/restated", mech: ec,
			pub: []wire.Attribute{curve(derP256), ul(p11.CKAClass, ckoPublicKey), b(p11.CKAVerify, true), b(p11.CKAEncrypt, false), b(p11.CKAPrivate, false),
				{Type: p11.CKALabel, Value: []byte("k")}},
			priv: []wire.Attribute{ul(p11.CKAClass, ckoPrivateKey), b(p11.CKAPrivate, true), b(p11.CKASign, true), b(p11.CKASensitive, true),
				b(p11.CKADecrypt, false), b(p11.CKADerive, false), {Type: p11.CKASubject}},
			alg: wire.AlgECDSAP256},
		{name: "fail/private-key-not-private", mech: ec, pub: []wire.Attribute{curve(derP256)}, priv: []wire.Attribute{b(p11.CKAPrivate, false)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/public-key-private", mech: ec, pub: []wire.Attribute{curve(derP256), b(p11.CKAPrivate, true)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/decrypt", mech: rsa, pub: []wire.Attribute{ul(p11.CKAModulusBits, 2048)}, priv: []wire.Attribute{b(p11.CKADecrypt, true)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/encrypt", mech: rsa, pub: []wire.Attribute{ul(p11.CKAModulusBits, 2048), b(p11.CKAEncrypt, true)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/unwrap", mech: rsa, pub: []wire.Attribute{ul(p11.CKAModulusBits, 2048)}, priv: []wire.Attribute{b(p11.CKAUnwrap, true)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/derive", mech: ec, pub: []wire.Attribute{curve(derP256)}, priv: []wire.Attribute{b(p11.CKADerive, true)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/cannot-sign", mech: ec, pub: []wire.Attribute{curve(derP256)}, priv: []wire.Attribute{b(p11.CKASign, false)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/class-swapped", mech: ec, pub: []wire.Attribute{curve(derP256), ul(p11.CKAClass, ckoPrivateKey)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/subject", mech: ec, pub: []wire.Attribute{curve(derP256)}, priv: []wire.Attribute{{Type: p11.CKASubject, Value: []byte{0x30, 0}}}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/ec-params-for-rsa", mech: rsa, pub: []wire.Attribute{ul(p11.CKAModulusBits, 2048), curve(derP256)}, rv: p11.CKRTemplateInconsistent},
		{name: "fail/sign-on-public-key", mech: ec, pub: []wire.Attribute{curve(derP256), b(p11.CKASign, true)}, rv: p11.CKRAttributeTypeInvalid},
		{name: "fail/unknown-attribute", mech: ec, pub: []wire.Attribute{curve(derP256), {Type: 0x7777, Value: []byte{1}}}, rv: p11.CKRAttributeTypeInvalid},
		{name: "fail/bool-not-one-byte", mech: ec, pub: []wire.Attribute{curve(derP256)}, priv: []wire.Attribute{{Type: p11.CKASign, Value: []byte{1, 0}}}, rv: p11.CKRAttributeValueInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec, err := keygenTemplates(c.mech, c.param, c.pub, c.priv)
			if c.rv == 0 {
				if err != nil || spec.alg != c.alg || spec.token != c.token || spec.use != c.use {
					t.Fatalf("= %+v, %v; want %q token %v PIN use %v", spec, err, c.alg, c.token, c.use)
				}
				return
			}
			var se *wire.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *wire.StatusError", err)
			}
			if got := uint64(withRV(wire.TypeGenerateKeyPairTemplates, se).RV); got != c.rv {
				t.Errorf("CK_RV %#x (%v), want %#x", got, err, c.rv)
			}
		})
	}
	// Label and ID from either template, the private one first.
	spec, err := keygenTemplates(p11.CKMECKeyPairGen, nil,
		[]wire.Attribute{curve(derP256), {Type: p11.CKALabel, Value: []byte("pub")}, {Type: p11.CKAID, Value: []byte{1}}},
		[]wire.Attribute{{Type: p11.CKAID, Value: []byte{2}}})
	if err != nil || spec.label != "pub" || !bytes.Equal(spec.id, []byte{2}) {
		t.Errorf("label %q, id %x, %v", spec.label, spec.id, err)
	}
}

// TestKeygenFlagsAsReported: the boolean attributes a template may restate
// (keyFlags) are those attrs.go reports for a key of the card, EC and RSA,
// private and public; CKA_TOKEN and CKA_ALWAYS_AUTHENTICATE, which a
// template chooses, show what was chosen.
func TestKeygenFlagsAsReported(t *testing.T) {
	ecKey, rsaKey := testKeys()
	for _, key := range []tpmcard.KeyInfo{ecKey, rsaKey} {
		for priv, flags := range keyFlags {
			kind := objPublic
			if priv {
				kind = objPrivate
			}
			for typ, want := range flags {
				if v, st := keyAttribute(kind, key, true, typ); st != wire.OK || !bytes.Equal(v, wire.Bool(want)) {
					t.Errorf("%s private=%v attribute %#x: reported %x (%v), keyFlags says %v", key.Algorithm, priv, typ, v, st, want)
				}
			}
			for _, token := range []bool{true, false} {
				if v, st := keyAttribute(kind, key, token, p11.CKAToken); st != wire.OK || !bytes.Equal(v, wire.Bool(token)) {
					t.Errorf("%s private=%v token=%v: CKA_TOKEN %x (%v)", key.Algorithm, priv, token, v, st)
				}
			}
		}
		for _, use := range []tpmcard.PINUse{tpmcard.PINOnce, tpmcard.PINAlways} {
			key.PINUse = use
			if v, st := keyAttribute(objPrivate, key, true, p11.CKAAlwaysAuthenticate); st != wire.OK || !bytes.Equal(v, wire.Bool(use == tpmcard.PINAlways)) {
				t.Errorf("%s PIN use %v: CKA_ALWAYS_AUTHENTICATE %x (%v)", key.Algorithm, use, v, st)
			}
			if _, st := keyAttribute(objPublic, key, true, p11.CKAAlwaysAuthenticate); st != wire.AttributeInvalid {
				t.Errorf("%s public key: CKA_ALWAYS_AUTHENTICATE %v, want no such attribute", key.Algorithm, st)
			}
		}
	}
}
