package server

import (
	"bytes"
	"context"
	"encoding/asn1"
	"fmt"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
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

// C_GenerateKeyPair makes a token key (CKA_TOKEN true), on the card, in a
// read-write session and for administrators only, or a session key
// (CKA_TOKEN false, PKCS#11's default), in any session of anyone who may
// use the card, for the session alone (sessionkeys.go).
func (c *conn) generateKeyPairTemplates(ctx context.Context, m *wire.GenerateKeyPairTemplates) (any, error) {
	if err := c.needUser(wire.TypeGenerateKeyPairTemplates); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	spec, err := keygenTemplates(m.Mechanism, m.Param, m.Public, m.Private)
	if err != nil {
		return nil, err
	}
	alg, err := tpmcard.ParseAlgorithm(spec.alg)
	if err != nil {
		return nil, wire.Errorf(wire.UnsupportedAlgorithm, "unknown key algorithm %q", spec.alg)
	}
	opts := tpmcard.KeyOptions{Algorithm: alg, Label: spec.label, ID: spec.id, PINUse: spec.use}
	if !spec.token {
		return c.generateSessionKey(ctx, s, opts)
	}
	if _, err := c.keygenSession(wire.TypeGenerateKeyPairTemplates, m.Session); err != nil {
		return nil, err
	}
	pub, priv, err := c.generateTokenKey(ctx, s, opts)
	if err != nil {
		return nil, err
	}
	return &wire.GeneratedKeyPair{Public: pub, Private: priv}, nil
}

// generateKeyWithPolicy is GenerateKeyPair with a PIN policy (the CLI's
// key generate --pin-policy); keygenSession has checked the session.
func (c *conn) generateKeyWithPolicy(ctx context.Context, s *session, m *wire.GenerateKeyPair) (any, error) {
	alg, err := tpmcard.ParseAlgorithm(m.Algorithm)
	if err != nil {
		return nil, wire.Errorf(wire.UnsupportedAlgorithm, "unknown key algorithm %q", m.Algorithm)
	}
	use, err := tpmcard.ParsePINUse(m.PINPolicy)
	if err != nil {
		return nil, wire.Errorf(wire.BadRequest, "PIN policy %q: once or always", m.PINPolicy)
	}
	pub, priv, err := c.generateTokenKey(ctx, s, tpmcard.KeyOptions{Algorithm: alg, Label: m.Label, ID: m.ID, PINUse: use})
	if err != nil {
		return nil, err
	}
	return &wire.KeyPairGenerated{Public: pub, Private: priv}, nil
}

// generateTokenKey makes a key on the session's card and returns its
// public and private object handles.
func (c *conn) generateTokenKey(ctx context.Context, s *session, opts tpmcard.KeyOptions) (pub, priv uint64, err error) {
	k, err := c.s.m.GenerateKey(ctx, s.serial, opts, c.keygenProgress(opts.Algorithm))
	if err != nil {
		c.log.Warn().Str("card", s.serial).Str("algorithm", string(opts.Algorithm)).Err(err).Msg("key generation failed")
		return 0, 0, err
	}
	c.log.Info().Str("card", s.serial).Str("algorithm", string(opts.Algorithm)).Hex("key_id", k.ID).Str("label", k.Label).
		Str("pin_use", k.PINUse.String()).Msg("key generated")
	return c.objects.handle(objRef{serial: s.serial, id: string(k.ID), kind: objPublic}),
		c.objects.handle(objRef{serial: s.serial, id: string(k.ID), kind: objPrivate}), nil
}

// keygenSpec is what C_GenerateKeyPair's templates ask for.
type keygenSpec struct {
	alg, label string
	id         []byte
	token      bool           // CKA_TOKEN: a token key, else a session key
	use        tpmcard.PINUse // CKA_ALWAYS_AUTHENTICATE true: PINAlways
}

// keygenTemplates reads C_GenerateKeyPair's arguments: a mechanism of the
// card with no parameter; keys sensitive and never extractable; the
// curve from CKA_EC_PARAMS or the size from CKA_MODULUS_BITS (exponent
// 65537 if given) and a matching CKA_KEY_TYPE if given; CKA_LABEL and
// CKA_ID from either template, the private one first. CKA_TOKEN (false
// unless given) is the pair's: the card keeps both halves or neither, so
// the two templates may not disagree. CKA_ALWAYS_AUTHENTICATE, in the
// private template, asks for a key that needs the PIN for every signature.
func keygenTemplates(mech uint64, param []byte, pub, priv []wire.Attribute) (spec keygenSpec, err error) {
	fail := func(st wire.Status, msg string) (keygenSpec, error) {
		return keygenSpec{}, wire.NewError(st, msg)
	}
	if mech != p11.CKMECKeyPairGen && mech != p11.CKMRSAPKCSKeyPairGen {
		return fail(wire.MechanismInvalid, "not a key pair generation mechanism of the card")
	}
	if len(param) != 0 {
		return fail(wire.MechanismParamInvalid, "key pair generation takes no mechanism parameter")
	}
	if err := checkTemplate(priv, true, mech); err != nil {
		return keygenSpec{}, err
	}
	if err := checkTemplate(pub, false, mech); err != nil {
		return keygenSpec{}, err
	}
	privToken, privSays := boolAttr(priv, p11.CKAToken)
	pubToken, pubSays := boolAttr(pub, p11.CKAToken)
	if privSays && pubSays && privToken != pubToken {
		return fail(wire.TemplateInconsistent, "CKA_TOKEN differs between the templates: the card makes both halves token objects or both session objects")
	}
	spec.token = privToken || pubToken
	// A token key's label and ID can change (setattr.go), a session
	// key's cannot: CKA_MODIFIABLE is CKA_TOKEN.
	for _, t := range [][]wire.Attribute{priv, pub} {
		if m, says := boolAttr(t, p11.CKAModifiable); says && m != spec.token {
			return fail(wire.TemplateInconsistent, fmt.Sprintf("the card's %s keys have CKA_MODIFIABLE %v (their label and ID)", map[bool]string{true: "token", false: "session"}[spec.token], spec.token))
		}
	}
	if always, _ := boolAttr(priv, p11.CKAAlwaysAuthenticate); always {
		spec.use = tpmcard.PINAlways
	}
	both := append(append([]wire.Attribute(nil), priv...), pub...)
	if v, ok := attrValue(both, p11.CKALabel); ok {
		spec.label = string(v)
	}
	if v, ok := attrValue(both, p11.CKAID); ok {
		spec.id = bytes.Clone(v)
	}
	keyType := uint64(p11.CKKEC)
	switch mech {
	case p11.CKMECKeyPairGen:
		p, ok := attrValue(both, p11.CKAECParams)
		switch {
		case !ok:
			return fail(wire.TemplateIncomplete, "CKM_EC_KEY_PAIR_GEN needs CKA_EC_PARAMS")
		case bytes.Equal(p, derP256):
			spec.alg = wire.AlgECDSAP256
		case bytes.Equal(p, derP384):
			spec.alg = wire.AlgECDSAP384
		default:
			return keygenSpec{}, &wire.StatusError{Status: wire.UnsupportedAlgorithm, TriesLeft: -1,
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
			spec.alg = wire.AlgRSA2048
		case bits == 3072:
			spec.alg = wire.AlgRSA3072
		default:
			return keygenSpec{}, &wire.StatusError{Status: wire.UnsupportedAlgorithm, TriesLeft: -1,
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
	return spec, nil
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
		p11.CKAPrivate: true, p11.CKASensitive: true, p11.CKAExtractable: false,
		p11.CKASign: true, p11.CKADecrypt: false, p11.CKAUnwrap: false, p11.CKASignRecover: false,
		p11.CKADerive: false, p11.CKACopyable: false, p11.CKADestroyable: true,
	},
	false: { // public key
		p11.CKAPrivate: false, p11.CKAVerify: true, p11.CKAEncrypt: false,
		p11.CKAWrap: false, p11.CKAVerifyRecover: false, p11.CKADerive: false,
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
		case p11.CKAToken, p11.CKAModifiable: // either value: keygenTemplates
			if _, ok := wire.ParseBool(a.Value); !ok {
				return wire.Errorf(wire.AttributeValueInvalid, "attribute %#x is a CK_BBOOL", a.Type)
			}
		case p11.CKAAlwaysAuthenticate:
			if !priv {
				return wire.Errorf(wire.AttributeInvalid, "attribute %#x cannot be set on a generated key", a.Type)
			}
			if _, ok := wire.ParseBool(a.Value); !ok {
				return wire.Errorf(wire.AttributeValueInvalid, "attribute %#x is a CK_BBOOL", a.Type)
			}
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

// boolAttr reads a CK_BBOOL of a template that checkTemplate passed, and
// whether the template has it.
func boolAttr(t []wire.Attribute, typ uint64) (v, ok bool) {
	b, ok := attrValue(t, typ)
	if !ok {
		return false, false
	}
	v, _ = wire.ParseBool(b)
	return v, true
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
