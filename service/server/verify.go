package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"hash"
	"math"
	"math/big"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// Verification (PKCS#11 v2.40 §5.13), in software with the card keys'
// public objects: C_VerifyInit, then C_Verify or C_VerifyUpdate …
// C_VerifyFinal, for ECDSA (CKM_ECDSA and the hashed ECDSA mechanisms),
// RSA PKCS #1 v1.5 (CKM_RSA_PKCS and the hashed ones) and PSS
// (CKM_RSA_PKCS_PSS and SHA*_RSA_PKCS_PSS). The operation is kept per
// session and ends at C_Verify or C_VerifyFinal, whatever their outcome,
// at any failed step, and with its session. It needs no login: the keys
// are public.
//
// The module does not wait for VerifyInit's reply, as for SignInit.

// verifyMechs are the mechanisms that verify: those that sign, and the
// SHA-1 ones, which the TPM does not sign with here but software verifies.
var verifyMechs = func() map[uint64]mech {
	m := map[uint64]mech{
		ckmECDSASHA1:      {hash: crypto.SHA1},
		ckmSHA1RSAPKCS:    {rsa: true, hash: crypto.SHA1},
		ckmSHA1RSAPKCSPSS: {rsa: true, hash: crypto.SHA1, pss: true},
	}
	for k, v := range signMechs {
		m[uint64(k)] = v
	}
	return m
}()

type verifyOp struct {
	pub    crypto.PublicKey
	m      mech
	pssOpt *rsa.PSSOptions // PSS: the hash and salt length of the parameter
	multi  bool            // VerifyUpdate came: only VerifyFinal ends it
	h      hash.Hash       // hashing mechanisms: the data so far
	data   []byte          // the others: the data so far, at most rawLimit bytes
}

func (c *conn) verifyInit(m *wire.VerifyInit) (any, error) {
	if err := c.needUser(wire.TypeVerifyInit); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	p := c.p11()
	op, err := c.newVerifyOp(p, s, m)
	if err != nil {
		se, _ := toStatus(err)
		p.setInitRV(s, wire.TypeVerifyInit, se)
		return nil, err
	}
	p.setInitRV(s, wire.TypeVerifyInit, nil)
	p.verifies[s] = op
	return &wire.Ack{}, nil
}

// keyHandleInvalid is CKR_KEY_HANDLE_INVALID for a handle that names no
// key of the session.
func keyHandleInvalid(msg string) *wire.StatusError {
	return &wire.StatusError{Status: wire.ObjectNotFound, TriesLeft: -1, Message: msg, RV: p11.CKRKeyHandleInvalid}
}

// newVerifyOp checks a VerifyInit in the order of §5.13: an operation in
// progress, the key (a public key object of the session's card; a private
// key is CKR_KEY_FUNCTION_NOT_PERMITTED, having no CKA_VERIFY), the
// mechanism, that it fits the key, its parameter.
func (c *conn) newVerifyOp(p *p11State, s *session, m *wire.VerifyInit) (*verifyOp, error) {
	if p.verifies[s] != nil {
		return nil, wire.NewError(wire.OperationActive, "a verification is in progress in this session")
	}
	r, k, err := c.object(s, m.Key)
	var se *wire.StatusError
	if errors.As(err, &se) && se.Status == wire.ObjectNotFound {
		return nil, keyHandleInvalid(se.Message)
	}
	if err != nil {
		return nil, err
	}
	switch r.kind {
	case objPublic, objSessionPublic:
	case objPrivate, objSessionPrivate:
		return nil, &wire.StatusError{Status: wire.KeyTypeInconsistent, TriesLeft: -1,
			Message: "a private key does not verify: use its public key object", RV: p11.CKRKeyFunctionNotPermitted}
	default:
		return nil, keyHandleInvalid("the object is not a key")
	}
	mc, ok := verifyMechs[m.Mechanism]
	if !ok || m.Mechanism > math.MaxUint32 {
		return nil, wire.Errorf(wire.MechanismInvalid, "mechanism %#x cannot verify", m.Mechanism)
	}
	if mc.rsa != k.Algorithm.IsRSA() {
		return nil, wire.Errorf(wire.KeyTypeInconsistent, "mechanism %#x does not fit a %s key", m.Mechanism, k.Algorithm)
	}
	op := &verifyOp{pub: k.Public, m: mc}
	switch {
	case mc.pss:
		h, salt, err := verifyPSSParams(m.Param, mc.hash)
		if err != nil {
			return nil, err
		}
		op.pssOpt = &rsa.PSSOptions{Hash: h, SaltLength: salt}
	case len(m.Param) != 0:
		return nil, wire.Errorf(wire.MechanismParamInvalid, "mechanism %#x takes no parameter", m.Mechanism)
	}
	if mc.hash != 0 {
		op.h = mc.hash.New()
	}
	return op, nil
}

// verifyPSSParams reads CK_RSA_PKCS_PSS_PARAMS for verification. Unlike
// signing, which the TPM does with the salt as long as the hash, any salt
// length verifies; the MGF must be MGF1 with the signature's hash (what
// crypto/rsa computes).
func verifyPSSParams(p []byte, want crypto.Hash) (crypto.Hash, int, error) {
	n := wire.ULongSize
	if len(p) != 3*n {
		return 0, 0, wire.Errorf(wire.MechanismParamInvalid, "CK_RSA_PKCS_PSS_PARAMS of %d bytes, want %d", len(p), 3*n)
	}
	hashAlg, _ := wire.ParseULong(p[:n])
	mgf, _ := wire.ParseULong(p[n : 2*n])
	sLen, _ := wire.ParseULong(p[2*n:])
	hashes := map[uint64]struct {
		h   crypto.Hash
		mgf uint64
	}{
		p11.CKMSHA1:   {crypto.SHA1, p11.CKGMGF1SHA1},
		p11.CKMSHA256: {crypto.SHA256, p11.CKGMGF1SHA256},
		p11.CKMSHA384: {crypto.SHA384, p11.CKGMGF1SHA384},
		p11.CKMSHA512: {crypto.SHA512, p11.CKGMGF1SHA512},
	}
	hm, ok := hashes[hashAlg]
	switch {
	case !ok:
		return 0, 0, wire.Errorf(wire.MechanismParamInvalid, "PSS hash %#x", hashAlg)
	case want != 0 && hm.h != want:
		return 0, 0, wire.Errorf(wire.MechanismParamInvalid, "PSS hash %v does not match the mechanism's %v", hm.h, want)
	case mgf != hm.mgf:
		return 0, 0, wire.Errorf(wire.MechanismParamInvalid, "PSS MGF %d: MGF1 with the signature's hash verifies", mgf)
	case sLen > 1<<16:
		return 0, 0, wire.Errorf(wire.MechanismParamInvalid, "PSS salt length %d", sLen)
	}
	return hm.h, int(sLen), nil
}

// rawLimit bounds the data of a mechanism that does not hash: CKM_ECDSA
// takes a digest, CKM_RSA_PKCS at most k-11 bytes, CKM_RSA_PKCS_PSS the
// hash.
func (op *verifyOp) rawLimit() int {
	if rk, ok := op.pub.(*rsa.PublicKey); ok && !op.m.pss {
		return rk.Size() - 11
	}
	return maxRawDigest
}

// continueVerify returns the session's verification for a request of
// type t that continues it.
func (c *conn) continueVerify(t wire.Type, id uint32, afterInit bool) (*session, *p11State, *verifyOp, error) {
	s, p, err := c.opSession(t, wire.TypeVerifyInit, id, afterInit)
	if err != nil {
		return nil, nil, nil, err
	}
	op := p.verifies[s]
	if op == nil {
		return nil, nil, nil, wire.NewError(wire.OperationNotInitialized, "no verification in progress in this session")
	}
	return s, p, op, nil
}

func (c *conn) verifyData(m *wire.VerifyData) (any, error) {
	s, p, op, err := c.continueVerify(wire.TypeVerifyData, m.Session, m.AfterInit)
	if err != nil {
		return nil, err
	}
	if op.multi {
		delete(p.verifies, s)
		return nil, wire.NewError(wire.OperationActive, "C_VerifyUpdate began this verification: C_VerifyFinal ends it")
	}
	if m.Parts {
		// C_Verify's data comes next as parts: it may, and the
		// operation stays.
		return &wire.Ack{}, nil
	}
	delete(p.verifies, s)
	if op.h != nil {
		op.h.Write(m.Data)
		return &wire.Ack{}, op.check(op.h.Sum(nil), m.Signature)
	}
	if len(m.Data) > op.rawLimit() {
		return nil, wire.Errorf(wire.DataLenRange, "%d bytes of data, at most %d verify with this mechanism", len(m.Data), op.rawLimit())
	}
	return &wire.Ack{}, op.check(m.Data, m.Signature)
}

func (c *conn) verifyUpdate(m *wire.VerifyUpdate) (any, error) {
	s, p, op, err := c.continueVerify(wire.TypeVerifyUpdate, m.Session, m.AfterInit)
	if err != nil {
		return nil, err
	}
	op.multi = true
	if op.h != nil {
		op.h.Write(m.Part)
		return &wire.Ack{}, nil
	}
	if len(op.data)+len(m.Part) > op.rawLimit() {
		delete(p.verifies, s)
		return nil, wire.Errorf(wire.DataLenRange, "more than %d bytes of data for this mechanism", op.rawLimit())
	}
	op.data = append(op.data, m.Part...)
	return &wire.Ack{}, nil
}

func (c *conn) verifyFinal(m *wire.VerifyFinal) (any, error) {
	s, p, op, err := c.continueVerify(wire.TypeVerifyFinal, m.Session, m.AfterInit)
	if err != nil {
		return nil, err
	}
	delete(p.verifies, s)
	if op.h != nil {
		return &wire.Ack{}, op.check(op.h.Sum(nil), m.Signature)
	}
	return &wire.Ack{}, op.check(op.data, m.Signature)
}

// check verifies sig over what the mechanism signs: the hash for the
// hashing mechanisms, the data itself for the others. A nil error means
// the signature is valid; a signature of the wrong length is
// CKR_SIGNATURE_LEN_RANGE, any other invalid one CKR_SIGNATURE_INVALID,
// and data of the wrong length for a mechanism that does not hash
// CKR_DATA_LEN_RANGE.
func (op *verifyOp) check(data, sig []byte) error {
	switch pub := op.pub.(type) {
	case *ecdsa.PublicKey:
		n := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return sigLenRange(len(sig), 2*n)
		}
		if len(data) == 0 {
			return wire.NewError(wire.DataLenRange, "no digest to verify")
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		if !ecdsa.Verify(pub, data, r, s) {
			return sigInvalid()
		}
		return nil
	case *rsa.PublicKey:
		if len(sig) != pub.Size() {
			return sigLenRange(len(sig), pub.Size())
		}
		if op.m.pss {
			h := op.pssOpt.Hash
			if len(data) != h.Size() {
				return wire.Errorf(wire.DataLenRange, "%d bytes to verify, want a %d-byte %v digest", len(data), h.Size(), h)
			}
			err := rsa.VerifyPSS(pub, h, data, sig, op.pssOpt)
			if err != nil || op.pssOpt.SaltLength == 0 && pssSaltLen(pub, sig, h) != 0 {
				return sigInvalid()
			}
			return nil
		}
		var err error
		if op.m.hash != 0 {
			err = rsa.VerifyPKCS1v15(pub, op.m.hash, data, sig)
		} else {
			// CKM_RSA_PKCS: the data is what the padding holds (a
			// DigestInfo, for a signature the card made).
			err = rsa.VerifyPKCS1v15(pub, 0, data, sig)
		}
		if err != nil {
			return sigInvalid()
		}
		return nil
	}
	return wire.NewError(wire.KeyTypeInconsistent, "not a key that verifies")
}

// pssSaltLen recovers the salt length of a PSS signature that verified
// (RFC 8017 §9.1.2): crypto/rsa reads a SaltLength of 0 as "any length",
// where CK_RSA_PKCS_PSS_PARAMS' sLen 0 means no salt. -1 if it cannot.
func pssSaltLen(pub *rsa.PublicKey, sig []byte, h crypto.Hash) int {
	em := new(big.Int).Exp(new(big.Int).SetBytes(sig), big.NewInt(int64(pub.E)), pub.N)
	emBits := pub.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	b := em.FillBytes(make([]byte, emLen))
	hLen := h.Size()
	if emLen < hLen+2 || b[emLen-1] != 0xbc {
		return -1
	}
	db, mhash := b[:emLen-hLen-1], b[emLen-hLen-1:emLen-1]
	// DB = maskedDB XOR MGF1(H, len(DB)).
	var counter [4]byte
	for done := 0; done < len(db); {
		d := h.New()
		d.Write(mhash)
		d.Write(counter[:])
		for _, x := range d.Sum(nil) {
			if done == len(db) {
				break
			}
			db[done] ^= x
			done++
		}
		for i := 3; i >= 0; i-- {
			if counter[i]++; counter[i] != 0 {
				break
			}
		}
	}
	db[0] &= 0xff >> (8*emLen - emBits)
	for i, x := range db {
		switch x {
		case 0:
			continue
		case 1:
			return len(db) - i - 1
		}
		return -1
	}
	return -1
}

func sigLenRange(got, want int) error {
	return &wire.StatusError{Status: wire.DataLenRange, TriesLeft: -1,
		Message: fmt.Sprintf("a signature of %d bytes, the key's are %d", got, want), RV: p11.CKRSignatureLenRange}
}

func sigInvalid() error {
	return &wire.StatusError{Status: wire.DataInvalid, TriesLeft: -1, Message: "the signature is not valid", RV: p11.CKRSignatureInvalid}
}
