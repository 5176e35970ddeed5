package main

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"hash"

	"github.com/tpmcard/tpmcard/service/p11"
)

// ---------------------------------------------------------------------------
// Signing (§5.11).

// digestMech says how a hashing mechanism signs a digest made here, so
// that multi-part data need not travel: the raw mechanism and, for
// PKCS #1 v1.5, the DigestInfo prefix (RFC 8017 §9.2 note 1).
type digestMech struct {
	hash   crypto.Hash
	raw    uint32
	prefix []byte
}

var digestMechs = map[uint32]digestMech{
	p11.CKMECDSASHA256:      {crypto.SHA256, p11.CKMECDSA, nil},
	p11.CKMECDSASHA384:      {crypto.SHA384, p11.CKMECDSA, nil},
	p11.CKMECDSASHA512:      {crypto.SHA512, p11.CKMECDSA, nil},
	p11.CKMSHA256RSAPKCS:    {crypto.SHA256, p11.CKMRSAPKCS, []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}},
	p11.CKMSHA384RSAPKCS:    {crypto.SHA384, p11.CKMRSAPKCS, []byte{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}},
	p11.CKMSHA512RSAPKCS:    {crypto.SHA512, p11.CKMRSAPKCS, []byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}},
	p11.CKMSHA256RSAPKCSPSS: {crypto.SHA256, p11.CKMRSAPKCSPSS, nil},
	p11.CKMSHA384RSAPKCSPSS: {crypto.SHA384, p11.CKMRSAPKCSPSS, nil},
	p11.CKMSHA512RSAPKCSPSS: {crypto.SHA512, p11.CKMRSAPKCSPSS, nil},
}

func newHash(h crypto.Hash) hash.Hash {
	switch h {
	case crypto.SHA256:
		return sha256.New()
	case crypto.SHA384:
		return sha512.New384()
	}
	return sha512.New()
}

// SignInit is C_SignInit. It asks the service for the signature length,
// which checks the key, the mechanism and their fit without the TPM, and
// keeps the length for length queries. Lengths are cached, so that a
// signature costs one request; a key deleted meanwhile fails at C_Sign.
func (m *module) SignInit(h uint64, mech uint64, param []byte, key uint64) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.session(h)
	if r != ckrOK {
		return r
	}
	if s.sign != nil {
		return ckrOperationActive
	}
	if mech > 0xffffffff {
		return ckrMechanismInvalid
	}
	lk := lengthKey{key, uint32(mech)}
	n, ok := m.lengths[lk]
	if !ok {
		var err error
		if n, err = b.SignLength(s.wireID, key, uint32(mech)); err != nil {
			return keyRV(m.result(err, ckrDeviceRemoved))
		}
		m.lengths[lk] = n
	}
	s.sign = &signOp{key: key, mech: uint32(mech), param: bytes.Clone(param), length: n}
	return ckrOK
}

// keyRV: an object handle that names no key is CKR_KEY_HANDLE_INVALID in
// the signing functions (§5.11).
func keyRV(r rv) rv {
	if r == ckrObjectHandleInvalid {
		return ckrKeyHandleInvalid
	}
	return r
}

// signSession returns a session with its sign operation.
func (m *module) signSession(h uint64) (*session, Backend, rv) {
	s, b, r := m.session(h)
	if r != ckrOK {
		return nil, nil, r
	}
	if s.sign == nil {
		return nil, nil, ckrOperationNotInitialized
	}
	return s, b, ckrOK
}

// Sign is C_Sign. out nil asks for the length, which the module knows; an
// out too short gets CKR_BUFFER_TOO_SMALL. Both leave the operation active;
// anything else ends it.
func (m *module) Sign(h uint64, data, out []byte) (int, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.signSession(h)
	if r != ckrOK {
		return 0, r
	}
	op := s.sign
	if op.multi {
		s.sign = nil
		return 0, ckrOperationActive // C_Sign after C_SignUpdate
	}
	if out == nil {
		return op.length, ckrOK
	}
	if len(out) < op.length {
		return op.length, ckrBufferTooSmall
	}
	s.sign = nil
	mech := op.mech
	if dm, ok := digestMechs[mech]; ok && len(data) > maxSignData {
		// Too much to send: hash here and sign the digest.
		hh := newHash(dm.hash)
		hh.Write(data)
		mech, data = dm.raw, append(bytes.Clone(dm.prefix), hh.Sum(nil)...)
	} else if len(data) > maxSignData {
		return 0, ckrDataLenRange
	}
	return m.sign(b, s.wireID, op, mech, data, out)
}

// sign asks the service for a signature, without mu while the TPM signs
// (see unlocked), and copies it to out. A key that is gone leaves the
// length cache.
func (m *module) sign(b Backend, session uint32, op *signOp, mech uint32, data, out []byte) (int, rv) {
	var sig []byte
	r := m.unlocked(ckrDeviceRemoved, func() (err error) {
		sig, err = b.Sign(session, op.key, mech, op.param, data)
		return err
	})
	if r != ckrOK {
		r = keyRV(r)
		if r == ckrKeyHandleInvalid {
			delete(m.lengths, lengthKey{op.key, op.mech})
		}
		return 0, r
	}
	if len(sig) > len(out) {
		return len(sig), ckrFunctionFailed
	}
	return copy(out, sig), ckrOK
}

// SignUpdate is C_SignUpdate: a hashing mechanism hashes here, another
// collects the data for C_SignFinal.
func (m *module) SignUpdate(h uint64, part []byte) rv {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, _, r := m.signSession(h)
	if r != ckrOK {
		return r
	}
	op := s.sign
	op.multi = true
	if dm, ok := digestMechs[op.mech]; ok {
		if op.h == nil {
			op.h = newHash(dm.hash)
		}
		op.h.Write(part)
		return ckrOK
	}
	if len(op.data)+len(part) > maxSignData {
		s.sign = nil
		return ckrDataLenRange
	}
	op.data = append(op.data, part...)
	return ckrOK
}

// SignFinal is C_SignFinal, with the length conventions of Sign.
func (m *module) SignFinal(h uint64, out []byte) (int, rv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, b, r := m.signSession(h)
	if r != ckrOK {
		return 0, r
	}
	op := s.sign
	if out == nil {
		return op.length, ckrOK
	}
	if len(out) < op.length {
		return op.length, ckrBufferTooSmall
	}
	s.sign = nil
	mech, data := op.mech, op.data
	if dm, ok := digestMechs[op.mech]; ok {
		hh := op.h
		if hh == nil {
			hh = newHash(dm.hash)
		}
		mech = dm.raw
		data = append(bytes.Clone(dm.prefix), hh.Sum(nil)...)
	}
	return m.sign(b, s.wireID, op, mech, data, out)
}
