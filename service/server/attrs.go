package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"math/big"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// PKCS#11 v2.40 constants (pkcs11t.h) used for objects.
const (
	ckoPublicKey  = 2
	ckoPrivateKey = 3
)

// Attributes whose value is a CK_BBOOL.
var boolAttrs = map[uint64]bool{
	p11.CKAToken: true, p11.CKAPrivate: true, p11.CKASensitive: true, p11.CKAEncrypt: true, p11.CKADecrypt: true,
	p11.CKAWrap: true, p11.CKAUnwrap: true, p11.CKASign: true, p11.CKASignRecover: true, p11.CKAVerify: true,
	p11.CKAVerifyRecover: true, p11.CKADerive: true, p11.CKAExtractable: true, p11.CKALocal: true,
	p11.CKANeverExtractable: true, p11.CKAAlwaysSensitive: true, p11.CKAModifiable: true, p11.CKACopyable: true,
	p11.CKADestroyable: true, p11.CKAAlwaysAuthenticate: true,
}

func isBool(t uint64) bool { return boolAttrs[t] }

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
func attribute(kind objKind, k tpmcard.KeyInfo, t uint64) ([]byte, wire.Status) {
	priv := kind == objPrivate
	ec, _ := k.Public.(*ecdsa.PublicKey)
	rk, _ := k.Public.(*rsa.PublicKey)
	if ec == nil && rk == nil {
		return nil, wire.AttributeInvalid
	}
	switch t {
	// Common to storage objects (§4.4) and keys (§4.7).
	case p11.CKAClass:
		if priv {
			return wire.ULong(ckoPrivateKey), wire.OK
		}
		return wire.ULong(ckoPublicKey), wire.OK
	case p11.CKAToken:
		return wire.Bool(true), wire.OK
	case p11.CKAPrivate:
		return wire.Bool(priv), wire.OK
	case p11.CKAModifiable, p11.CKACopyable:
		return wire.Bool(false), wire.OK
	case p11.CKADestroyable:
		return wire.Bool(true), wire.OK
	case p11.CKALabel:
		return []byte(k.Label), wire.OK
	case p11.CKAKeyType:
		if ec != nil {
			return wire.ULong(p11.CKKEC), wire.OK
		}
		return wire.ULong(p11.CKKRSA), wire.OK
	case p11.CKAID:
		return k.ID, wire.OK
	case p11.CKASubject:
		return nil, wire.OK // no certificate subject recorded (yet): empty
	case p11.CKADerive:
		return wire.Bool(false), wire.OK
	case p11.CKALocal:
		return wire.Bool(true), wire.OK // generated in the TPM
	case p11.CKAKeyGenMechanism:
		if ec != nil {
			return wire.ULong(p11.CKMECKeyPairGen), wire.OK
		}
		return wire.ULong(p11.CKMRSAPKCSKeyPairGen), wire.OK
	case p11.CKAPublicKeyInfo:
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err != nil {
			return nil, wire.AttributeInvalid
		}
		return der, wire.OK

	// Public and private key usage flags (§4.8, §4.9).
	case p11.CKASign:
		return boolFor(priv, true)
	case p11.CKAVerify:
		return boolFor(!priv, true)
	case p11.CKADecrypt, p11.CKAUnwrap, p11.CKASignRecover:
		return boolFor(priv, false)
	case p11.CKAEncrypt, p11.CKAWrap, p11.CKAVerifyRecover:
		return boolFor(!priv, false)
	case p11.CKASensitive, p11.CKAAlwaysSensitive, p11.CKANeverExtractable:
		return boolFor(priv, true)
	case p11.CKAExtractable, p11.CKAAlwaysAuthenticate:
		return boolFor(priv, false)

	// Secret key material never leaves the TPM.
	case p11.CKAValue, p11.CKAPrivateExponent, p11.CKAPrime1, p11.CKAPrime2, p11.CKAExponent1, p11.CKAExponent2, p11.CKACoefficient:
		if priv {
			return nil, wire.AttributeSensitive
		}
		return nil, wire.AttributeInvalid

	// EC (§2.3.3, §2.3.4): both objects carry the curve; the point is a
	// public-key attribute, which many consumers also read from the
	// private object, so both carry it.
	case p11.CKAECParams:
		if ec == nil {
			return nil, wire.AttributeInvalid
		}
		oid := curveOID(ec.Curve)
		if oid == nil {
			return nil, wire.AttributeInvalid
		}
		der, _ := asn1.Marshal(oid)
		return der, wire.OK
	case p11.CKAECPoint:
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
	case p11.CKAModulus:
		if rk == nil {
			return nil, wire.AttributeInvalid
		}
		return rk.N.Bytes(), wire.OK
	case p11.CKAPublicExponent:
		if rk == nil {
			return nil, wire.AttributeInvalid
		}
		return big.NewInt(int64(rk.E)).Bytes(), wire.OK
	case p11.CKAModulusBits:
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
