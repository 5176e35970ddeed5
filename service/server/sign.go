package server

import (
	"fmt"
	"hash"
	"math"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// A signature in steps (C_SignInit, then C_Sign or C_SignUpdate …
// C_SignFinal; PKCS#11 v2.40 §5.11) is kept per session. SignInit checks
// the key, mechanism and parameter; the login is checked by SignInit and
// again by every later step. The operation ends when a signature is made
// or fails, when a step fails, at SignData after SignUpdate, and with its
// session, a logout or a new login of the connection on the card. A length
// query or a buffer too short (§5.2) leaves it as it was.
//
// The module does not wait for SignInit's reply. A failed SignInit is
// remembered in its session, and the next step sent with AfterInit (the
// module has not read that reply yet) answers with its CK_RV instead of
// touching the session's operation.
//
// A key that needs the PIN for every signature (CKA_ALWAYS_AUTHENTICATE,
// PKCS#11 v2.40 §4.9) signs only after C_Login(CKU_CONTEXT_SPECIFIC)
// between C_SignInit and the step that signs (loginContextSpecific); that
// PIN proof serves the one signature and is wiped when the operation ends,
// whichever way.
type signOp struct {
	keyID  []byte
	sk     *tpmcard.SessionKey // a session key's, else the card's key keyID
	always bool                // the key needs a PIN proof per signature
	pin    *tpmcard.PINProof   // that proof, once given
	m      mech
	opts   tpmcard.SignOptions
	length int       // of the signature (signatureLength)
	multi  bool      // SignUpdate came: only SignFinal ends the signature
	h      hash.Hash // hashing mechanisms: the data so far
	data   []byte    // raw mechanisms: the data so far, at most maxRawDigest bytes
}

func (c *conn) signInit(m *wire.SignInit) (any, error) {
	if err := c.needUser(wire.TypeSignInit); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	op, err := c.newSignOp(s, m)
	if err != nil {
		se, _ := toStatus(err)
		s.signInitRV = withRV(wire.TypeSignInit, se)
		return nil, err
	}
	s.signInitRV = nil
	s.sign = op
	return &wire.Ack{}, nil
}

// newSignOp checks a SignInit in the order of Sign's checks: an operation
// in progress, the login, the key, the mechanism for that key, its
// parameter.
func (c *conn) newSignOp(s *session, m *wire.SignInit) (*signOp, error) {
	if s.sign != nil {
		return nil, wire.NewError(wire.OperationActive, "a signature is in progress in this session")
	}
	if user, _ := c.s.logins.state(c, s.serial); !user {
		return nil, wire.NewError(wire.NotLoggedIn, "not logged in")
	}
	r, k, err := c.object(s, m.Key)
	if err != nil {
		return nil, err
	}
	var sk *tpmcard.SessionKey
	switch r.kind {
	case objPrivate:
	case objSessionPrivate:
		skey, err := c.sessionKeyOf(s, m.Key, r)
		if err != nil {
			return nil, err
		}
		sk = skey.key
	default:
		// §5.11: CKR_KEY_HANDLE_INVALID (ckrv.go) for an object that
		// is not a key that signs.
		return nil, wire.Errorf(wire.ObjectNotFound, "object %d is not a private key", m.Key)
	}
	if m.Mechanism > math.MaxUint32 {
		return nil, wire.Errorf(wire.MechanismInvalid, "mechanism %#x cannot sign", m.Mechanism)
	}
	mech, opts, err := signSetup(k, uint32(m.Mechanism), m.Param)
	if err != nil {
		return nil, err
	}
	n, err := signatureLength(k, uint32(m.Mechanism))
	if err != nil {
		return nil, err
	}
	op := &signOp{keyID: k.ID, sk: sk, always: k.PINUse == tpmcard.PINAlways, m: mech, opts: opts, length: n}
	if mech.hash != 0 {
		op.h = mech.hash.New()
	}
	return op, nil
}

// continueSign returns the session's operation for a request of type t
// that continues it. A SignInit failure the module has not seen yet is
// its answer when afterInit is set; either way it is forgotten. An
// operation whose login has ended ends too.
func (c *conn) continueSign(t wire.Type, id uint32, afterInit bool) (*session, *signOp, error) {
	if err := c.needUser(t); err != nil {
		return nil, nil, err
	}
	s, err := c.session(id)
	if err != nil {
		return nil, nil, err
	}
	failed := s.signInitRV
	s.signInitRV = nil
	if afterInit && failed != nil {
		return nil, nil, failed
	}
	op := s.sign
	if op == nil {
		return nil, nil, wire.NewError(wire.OperationNotInitialized, "no signature in progress in this session")
	}
	if user, _ := c.s.logins.state(c, s.serial); !user {
		s.endSign()
		return nil, nil, wire.NewError(wire.NotLoggedIn, "not logged in")
	}
	return s, op, nil
}

func (c *conn) signData(m *wire.SignData) (any, error) {
	s, op, err := c.continueSign(wire.TypeSignData, m.Session, m.AfterInit)
	if err != nil {
		return nil, err
	}
	if op.multi {
		s.endSign()
		return nil, wire.NewError(wire.OperationActive, "C_SignUpdate began this signature: C_SignFinal ends it")
	}
	if r := op.lengthOnly(m.Len, m.Length); r != nil {
		return r, nil
	}
	s.sign = nil // finishSign ends it
	digest, opts, err := digestOf(op.m, op.opts, m.Data)
	if err != nil {
		op.end()
		return nil, err
	}
	return c.finishSign(s, op, digest, opts)
}

func (c *conn) signUpdate(m *wire.SignUpdate) (any, error) {
	s, op, err := c.continueSign(wire.TypeSignUpdate, m.Session, m.AfterInit)
	if err != nil {
		return nil, err
	}
	op.multi = true
	if op.h != nil {
		op.h.Write(m.Part)
		return &wire.Ack{}, nil
	}
	if len(op.data)+len(m.Part) > maxRawDigest {
		s.endSign()
		return nil, wire.Errorf(wire.DataLenRange, "more than %d bytes to sign without hashing", maxRawDigest)
	}
	op.data = append(op.data, m.Part...)
	return &wire.Ack{}, nil
}

func (c *conn) signFinal(m *wire.SignFinal) (any, error) {
	s, op, err := c.continueSign(wire.TypeSignFinal, m.Session, m.AfterInit)
	if err != nil {
		return nil, err
	}
	if r := op.lengthOnly(m.Len, m.Length); r != nil {
		return r, nil
	}
	s.sign = nil // finishSign ends it
	var digest []byte
	opts := op.opts
	if op.h != nil {
		digest = op.h.Sum(nil)
	} else {
		digest, opts, err = digestOf(op.m, op.opts, op.data)
		if err != nil {
			op.end()
			return nil, err
		}
	}
	return c.finishSign(s, op, digest, opts)
}

// lengthOnly answers a step that only asks the signature's length, or
// whose buffer is too short for it (PKCS#11 v2.40 §5.2), and nil for one
// that signs.
func (op *signOp) lengthOnly(bufLen uint64, length bool) *wire.Signed {
	n := uint64(op.length)
	switch {
	case length:
		return &wire.Signed{Len: n}
	case bufLen < n:
		return &wire.Signed{RV: p11.CKRBufferTooSmall, Len: n}
	}
	return nil
}

// finishSign signs digest as Sign does, once the operation has ended.
func (c *conn) finishSign(s *session, op *signOp, digest []byte, opts tpmcard.SignOptions) (any, error) {
	defer op.end()
	if op.always && op.pin == nil {
		return nil, wire.NewError(wire.NotLoggedIn, "the key needs the PIN for every signature: C_Login with CKU_CONTEXT_SPECIFIC after C_SignInit")
	}
	opts.PIN, op.pin = op.pin, nil // the Manager uses it up
	var sig []byte
	err := c.s.logins.withUser(c, s.serial, func() (err error) {
		if op.sk != nil {
			sig, err = c.s.m.SignSessionKey(op.sk, digest, opts)
		} else {
			sig, err = c.s.m.Sign(s.serial, op.keyID, digest, opts)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(sig) > op.length {
		return nil, fmt.Errorf("a %d-byte signature, %d announced", len(sig), op.length)
	}
	return &wire.Signed{Len: uint64(len(sig)), Signature: sig}, nil
}

// endSigns ends the signatures of the connection's sessions on a card:
// its login ended or began anew.
func (c *conn) endSigns(serial string) {
	for _, s := range c.sessions {
		if s.serial == serial {
			s.endSign()
		}
	}
}

// endSign ends the session's signature in progress, if any.
func (s *session) endSign() {
	if s.sign != nil {
		s.sign.end()
		s.sign = nil
	}
}

// end wipes what the operation holds of a PIN.
func (op *signOp) end() {
	op.pin.Wipe()
	op.pin = nil
}

func (c *conn) seedRandom(m *wire.SeedRandom) (any, error) {
	if err := c.needUser(wire.TypeSeedRandom); err != nil {
		return nil, err
	}
	if _, err := c.session(m.Session); err != nil {
		return nil, err
	}
	// CKR_RANDOM_SEED_NOT_SUPPORTED (ckrv.go).
	return nil, wire.NewError(wire.Unsupported, "the TPM's random number generator takes no seed")
}
