package server

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// mech describes how a signing mechanism maps onto tpmcard.Sign.
type mech struct {
	rsa  bool
	hash crypto.Hash // the service hashes the data with it; 0: the data is the digest
	pss  bool
}

var signMechs = map[uint32]mech{
	p11.CKMECDSA:            {},
	p11.CKMECDSASHA256:      {hash: crypto.SHA256},
	p11.CKMECDSASHA384:      {hash: crypto.SHA384},
	p11.CKMECDSASHA512:      {hash: crypto.SHA512},
	p11.CKMRSAPKCS:          {rsa: true},
	p11.CKMSHA256RSAPKCS:    {rsa: true, hash: crypto.SHA256},
	p11.CKMSHA384RSAPKCS:    {rsa: true, hash: crypto.SHA384},
	p11.CKMSHA512RSAPKCS:    {rsa: true, hash: crypto.SHA512},
	p11.CKMRSAPKCSPSS:       {rsa: true, pss: true},
	p11.CKMSHA256RSAPKCSPSS: {rsa: true, hash: crypto.SHA256, pss: true},
	p11.CKMSHA384RSAPKCSPSS: {rsa: true, hash: crypto.SHA384, pss: true},
	p11.CKMSHA512RSAPKCSPSS: {rsa: true, hash: crypto.SHA512, pss: true},
}

// mechanismList is the CK_MECHANISM_INFO of every mechanism, in a fixed
// order. hw says the TPM is hardware (CKF_HW).
func mechanismList(hw bool) []wire.MechanismInfo {
	var hwf uint32
	if hw {
		hwf = p11.CKFHW
	}
	ecf := hwf | p11.CKFECFp | p11.CKFECNamedCurve | p11.CKFECUncompress
	out := []wire.MechanismInfo{
		{Mechanism: p11.CKMECKeyPairGen, MinKeyBits: 256, MaxKeyBits: 384, Flags: ecf | p11.CKFGenerateKeyPair},
		{Mechanism: p11.CKMRSAPKCSKeyPairGen, MinKeyBits: 2048, MaxKeyBits: 3072, Flags: hwf | p11.CKFGenerateKeyPair},
	}
	// The card's keys sign in the TPM and verify in software (verify.go);
	// the SHA-1 mechanisms only verify.
	for _, m := range []uint32{p11.CKMECDSA, p11.CKMECDSASHA256, p11.CKMECDSASHA384, p11.CKMECDSASHA512} {
		out = append(out, wire.MechanismInfo{Mechanism: m, MinKeyBits: 256, MaxKeyBits: 384, Flags: ecf | p11.CKFSign | ckfVerify})
	}
	out = append(out, wire.MechanismInfo{Mechanism: ckmECDSASHA1, MinKeyBits: 256, MaxKeyBits: 384, Flags: ecf&^p11.CKFHW | ckfVerify})
	for _, m := range []uint32{p11.CKMRSAPKCS, p11.CKMSHA256RSAPKCS, p11.CKMSHA384RSAPKCS, p11.CKMSHA512RSAPKCS,
		p11.CKMRSAPKCSPSS, p11.CKMSHA256RSAPKCSPSS, p11.CKMSHA384RSAPKCSPSS, p11.CKMSHA512RSAPKCSPSS} {
		out = append(out, wire.MechanismInfo{Mechanism: m, MinKeyBits: 2048, MaxKeyBits: 3072, Flags: hwf | p11.CKFSign | ckfVerify})
	}
	for _, m := range []uint32{ckmSHA1RSAPKCS, ckmSHA1RSAPKCSPSS} {
		out = append(out, wire.MechanismInfo{Mechanism: m, MinKeyBits: 2048, MaxKeyBits: 3072, Flags: ckfVerify})
	}
	// Digests, in software (digest.go): no key, so no key sizes.
	for _, m := range []uint32{p11.CKMSHA1, p11.CKMSHA256, p11.CKMSHA384, p11.CKMSHA512} {
		out = append(out, wire.MechanismInfo{Mechanism: m, Flags: ckfDigest})
	}
	return out
}

// lookupMech checks that the mechanism signs with this kind of key.
func lookupMech(k tpmcard.KeyInfo, mechanism uint32) (mech, error) {
	m, ok := signMechs[mechanism]
	if !ok {
		return mech{}, wire.Errorf(wire.MechanismInvalid, "mechanism %#x cannot sign", mechanism)
	}
	if m.rsa != k.Algorithm.IsRSA() {
		return mech{}, wire.Errorf(wire.KeyTypeInconsistent, "mechanism %#x does not fit a %s key", mechanism, k.Algorithm)
	}
	return m, nil
}

// DigestInfo prefixes (RFC 8017 §9.2 note 1): the DER of
// DigestInfo{AlgorithmIdentifier{oid, NULL}, OCTET STRING} up to the digest.
var digestInfoPrefixes = []struct {
	hash   crypto.Hash
	prefix []byte
}{
	{crypto.SHA1, []byte{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}},
	{crypto.SHA256, []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}},
	{crypto.SHA384, []byte{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}},
	{crypto.SHA512, []byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}},
}

// parseDigestInfo splits the input of CKM_RSA_PKCS into hash and digest.
// The TPM builds the DigestInfo itself (RSASSA, TPM 2.0 Part 1 §C.5), so
// only these four hashes, with NULL parameters, can be signed.
func parseDigestInfo(b []byte) (crypto.Hash, []byte, error) {
	for _, d := range digestInfoPrefixes {
		if len(b) == len(d.prefix)+d.hash.Size() && bytes.HasPrefix(b, d.prefix) {
			return d.hash, b[len(d.prefix):], nil
		}
	}
	return 0, nil, wire.NewError(wire.DataInvalid, "CKM_RSA_PKCS needs a DER DigestInfo of SHA-1, SHA-256, SHA-384 or SHA-512")
}

// parsePSSParams reads CK_RSA_PKCS_PSS_PARAMS (three CK_ULONGs: hashAlg,
// mgf, sLen). The TPM signs with MGF1 of the signature's hash and a salt as
// long as that hash (TPM 2.0 Part 1 §B.7), so only those parameters work.
func parsePSSParams(p []byte, want crypto.Hash) (crypto.Hash, error) {
	n := wire.ULongSize
	if len(p) != 3*n {
		return 0, wire.Errorf(wire.MechanismParamInvalid, "CK_RSA_PKCS_PSS_PARAMS of %d bytes, want %d", len(p), 3*n)
	}
	hashAlg, _ := wire.ParseULong(p[:n])
	mgf, _ := wire.ParseULong(p[n : 2*n])
	sLen, _ := wire.ParseULong(p[2*n:])
	var h crypto.Hash
	var wantMGF uint64
	switch hashAlg {
	case p11.CKMSHA1:
		h, wantMGF = crypto.SHA1, p11.CKGMGF1SHA1
	case p11.CKMSHA256:
		h, wantMGF = crypto.SHA256, p11.CKGMGF1SHA256
	case p11.CKMSHA384:
		h, wantMGF = crypto.SHA384, p11.CKGMGF1SHA384
	case p11.CKMSHA512:
		h, wantMGF = crypto.SHA512, p11.CKGMGF1SHA512
	default:
		return 0, wire.Errorf(wire.MechanismParamInvalid, "PSS hash %#x", hashAlg)
	}
	switch {
	case want != 0 && h != want:
		return 0, wire.Errorf(wire.MechanismParamInvalid, "PSS hash %v does not match the mechanism's %v", h, want)
	case mgf != wantMGF:
		return 0, wire.Errorf(wire.MechanismParamInvalid, "PSS MGF %d: the TPM uses MGF1 with the signature's hash", mgf)
	case sLen != uint64(h.Size()):
		return 0, wire.Errorf(wire.MechanismParamInvalid, "PSS salt length %d: the TPM uses the hash length %d", sLen, h.Size())
	}
	return h, nil
}

// maxRawDigest bounds the data of CKM_ECDSA, and what SignUpdate collects
// for any mechanism that does not hash.
const maxRawDigest = 1024

// prepareSign turns a PKCS#11 sign request into tpmcard.Sign arguments:
// the digest and the options.
func prepareSign(k tpmcard.KeyInfo, mechanism uint32, param, data []byte) ([]byte, tpmcard.SignOptions, error) {
	m, opts, err := signSetup(k, mechanism, param)
	if err != nil {
		return nil, tpmcard.SignOptions{}, err
	}
	return digestOf(m, opts, data)
}

// signSetup checks a mechanism and its parameter against the key, what
// C_SignInit checks (PKCS#11 v2.40 §5.11), and returns the options that
// signing with them takes.
func signSetup(k tpmcard.KeyInfo, mechanism uint32, param []byte) (mech, tpmcard.SignOptions, error) {
	m, err := lookupMech(k, mechanism)
	if err != nil {
		return mech{}, tpmcard.SignOptions{}, err
	}
	if !m.pss && len(param) != 0 {
		return mech{}, tpmcard.SignOptions{}, wire.Errorf(wire.MechanismParamInvalid, "mechanism %#x takes no parameter", mechanism)
	}
	opts := tpmcard.SignOptions{Hash: m.hash, PSS: m.pss}
	if m.pss {
		h, err := parsePSSParams(param, m.hash)
		if err != nil {
			return mech{}, tpmcard.SignOptions{}, err
		}
		opts.Hash = h
	}
	return m, opts, nil
}

// digestOf turns the whole data of a signature into what the TPM signs:
// the hash for the hashing mechanisms, the checked data for the raw ones.
// opts come from signSetup.
func digestOf(m mech, opts tpmcard.SignOptions, data []byte) ([]byte, tpmcard.SignOptions, error) {
	switch {
	case m.hash != 0:
		return hashData(m.hash, data), opts, nil
	case m.pss: // CKM_RSA_PKCS_PSS: the data is the digest
		if len(data) != opts.Hash.Size() {
			return nil, tpmcard.SignOptions{}, wire.Errorf(wire.DataLenRange, "%d bytes to sign, want a %d-byte %v digest", len(data), opts.Hash.Size(), opts.Hash)
		}
		return data, opts, nil
	case m.rsa: // CKM_RSA_PKCS: a DigestInfo
		h, digest, err := parseDigestInfo(data)
		if err != nil {
			return nil, tpmcard.SignOptions{}, err
		}
		opts.Hash = h
		return digest, opts, nil
	}
	// CKM_ECDSA: the data is the digest, whatever its length.
	if len(data) == 0 || len(data) > maxRawDigest {
		return nil, tpmcard.SignOptions{}, wire.Errorf(wire.DataLenRange, "%d bytes to sign with CKM_ECDSA", len(data))
	}
	return data, opts, nil
}

func hashData(h crypto.Hash, data []byte) []byte {
	switch h {
	case crypto.SHA1:
		s := sha1.Sum(data)
		return s[:]
	case crypto.SHA256:
		s := sha256.Sum256(data)
		return s[:]
	case crypto.SHA384:
		s := sha512.Sum384(data)
		return s[:]
	}
	s := sha512.Sum512(data)
	return s[:]
}

// signatureLength answers SignLength without the TPM: r||s for ECDSA, the
// modulus length for RSA.
func signatureLength(k tpmcard.KeyInfo, mechanism uint32) (int, error) {
	if _, err := lookupMech(k, mechanism); err != nil {
		return 0, err
	}
	switch p := k.Public.(type) {
	case *ecdsa.PublicKey:
		return 2 * ((p.Curve.Params().BitSize + 7) / 8), nil
	case *rsa.PublicKey:
		return p.Size(), nil
	}
	return 0, wire.Errorf(wire.KeyTypeInconsistent, "unexpected key type %T", k.Public)
}

func (c *conn) sign(m *wire.Sign) (any, error) {
	if err := c.needUser(wire.TypeSign); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if user, _ := c.s.logins.state(c, s.serial); !user {
		return nil, wire.NewError(wire.NotLoggedIn, "not logged in")
	}
	r, k, err := c.object(s, m.Object)
	if err != nil {
		return nil, err
	}
	var sk *tpmcard.SessionKey
	switch r.kind {
	case objPrivate:
	case objSessionPrivate: // sessionkeys.go
		skey, err := c.sessionKeyOf(s, m.Object, r)
		if err != nil {
			return nil, err
		}
		sk = skey.key
	default:
		return nil, wire.NewError(wire.KeyTypeInconsistent, "a public key object cannot sign")
	}
	digest, opts, err := prepareSign(k, m.Mechanism, m.Param, m.Data)
	if err != nil {
		return nil, err
	}
	var sig []byte
	err = c.s.logins.withUser(c, s.serial, func() (err error) {
		if sk != nil {
			sig, err = c.s.m.SignSessionKey(sk, digest, opts)
		} else {
			sig, err = c.s.m.Sign(s.serial, k.ID, digest, opts)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &wire.Signature{Sig: sig}, nil
}

func (c *conn) signLength(m *wire.SignLength) (any, error) {
	if err := c.needUser(wire.TypeSignLength); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	r, k, err := c.object(s, m.Object)
	if err != nil {
		return nil, err
	}
	if r.kind != objPrivate && r.kind != objSessionPrivate {
		return nil, wire.NewError(wire.KeyTypeInconsistent, "a public key object cannot sign")
	}
	n, err := signatureLength(k, m.Mechanism)
	if err != nil {
		return nil, err
	}
	return &wire.Length{N: n}, nil
}
