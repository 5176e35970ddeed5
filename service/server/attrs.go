package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"math/big"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// PKCS#11 v2.40 constants (pkcs11t.h) used for objects.
const (
	ckoPublicKey  = 2
	ckoPrivateKey = 3

	ckkRSA = 0x0
	ckkEC  = 0x3

	ckaClass            = 0x000
	ckaToken            = 0x001
	ckaPrivate          = 0x002
	ckaLabel            = 0x003
	ckaValue            = 0x011
	ckaKeyType          = 0x100
	ckaSubject          = 0x101
	ckaID               = 0x102
	ckaSensitive        = 0x103
	ckaEncrypt          = 0x104
	ckaDecrypt          = 0x105
	ckaWrap             = 0x106
	ckaUnwrap           = 0x107
	ckaSign             = 0x108
	ckaSignRecover      = 0x109
	ckaVerify           = 0x10a
	ckaVerifyRecover    = 0x10b
	ckaDerive           = 0x10c
	ckaModulus          = 0x120
	ckaModulusBits      = 0x121
	ckaPublicExponent   = 0x122
	ckaPrivateExponent  = 0x123
	ckaPublicKeyInfo    = 0x129
	ckaExtractable      = 0x162
	ckaLocal            = 0x163
	ckaNeverExtractable = 0x164
	ckaAlwaysSensitive  = 0x165
	ckaKeyGenMechanism  = 0x166
	ckaModifiable       = 0x170
	ckaCopyable         = 0x171
	ckaDestroyable      = 0x172
	ckaECParams         = 0x180
	ckaECPoint          = 0x181
	ckaAlwaysAuth       = 0x202
)

// Attributes whose value is a CK_BBOOL.
var boolAttrs = map[uint32]bool{
	ckaToken: true, ckaPrivate: true, ckaSensitive: true, ckaEncrypt: true, ckaDecrypt: true,
	ckaWrap: true, ckaUnwrap: true, ckaSign: true, ckaSignRecover: true, ckaVerify: true,
	ckaVerifyRecover: true, ckaDerive: true, ckaExtractable: true, ckaLocal: true,
	ckaNeverExtractable: true, ckaAlwaysSensitive: true, ckaModifiable: true, ckaCopyable: true,
	ckaDestroyable: true, ckaAlwaysAuth: true,
}

func isBool(t uint32) bool { return boolAttrs[t] }

// Named-curve OIDs (RFC 5480 §2.1.1.1).
var (
	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521 = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
)

// attribute returns one attribute of a card key's public or private
// object, PKCS#11-encoded (CK_ULONG and CK_BBOOL as package wire encodes
// them, big integers big-endian without sign, DER where the standard says
// DER). Status is OK, AttributeSensitive (secret parts of the private key,
// which never leave the TPM) or AttributeInvalid (not an attribute of this
// object).
func attribute(kind objKind, k tpmcard.KeyInfo, t uint32) ([]byte, wire.Status) {
	priv := kind == objPrivate
	ec, _ := k.Public.(*ecdsa.PublicKey)
	rk, _ := k.Public.(*rsa.PublicKey)
	if ec == nil && rk == nil {
		return nil, wire.AttributeInvalid
	}
	switch t {
	// Common to storage objects (§4.4) and keys (§4.7).
	case ckaClass:
		if priv {
			return wire.ULong(ckoPrivateKey), wire.OK
		}
		return wire.ULong(ckoPublicKey), wire.OK
	case ckaToken:
		return wire.Bool(true), wire.OK
	case ckaPrivate:
		return wire.Bool(priv), wire.OK
	case ckaModifiable, ckaCopyable:
		return wire.Bool(false), wire.OK
	case ckaDestroyable:
		return wire.Bool(true), wire.OK
	case ckaLabel:
		return []byte(k.Label), wire.OK
	case ckaKeyType:
		if ec != nil {
			return wire.ULong(ckkEC), wire.OK
		}
		return wire.ULong(ckkRSA), wire.OK
	case ckaID:
		return k.ID, wire.OK
	case ckaSubject:
		return nil, wire.OK // no certificate subject recorded (yet): empty
	case ckaDerive:
		return wire.Bool(false), wire.OK
	case ckaLocal:
		return wire.Bool(true), wire.OK // generated in the TPM
	case ckaKeyGenMechanism:
		if ec != nil {
			return wire.ULong(ckmECKeyPairGen), wire.OK
		}
		return wire.ULong(ckmRSAKeyPairGen), wire.OK
	case ckaPublicKeyInfo:
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err != nil {
			return nil, wire.AttributeInvalid
		}
		return der, wire.OK

	// Public and private key usage flags (§4.8, §4.9).
	case ckaSign:
		return boolFor(priv, true)
	case ckaVerify:
		return boolFor(!priv, true)
	case ckaDecrypt, ckaUnwrap, ckaSignRecover:
		return boolFor(priv, false)
	case ckaEncrypt, ckaWrap, ckaVerifyRecover:
		return boolFor(!priv, false)
	case ckaSensitive, ckaAlwaysSensitive, ckaNeverExtractable:
		return boolFor(priv, true)
	case ckaExtractable, ckaAlwaysAuth:
		return boolFor(priv, false)

	// Secret key material never leaves the TPM.
	case ckaValue, ckaPrivateExponent, 0x124, 0x125, 0x126, 0x127, 0x128: // CKA_PRIME_1 … CKA_COEFFICIENT
		if priv {
			return nil, wire.AttributeSensitive
		}
		return nil, wire.AttributeInvalid

	// EC (§2.3.3, §2.3.4): both objects carry the curve; the point is a
	// public-key attribute, which many consumers also read from the
	// private object, so both carry it.
	case ckaECParams:
		if ec == nil {
			return nil, wire.AttributeInvalid
		}
		oid := curveOID(ec.Curve)
		if oid == nil {
			return nil, wire.AttributeInvalid
		}
		der, _ := asn1.Marshal(oid)
		return der, wire.OK
	case ckaECPoint:
		if ec == nil {
			return nil, wire.AttributeInvalid
		}
		pt, err := ec.Bytes() // uncompressed SEC 1 point
		if err != nil {
			return nil, wire.AttributeInvalid
		}
		der, _ := asn1.Marshal(pt) // DER OCTET STRING, as OpenSC and NSS expect
		return der, wire.OK

	// RSA (§2.1.2, §2.1.3).
	case ckaModulus:
		if rk == nil {
			return nil, wire.AttributeInvalid
		}
		return rk.N.Bytes(), wire.OK
	case ckaPublicExponent:
		if rk == nil {
			return nil, wire.AttributeInvalid
		}
		return big.NewInt(int64(rk.E)).Bytes(), wire.OK
	case ckaModulusBits:
		if rk == nil {
			return nil, wire.AttributeInvalid
		}
		return wire.ULong(uint64(rk.N.BitLen())), wire.OK
	}
	return nil, wire.AttributeInvalid
}

// boolFor returns v for an attribute the object has, AttributeInvalid when
// the object class does not define it.
func boolFor(has, v bool) ([]byte, wire.Status) {
	if !has {
		return nil, wire.AttributeInvalid
	}
	return wire.Bool(v), wire.OK
}

func curveOID(c elliptic.Curve) asn1.ObjectIdentifier {
	switch c {
	case elliptic.P256():
		return oidP256
	case elliptic.P384():
		return oidP384
	case elliptic.P521():
		return oidP521
	}
	return nil
}
