package server

import (
	"crypto"
	"hash"
	"math"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// Message digesting (PKCS#11 v2.40 §5.10), in software: C_DigestInit,
// then C_Digest or C_DigestUpdate/C_DigestKey … C_DigestFinal. The
// operation is kept per session, apart from a signature or a verification
// in the same session. It ends when a digest is returned, when a step
// fails, at DigestData after DigestUpdate, and with its session; a length
// query or a buffer too short (§5.2) leaves it as it was. It needs no
// login.
//
// The module does not wait for DigestInit's reply, as for SignInit
// (sign.go): a failed DigestInit answers the next step sent with
// AfterInit.

// digestMechs are the digest mechanisms and their hashes.
var digestMechs = map[uint64]crypto.Hash{
	p11.CKMSHA1:   crypto.SHA1,
	p11.CKMSHA256: crypto.SHA256,
	p11.CKMSHA384: crypto.SHA384,
	p11.CKMSHA512: crypto.SHA512,
}

type digestOp struct {
	h     hash.Hash
	multi bool // DigestUpdate or DigestKey came: only DigestFinal ends it
}

func (c *conn) digestInit(m *wire.DigestInit) (any, error) {
	if err := c.needUser(wire.TypeDigestInit); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	p := c.p11()
	op, err := newDigestOp(p, s, m)
	if err != nil {
		se, _ := toStatus(err)
		p.setInitRV(s, wire.TypeDigestInit, se)
		return nil, err
	}
	p.setInitRV(s, wire.TypeDigestInit, nil)
	p.digests[s] = op
	return &wire.Ack{}, nil
}

// newDigestOp checks a DigestInit: an operation in progress, the
// mechanism, its (absent) parameter.
func newDigestOp(p *p11State, s *session, m *wire.DigestInit) (*digestOp, error) {
	if p.digests[s] != nil {
		return nil, wire.NewError(wire.OperationActive, "a digest is in progress in this session")
	}
	h, ok := digestMechs[m.Mechanism]
	if !ok || m.Mechanism > math.MaxUint32 {
		return nil, wire.Errorf(wire.MechanismInvalid, "mechanism %#x does not digest", m.Mechanism)
	}
	if len(m.Param) != 0 {
		return nil, wire.Errorf(wire.MechanismParamInvalid, "mechanism %#x takes no parameter", m.Mechanism)
	}
	return &digestOp{h: h.New()}, nil
}

// continueDigest returns the session's digest for a request of type t
// that continues it.
func (c *conn) continueDigest(t wire.Type, id uint32, afterInit bool) (*session, *p11State, *digestOp, error) {
	s, p, err := c.opSession(t, wire.TypeDigestInit, id, afterInit)
	if err != nil {
		return nil, nil, nil, err
	}
	op := p.digests[s]
	if op == nil {
		return nil, nil, nil, wire.NewError(wire.OperationNotInitialized, "no digest in progress in this session")
	}
	return s, p, op, nil
}

func (c *conn) digestData(m *wire.DigestData) (any, error) {
	s, p, op, err := c.continueDigest(wire.TypeDigestData, m.Session, m.AfterInit)
	if err != nil {
		return nil, err
	}
	if op.multi {
		delete(p.digests, s)
		return nil, wire.NewError(wire.OperationActive, "C_DigestUpdate began this digest: C_DigestFinal ends it")
	}
	if r := lengthReply(op.h.Size(), m.Len, m.Length); r != nil {
		return r, nil
	}
	delete(p.digests, s)
	op.h.Write(m.Data)
	d := op.h.Sum(nil)
	return &wire.Digested{Len: uint64(len(d)), Digest: d}, nil
}

func (c *conn) digestUpdate(m *wire.DigestUpdate) (any, error) {
	_, _, op, err := c.continueDigest(wire.TypeDigestUpdate, m.Session, m.AfterInit)
	if err != nil {
		return nil, err
	}
	op.multi = true
	op.h.Write(m.Part)
	return &wire.Ack{}, nil
}

// digestKey is C_DigestKey (§5.10): it digests the value of a secret key.
// A card holds no secret key, and the private keys' values never leave
// the TPM: every key is CKR_KEY_INDIGESTIBLE, any other object
// CKR_KEY_HANDLE_INVALID. Either ends the digest.
func (c *conn) digestKey(m *wire.DigestKey) (any, error) {
	s, p, _, err := c.continueDigest(wire.TypeDigestKey, m.Session, m.AfterInit)
	if err != nil {
		return nil, err
	}
	delete(p.digests, s)
	r, _, err := c.object(s, m.Key)
	if err != nil {
		se, _ := toStatus(err)
		if se.Status == wire.ObjectNotFound {
			return nil, &wire.StatusError{Status: se.Status, TriesLeft: -1, Message: se.Message, RV: p11.CKRKeyHandleInvalid}
		}
		return nil, err
	}
	if r.kind != objPublic && r.kind != objPrivate {
		return nil, &wire.StatusError{Status: wire.ObjectNotFound, TriesLeft: -1, Message: "the object is not a key", RV: p11.CKRKeyHandleInvalid}
	}
	return nil, &wire.StatusError{Status: wire.KeyTypeInconsistent, TriesLeft: -1,
		Message: "a card key's value cannot be digested: it has none that leaves the TPM", RV: ckrKeyIndigestible}
}

func (c *conn) digestFinal(m *wire.DigestFinal) (any, error) {
	s, p, op, err := c.continueDigest(wire.TypeDigestFinal, m.Session, m.AfterInit)
	if err != nil {
		return nil, err
	}
	if r := lengthReply(op.h.Size(), m.Len, m.Length); r != nil {
		return r, nil
	}
	delete(p.digests, s)
	d := op.h.Sum(nil)
	return &wire.Digested{Len: uint64(len(d)), Digest: d}, nil
}
