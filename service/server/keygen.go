package server

import (
	"bytes"
	"context"
	"encoding/asn1"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// C_GenerateKeyPair (PKCS#11 v2.40 §5.14) from the caller's mechanism and
// templates: the checks PKCS#11 asks of the token are made here, so that a
// module passes the call on as it came.

// Named curves as CKA_EC_PARAMS carries them: the DER of the OID (RFC 5480
// §2.1.1.1).
var (
	derP256, _ = asn1.Marshal(oidP256)
	derP384, _ = asn1.Marshal(oidP384)
)

func (c *conn) generateKeyPairTemplates(ctx context.Context, m *wire.GenerateKeyPairTemplates) (any, error) {
	s, err := c.keygenSession(wire.TypeGenerateKeyPairTemplates, m.Session)
	if err != nil {
		return nil, err
	}
	alg, label, id, err := keygenTemplates(m.Mechanism, m.Param, m.Public, m.Private)
	if err != nil {
		return nil, err
	}
	kp, err := c.generateKeyIn(ctx, s, alg, label, id)
	if err != nil {
		return nil, err
	}
	return &wire.GeneratedKeyPair{Public: kp.Public, Private: kp.Private}, nil
}

// keygenTemplates reads C_GenerateKeyPair's arguments: a mechanism of the
// card with no parameter; every key a token key, sensitive and never extractable; the
// curve from CKA_EC_PARAMS or the size from CKA_MODULUS_BITS (exponent
// 65537 if given) and a matching CKA_KEY_TYPE if given; CKA_LABEL and
// CKA_ID from either template, the private one first.
func keygenTemplates(mech uint64, param []byte, pub, priv []wire.Attribute) (alg, label string, id []byte, err error) {
	fail := func(st wire.Status, msg string) (string, string, []byte, error) {
		return "", "", nil, wire.NewError(st, msg)
	}
	if mech != p11.CKMECKeyPairGen && mech != p11.CKMRSAPKCSKeyPairGen {
		return fail(wire.MechanismInvalid, "not a key pair generation mechanism of the card")
	}
	if len(param) != 0 {
		return fail(wire.MechanismParamInvalid, "key pair generation takes no mechanism parameter")
	}
	if err := checkTemplate(priv, true, mech); err != nil {
		return "", "", nil, err
	}
	if err := checkTemplate(pub, false, mech); err != nil {
		return "", "", nil, err
	}
	both := append(append([]wire.Attribute(nil), priv...), pub...)
	if v, ok := attrValue(both, p11.CKALabel); ok {
		label = string(v)
	}
	if v, ok := attrValue(both, p11.CKAID); ok {
		id = bytes.Clone(v)
	}
	keyType := uint64(p11.CKKEC)
	switch mech {
	case p11.CKMECKeyPairGen:
		p, ok := attrValue(both, p11.CKAECParams)
		switch {
		case !ok:
			return fail(wire.TemplateIncomplete, "CKM_EC_KEY_PAIR_GEN needs CKA_EC_PARAMS")
		case bytes.Equal(p, derP256):
			alg = wire.AlgECDSAP256
		case bytes.Equal(p, derP384):
			alg = wire.AlgECDSAP384
		default:
			return "", "", nil, &wire.StatusError{Status: wire.UnsupportedAlgorithm, TriesLeft: -1,
				Message: "the card makes P-256 and P-384 keys", RV: p11.CKRCurveNotSupported}
		}
	case p11.CKMRSAPKCSKeyPairGen:
		keyType = p11.CKKRSA
		v, ok := attrValue(both, p11.CKAModulusBits)
		if !ok {
			return fail(wire.TemplateIncomplete, "CKM_RSA_PKCS_KEY_PAIR_GEN needs CKA_MODULUS_BITS")
		}
		switch bits, ok := wire.ParseULong(v); {
		case !ok:
			return fail(wire.AttributeValueInvalid, "CKA_MODULUS_BITS is not a CK_ULONG")
		case bits == 2048:
			alg = wire.AlgRSA2048
		case bits == 3072:
			alg = wire.AlgRSA3072
		default:
			return "", "", nil, &wire.StatusError{Status: wire.UnsupportedAlgorithm, TriesLeft: -1,
				Message: "the card makes 2048- and 3072-bit RSA keys", RV: p11.CKRKeySizeRange}
		}
		if e, ok := attrValue(both, p11.CKAPublicExponent); ok && !bytes.Equal(bytes.TrimLeft(e, "\x00"), []byte{0x01, 0x00, 0x01}) {
			return fail(wire.AttributeValueInvalid, "the TPM's RSA keys have the public exponent 65537")
		}
	}
	if v, ok := attrValue(both, p11.CKAKeyType); ok {
		if kt, ok := wire.ParseULong(v); !ok || kt != keyType {
			return fail(wire.TemplateInconsistent, "CKA_KEY_TYPE does not match the mechanism")
		}
	}
	return alg, label, id, nil
}

// Templates are honoured or refused, never quietly changed (§5.14): a
// template may restate what a generated key of the card is, and set its
// label and ID; a value the card cannot give is CKR_TEMPLATE_INCONSISTENT,
// an attribute it does not know CKR_ATTRIBUTE_TYPE_INVALID, a boolean that
// is not one byte CKR_ATTRIBUTE_VALUE_INVALID.

// keyFlags are the boolean attributes of a generated private or public
// key, as attrs.go reports them (TestKeygenFlagsAsReported holds the two
// to each other).
var keyFlags = map[bool]map[uint64]bool{
	true: { // private key
		p11.CKAToken: true, p11.CKAPrivate: true, p11.CKASensitive: true, p11.CKAExtractable: false,
		p11.CKASign: true, p11.CKADecrypt: false, p11.CKAUnwrap: false, p11.CKASignRecover: false,
		p11.CKADerive: false, p11.CKAModifiable: false, p11.CKACopyable: false, p11.CKADestroyable: true,
		p11.CKAAlwaysAuthenticate: false,
	},
	false: { // public key
		p11.CKAToken: true, p11.CKAPrivate: false, p11.CKAVerify: true, p11.CKAEncrypt: false,
		p11.CKAWrap: false, p11.CKAVerifyRecover: false, p11.CKADerive: false, p11.CKAModifiable: false,
		p11.CKACopyable: false, p11.CKADestroyable: true,
	},
}

// checkTemplate checks one template of C_GenerateKeyPair. The generation
// inputs (CKA_EC_PARAMS, CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT), CKA_KEY_TYPE,
// CKA_LABEL and CKA_ID are read by keygenTemplates.
func checkTemplate(t []wire.Attribute, priv bool, mech uint64) error {
	class := uint64(ckoPublicKey)
	if priv {
		class = ckoPrivateKey
	}
	for _, a := range t {
		if want, ok := keyFlags[priv][a.Type]; ok {
			v, ok := wire.ParseBool(a.Value)
			switch {
			case !ok:
				return wire.Errorf(wire.AttributeValueInvalid, "attribute %#x is a CK_BBOOL", a.Type)
			case v != want:
				return wire.Errorf(wire.TemplateInconsistent, "the card's keys have attribute %#x %v", a.Type, want)
			}
			continue
		}
		switch a.Type {
		case p11.CKAClass:
			if c, ok := wire.ParseULong(a.Value); !ok || c != class {
				return wire.Errorf(wire.TemplateInconsistent, "CKA_CLASS %x in the wrong template", a.Value)
			}
		case p11.CKASubject:
			if len(a.Value) != 0 {
				return wire.NewError(wire.TemplateInconsistent, "the card records no subject for a key")
			}
		case p11.CKALabel, p11.CKAID, p11.CKAKeyType:
		case p11.CKAECParams:
			if mech != p11.CKMECKeyPairGen {
				return wire.NewError(wire.TemplateInconsistent, "CKA_EC_PARAMS for an RSA key")
			}
		case p11.CKAModulusBits, p11.CKAPublicExponent:
			if mech != p11.CKMRSAPKCSKeyPairGen {
				return wire.NewError(wire.TemplateInconsistent, "RSA parameters for an EC key")
			}
		default:
			return wire.Errorf(wire.AttributeInvalid, "attribute %#x cannot be set on a generated key", a.Type)
		}
	}
	return nil
}

// attrValue finds an attribute in a template.
func attrValue(t []wire.Attribute, typ uint64) ([]byte, bool) {
	for _, a := range t {
		if a.Type == typ {
			return a.Value, true
		}
	}
	return nil, false
}
