package main

import (
	"bytes"
	"encoding/hex"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// ---------------------------------------------------------------------------
// Key generation (§5.14) and random numbers (§5.15).

// Named-curve OIDs, DER (RFC 5480 §2.1.1.1).
var (
	derP256 = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	derP384 = []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}
)

// keygenAlgorithm reads the templates of C_GenerateKeyPair: the curve from
// CKA_EC_PARAMS or the size from CKA_MODULUS_BITS, and CKA_LABEL and CKA_ID
// from either template (the private one first).
func keygenAlgorithm(mech uint64, pub, priv []Attribute) (alg, label string, id []byte, r rv) {
	both := append(append([]Attribute(nil), priv...), pub...)
	for _, a := range both {
		switch a.Type {
		case p11.CKAToken, p11.CKASensitive:
			if v, ok := wire.ParseBool(a.Value); ok && !v {
				return "", "", nil, ckrTemplateInconsistent // every key is a token key, and sensitive
			}
		case p11.CKAExtractable:
			if v, ok := wire.ParseBool(a.Value); ok && v {
				return "", "", nil, ckrTemplateInconsistent // no key ever leaves the TPM
			}
		}
	}
	if v, ok := attr(both, p11.CKALabel); ok {
		label = string(v)
	}
	if v, ok := attr(both, p11.CKAID); ok {
		id = bytes.Clone(v)
	}
	wantKeyType := uint64(p11.CKKEC)
	switch mech {
	case p11.CKMECKeyPairGen:
		p, ok := attr(both, p11.CKAECParams)
		switch {
		case !ok:
			return "", "", nil, ckrTemplateIncomplete
		case bytes.Equal(p, derP256):
			alg = wire.AlgECDSAP256
		case bytes.Equal(p, derP384):
			alg = wire.AlgECDSAP384
		default:
			return "", "", nil, ckrCurveNotSupported
		}
	case p11.CKMRSAPKCSKeyPairGen:
		wantKeyType = p11.CKKRSA
		v, ok := attr(both, p11.CKAModulusBits)
		if !ok {
			return "", "", nil, ckrTemplateIncomplete
		}
		bits, ok := ulong(v)
		switch {
		case !ok:
			return "", "", nil, ckrAttributeValueInvalid
		case bits == 2048:
			alg = wire.AlgRSA2048
		case bits == 3072:
			alg = wire.AlgRSA3072
		default:
			return "", "", nil, ckrKeySizeRange
		}
		if e, ok := attr(both, p11.CKAPublicExponent); ok && !bytes.Equal(bytes.TrimLeft(e, "\x00"), []byte{0x01, 0x00, 0x01}) {
			return "", "", nil, ckrAttributeValueInvalid // the TPM uses 65537
		}
	default:
		return "", "", nil, ckrMechanismInvalid
	}
	if v, ok := attr(both, p11.CKAKeyType); ok {
		if kt, ok := ulong(v); !ok || kt != wantKeyType {
			return "", "", nil, ckrTemplateInconsistent
		}
	}
	return alg, label, id, ckrOK
}

// GenerateKeyPair is C_GenerateKeyPair.
func (m *module) GenerateKeyPair(h, mech uint64, param []byte, pub, priv []Attribute) (uint64, uint64, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return 0, 0, r
	}
	if len(param) != 0 {
		return 0, 0, ckrMechanismParamInvalid
	}
	alg, label, id, r := keygenAlgorithm(mech, pub, priv)
	if r != ckrOK {
		return 0, 0, r
	}
	pubH, privH, err := b.GenerateKeyPair(s.wireID, alg, label, id, nil)
	if err != nil {
		return 0, 0, m.result(err, ckrDeviceRemoved)
	}
	m.log.printf("C_GenerateKeyPair session=%d %s id=%s -> %d,%d", h, alg, hex.EncodeToString(id), pubH, privH)
	return pubH, privH, ckrOK
}

// GenerateRandom is C_GenerateRandom: bytes from the TPM.
func (m *module) GenerateRandom(h uint64, out []byte) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	for done := 0; done < len(out); {
		n := min(len(out)-done, maxRandomChunk)
		rnd, err := b.GenerateRandom(s.wireID, n)
		if err != nil {
			return m.result(err, ckrDeviceRemoved)
		}
		if len(rnd) != n {
			return ckrFunctionFailed
		}
		done += copy(out[done:], rnd)
	}
	return ckrOK
}

// SeedRandom is C_SeedRandom: the TPM's generator takes no seed from here.
func (m *module) SeedRandom(h uint64) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, _, r := m.session(h); r != ckrOK {
		return r
	}
	return ckrRandomSeedNotSupported
}
