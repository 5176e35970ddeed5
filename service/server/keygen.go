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
	both := append(append([]wire.Attribute(nil), priv...), pub...)
	for _, a := range both {
		switch a.Type {
		case p11.CKAToken, p11.CKASensitive:
			if v, ok := wire.ParseBool(a.Value); ok && !v {
				return fail(wire.TemplateInconsistent, "every key is a token key, and sensitive")
			}
		case p11.CKAExtractable:
			if v, ok := wire.ParseBool(a.Value); ok && v {
				return fail(wire.TemplateInconsistent, "no key ever leaves the TPM")
			}
		}
	}
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

// attrValue finds an attribute in a template.
func attrValue(t []wire.Attribute, typ uint64) ([]byte, bool) {
	for _, a := range t {
		if a.Type == typ {
			return a.Value, true
		}
	}
	return nil, false
}
