package server

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// Session keys (PKCS#11 v2.40 §4.4, CKA_TOKEN false): key pairs
// C_GenerateKeyPair makes in the TPM for the application's session. They
// sign as the card's keys do, after the user's login and through the same
// PIN (tpmcard.SessionKey), and nothing of them reaches the state
// directory. They are the application's alone, seen by all its sessions
// on the card, and end with the session that made them: C_CloseSession,
// C_CloseAllSessions, the last C_Finalize or a closed connection flush
// them from the TPM. Each half is an object of its own, as with token
// keys.

const (
	objSessionPublic  objKind = 6 // a session key's public half; objRef.id is its number
	objSessionPrivate objKind = 7 // its private half
)

// maxSessionKeys bounds the session key pairs one application holds at a
// time. A session key takes a TPM object slot only while it signs (it is
// evicted and reloaded like any key), so no number of them fills the
// TPM; the bound keeps an application from making the TPM generate keys
// without end, and its memory in the service small.
const maxSessionKeys = 16

func isSessionKey(k objKind) bool { return k == objSessionPublic || k == objSessionPrivate }

// sessionKeyHalf is the key object kind a session key's object shows as.
func sessionKeyHalf(k objKind) objKind {
	if k == objSessionPrivate {
		return objPrivate
	}
	return objPublic
}

// sessionKey is a session key pair and what is left of it.
type sessionKey struct {
	owner *session
	key   *tpmcard.SessionKey // nil once its private key is destroyed
	info  tpmcard.KeyInfo
	pub   bool // its public key object is still there
}

// sessionKeys are a connection's session keys, by objRef.id.
type sessionKeys struct {
	byID map[string]*sessionKey
	next uint64
}

func (k *sessionKeys) init() { k.byID = map[string]*sessionKey{} }

// sessionKeys returns the connection's session keys after ending those of
// sessions the service closed since (checkSession).
func (c *conn) sessionKeys() map[string]*sessionKey {
	for id, sk := range c.objects.keys.byID {
		if !c.hasSession(sk.owner) {
			c.endSessionKey(id, sk)
		}
	}
	return c.objects.keys.byID
}

// endSessionKey flushes a session key from the TPM and forgets both its
// objects.
func (c *conn) endSessionKey(id string, sk *sessionKey) {
	if sk.key != nil {
		c.s.m.DropSessionKey(sk.key)
		sk.key = nil
	}
	for _, kind := range []objKind{objSessionPublic, objSessionPrivate} {
		if h, ok := c.objects.byRef[objRef{serial: sk.owner.serial, id: id, kind: kind}]; ok {
			c.objects.forget(h)
		}
	}
	delete(c.objects.keys.byID, id)
}

// endSession ends what a session closing takes with it: its signature in
// progress (and any PIN proof it holds) and its session keys.
func (c *conn) endSession(s *session) {
	s.endSign()
	for id, sk := range c.objects.keys.byID {
		if sk.owner == s {
			c.endSessionKey(id, sk)
		}
	}
	c.sessionKeys() // and those of sessions closed without this call
}

// endApplication ends every session's signature and session keys: the
// connection closed.
func (c *conn) endApplication() {
	for _, s := range c.sessions {
		s.endSign()
	}
	for id, sk := range c.objects.keys.byID {
		c.endSessionKey(id, sk)
	}
}

// sessionKeyOf resolves a session key object that a session of the
// connection names: a key of the session's card whose object still
// exists, and for the private half, a logged-in user.
func (c *conn) sessionKeyOf(s *session, h uint64, r objRef) (*sessionKey, error) {
	sk := c.sessionKeys()[r.id]
	if sk == nil || (r.kind == objSessionPrivate && sk.key == nil) || (r.kind == objSessionPublic && !sk.pub) {
		c.objects.forget(h)
		return nil, wire.Errorf(wire.ObjectNotFound, "no object %d", h)
	}
	if r.kind == objSessionPrivate {
		if user, _ := c.s.logins.state(c, s.serial); !user {
			return nil, wire.Errorf(wire.ObjectNotFound, "no object %d", h)
		}
	}
	return sk, nil
}

// findSessionKeys appends the handles of the connection's session key
// objects on the session's card that match the template.
func (c *conn) findSessionKeys(s *session, template []wire.Attribute, hs []uint64) []uint64 {
	user, _ := c.s.logins.state(c, s.serial)
	for id, sk := range c.sessionKeys() {
		if sk.owner.serial != s.serial {
			continue
		}
		if user && sk.key != nil && keyMatches(objPrivate, sk.info, false, template) {
			hs = append(hs, c.objects.handle(objRef{serial: s.serial, id: id, kind: objSessionPrivate}))
		}
		if sk.pub && keyMatches(objPublic, sk.info, false, template) {
			hs = append(hs, c.objects.handle(objRef{serial: s.serial, id: id, kind: objSessionPublic}))
		}
	}
	return hs
}

// generateSessionKey makes a session key pair for the session s. Anyone
// who may use the card may: nothing is written to it.
func (c *conn) generateSessionKey(ctx context.Context, s *session, opts tpmcard.KeyOptions) (*wire.GeneratedKeyPair, error) {
	if n := len(c.sessionKeys()); n >= maxSessionKeys {
		return nil, &wire.StatusError{Status: wire.BadRequest, TriesLeft: -1, RV: p11.CKRDeviceMemory,
			Message: fmt.Sprintf("an application holds at most %d session key pairs: destroy one, or close the session that made it", maxSessionKeys)}
	}
	k, err := c.s.m.GenerateSessionKey(ctx, s.serial, opts, c.keygenProgress(opts.Algorithm))
	if err != nil {
		c.log.Warn().Str("card", s.serial).Str("algorithm", string(opts.Algorithm)).Err(err).Msg("session key generation failed")
		return nil, err
	}
	c.objects.keys.next++
	id := strconv.FormatUint(c.objects.keys.next, 10)
	sk := &sessionKey{owner: s, key: k, info: k.Info(), pub: true}
	c.objects.keys.byID[id] = sk
	c.log.Info().Str("card", s.serial).Str("algorithm", string(opts.Algorithm)).Hex("key_id", sk.info.ID).
		Str("pin_use", opts.PINUse.String()).Msg("session key generated")
	return &wire.GeneratedKeyPair{
		Public:  c.objects.handle(objRef{serial: s.serial, id: id, kind: objSessionPublic}),
		Private: c.objects.handle(objRef{serial: s.serial, id: id, kind: objSessionPrivate}),
	}, nil
}

// destroySessionKeyObject destroys one half of a session key, in any
// session of the application, read-only ones too (§5.7 allows a session
// object to be destroyed in a read-only session): the private half leaves
// the TPM at once, the public one stays until it is destroyed too or its
// session ends.
func (c *conn) destroySessionKeyObject(m *wire.DestroyObject) (any, error) {
	if err := c.needUser(wire.TypeDestroyObject); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	r, ok := c.objects.byHandle[m.Object]
	if !ok || r.serial != s.serial {
		return nil, wire.Errorf(wire.ObjectNotFound, "no object %d", m.Object)
	}
	sk, err := c.sessionKeyOf(s, m.Object, r)
	if err != nil {
		return nil, err
	}
	if r.kind == objSessionPrivate {
		c.s.m.DropSessionKey(sk.key)
		sk.key = nil
	} else {
		sk.pub = false
	}
	c.objects.forget(m.Object)
	if sk.key == nil && !sk.pub {
		delete(c.objects.keys.byID, r.id)
	}
	return &wire.Ack{}, nil
}

// keygenProgress reports a key generation's progress to the client.
func (c *conn) keygenProgress(alg tpmcard.Algorithm) func(tpmcard.Progress) {
	expect := expectedKeygen(alg)
	return func(p tpmcard.Progress) {
		pct := min(95, int(100*p.Elapsed/expect))
		c.progress(wire.Progress{Percent: pct, Message: fmt.Sprintf("generating %s key (%s)", alg, p.Elapsed.Round(100*time.Millisecond))})
	}
}
