package tpmcard

import (
	"crypto"
	"fmt"
	"strings"

	"github.com/google/go-tpm/tpm2"
)

// Algorithm names a key type a card can generate.
type Algorithm string

const (
	ECDSAP256 Algorithm = "ecdsa-p256"
	ECDSAP384 Algorithm = "ecdsa-p384"
	RSA2048   Algorithm = "rsa-2048"
	RSA3072   Algorithm = "rsa-3072"
)

// Algorithms lists every algorithm in a stable order.
func Algorithms() []Algorithm { return []Algorithm{ECDSAP256, ECDSAP384, RSA2048, RSA3072} }

// ParseAlgorithm accepts the names above, case-insensitively.
func ParseAlgorithm(s string) (Algorithm, error) {
	a := Algorithm(strings.ToLower(strings.TrimSpace(s)))
	for _, k := range Algorithms() {
		if a == k {
			return a, nil
		}
	}
	return "", fmt.Errorf("%w: unknown key algorithm %q (want one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072)", ErrInvalidOptions, s)
}

// IsRSA reports whether the algorithm is RSA.
func (a Algorithm) IsRSA() bool { return a == RSA2048 || a == RSA3072 }

// Bits is the key size: the curve's or the modulus's.
func (a Algorithm) Bits() int {
	switch a {
	case ECDSAP256:
		return 256
	case ECDSAP384:
		return 384
	case RSA2048:
		return 2048
	case RSA3072:
		return 3072
	}
	return 0
}

// template is the TPMT_PUBLIC of a card key (Part 2 §12.2.4): a signing key
// bound to this TPM and its parent, generated inside it, usable only through
// its policy (userWithAuth clear, adminWithPolicy set). The signing scheme
// is left open (TPM_ALG_NULL) so each signature picks its own.
func (a Algorithm) template(policy []byte) (tpm2.TPMTPublic, error) {
	attrs := tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        false,
		AdminWithPolicy:     true,
		NoDA:                true,
		SignEncrypt:         true,
	}
	pub := tpm2.TPMTPublic{
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: attrs,
		AuthPolicy:       tpm2.TPM2BDigest{Buffer: policy},
	}
	switch a {
	case ECDSAP256, ECDSAP384:
		curve := tpm2.TPMECCNistP256
		if a == ECDSAP384 {
			curve = tpm2.TPMECCNistP384
		}
		pub.Type = tpm2.TPMAlgECC
		pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			CurveID:   curve,
			KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		})
		pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{})
	case RSA2048, RSA3072:
		pub.Type = tpm2.TPMAlgRSA
		pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
			KeyBits:   tpm2.TPMKeyBits(a.Bits()),
		})
		pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{})
	default:
		return pub, fmt.Errorf("%w: unknown key algorithm %q", ErrInvalidOptions, a)
	}
	return pub, nil
}

// tpmHash maps a Go hash to the TPM's identifier.
func tpmHash(h crypto.Hash) (tpm2.TPMIAlgHash, error) {
	switch h {
	case crypto.SHA1:
		return tpm2.TPMAlgSHA1, nil
	case crypto.SHA256:
		return tpm2.TPMAlgSHA256, nil
	case crypto.SHA384:
		return tpm2.TPMAlgSHA384, nil
	case crypto.SHA512:
		return tpm2.TPMAlgSHA512, nil
	}
	return 0, fmt.Errorf("%w: hash %v", ErrUnsupported, h)
}
