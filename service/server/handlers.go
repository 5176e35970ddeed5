package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

func sprint(msg any) string { return fmt.Sprintf("%+v", msg) }

// dispatch runs one request. A nil reply with a nil error means the
// request type is not implemented: the caller answers UnsupportedReply.
func (c *conn) dispatch(ctx context.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case *wire.Hello:
		return nil, wire.NewError(wire.BadRequest, "Hello was already sent")
	case *wire.ListCards:
		return c.listCards()
	case *wire.Mechanisms:
		return c.mechanisms(m)
	case *wire.GetSlotList:
		return c.getSlotList(m) // slots.go
	case *wire.GetSlotInfo:
		return c.getSlotInfo(m)
	case *wire.GetTokenInfo:
		return c.getTokenInfo(m)
	case *wire.OpenSession:
		return c.openSession(m)
	case *wire.CloseSession:
		return c.closeSession(m)
	case *wire.CloseAllSessions:
		return c.closeAllSessions(m)
	case *wire.SessionInfo:
		return c.sessionInfo(m)
	case *wire.Login:
		defer m.PIN.Wipe()
		return c.login(m)
	case *wire.Logout:
		return c.logout(m)
	case *wire.InitPIN:
		defer m.NewPIN.Wipe()
		return c.initPIN(m)
	case *wire.SetPIN:
		defer m.OldPIN.Wipe()
		defer m.NewPIN.Wipe()
		return c.setPIN(m)
	case *wire.Unblock:
		defer m.PUK.Wipe()
		defer m.NewPIN.Wipe()
		return c.unblock(m)
	case *wire.FindObjects:
		return c.findObjects(m)
	case *wire.GetAttributes:
		return c.getAttributes(m)
	case *wire.FindObjectsInit:
		return c.findObjectsInit(m) // objects.go
	case *wire.FindObjectsNext:
		return c.findObjectsNext(m)
	case *wire.FindObjectsFinal:
		return c.findObjectsFinal(m)
	case *wire.GetAttributeValue:
		return c.getAttributeValue(m)
	case *wire.GetObjectSize:
		return c.getObjectSize(m)
	case *wire.Sign:
		return c.sign(m)
	case *wire.SignLength:
		return c.signLength(m)
	case *wire.SignInit:
		return c.signInit(m) // sign.go
	case *wire.SignData:
		return c.signData(m)
	case *wire.SignUpdate:
		return c.signUpdate(m)
	case *wire.SignFinal:
		return c.signFinal(m)
	case *wire.SeedRandom:
		return c.seedRandom(m)
	case *wire.DigestInit:
		return c.digestInit(m) // digest.go
	case *wire.DigestData:
		return c.digestData(m)
	case *wire.DigestUpdate:
		return c.digestUpdate(m)
	case *wire.DigestKey:
		return c.digestKey(m)
	case *wire.DigestFinal:
		return c.digestFinal(m)
	case *wire.VerifyInit:
		return c.verifyInit(m) // verify.go
	case *wire.VerifyData:
		return c.verifyData(m)
	case *wire.VerifyUpdate:
		return c.verifyUpdate(m)
	case *wire.VerifyFinal:
		return c.verifyFinal(m)
	case *wire.SetAttributeValue:
		return c.setAttributeValue(m) // setattr.go
	case *wire.CopyObject:
		return c.copyObject(m)
	case *wire.GenerateKeyPair:
		return c.generateKeyPair(ctx, m)
	case *wire.GenerateKeyPairTemplates:
		return c.generateKeyPairTemplates(ctx, m) // keygen.go
	case *wire.CreateObject:
		return c.createAny(m) // dataobj.go, certs.go
	case *wire.DestroyObject:
		return c.destroyAny(m) // dataobj.go, then destroyObject
	case *wire.DeleteKey:
		return c.deleteKey(m) // keys.go
	case *wire.GenerateRandom:
		return c.generateRandom(m)
	case *wire.Provision:
		defer m.PIN.Wipe()
		defer m.PUK.Wipe()
		return c.provision(m)
	case *wire.DestroyCard:
		return c.destroyCard(m)
	case *wire.SetOwner:
		return c.setOwner(m) // owner.go
	case *wire.GetStatus:
		return c.getStatus()
	case *wire.AttestKey:
		return c.attestKey(m) // attest.go
	case *wire.WaitEvent:
		return c.waitEvent(ctx, m)
	case *wire.AdminChallenge:
		return c.adminChallenge(m)
	case *wire.AdminUnblock:
		defer m.NewPIN.Wipe()
		return c.adminUnblock(m)
	case wire.PIVRequest:
		return c.pivRequest(m) // pivreaders.go
	}
	// A reply type sent as a request: the caller answers
	// UnsupportedReply.
	return nil, nil
}

// ---------------------------------------------------------------------------
// Who may do what.

func (c *conn) needUser(t wire.Type) error {
	if c.role.user {
		return nil
	}
	c.log.Warn().Stringer("request", t).Msg("permission denied: not in the card group")
	return wire.NewError(wire.PermissionDenied, "permission denied: using cards needs membership of the card group")
}

func (c *conn) needAdmin(t wire.Type) error {
	if c.role.admin {
		return nil
	}
	c.log.Warn().Stringer("request", t).Msg("permission denied: not an administrator")
	return wire.NewError(wire.PermissionDenied, "permission denied: administrators only")
}

// ---------------------------------------------------------------------------
// Cards.

// Token strings (CK_TOKEN_INFO pads manufacturerID to 32, model to 16).
const (
	tokenManufacturer = "tpmcard"
	tokenModel        = "TPM2 vcard"
)

func (c *conn) listCards() (any, error) {
	if err := c.needUser(wire.TypeListCards); err != nil {
		return nil, err
	}
	cards, err := c.s.m.Cards()
	if err != nil {
		return nil, err
	}
	out := &wire.Cards{}
	slots := slotIDs(cards) // slots.go
	for _, ci := range cards {
		if !c.mayUse(ci.Owner) {
			continue // not even its serial: it is not this peer's card
		}
		st, err := c.s.m.Status(ci.Serial)
		if err != nil {
			// A lost card still shows, so that it can be destroyed.
			c.log.Warn().Str("card", ci.Serial).Err(err).Msg("reading card status")
			st = &tpmcard.CardStatus{CardInfo: ci, PINTriesLeft: -1, PUKTriesLeft: -1}
		}
		ti := c.s.tokenInfo(st)
		ti.State = cardState(ci, err)
		ti.Slot = slots[ci.Serial]
		out.Cards = append(out.Cards, ti)
	}
	return out, nil
}

// tokenInfo builds CK_TOKEN_INFO-like data from a card's status (PKCS#11
// v2.40 §5.3.3 for the flags).
func (s *Server) tokenInfo(st *tpmcard.CardStatus) wire.TokenInfo {
	ti := wire.TokenInfo{
		Serial:       st.Serial,
		Label:        st.Label,
		Manufacturer: tokenManufacturer,
		Model:        tokenModel,
		MinPINLen:    st.Policy.MinLength,
		MaxPINLen:    st.Policy.MaxLength,
		PINTriesMax:  st.PINTries,
		PUKTriesMax:  st.PUKTries,
		HasPUK:       st.HasPUK,
		HasAdminKey:  st.AdminKey != nil,
		Simulated:    s.cfg.Simulated,
		Owner:        wireOwner(st.Owner),
		Flags:        wire.FlagLoginRequired | wire.FlagUserPINInitialized | wire.FlagTokenInitialized,
	}
	if s.random != nil {
		ti.Flags |= wire.FlagRNG
	}
	if st.MustChange {
		ti.Flags |= wire.FlagUserPINToBeChanged
	}
	if st.PINTriesLeft >= 0 {
		ti.PINTriesLeft = st.PINTriesLeft
		ti.Flags |= counterFlags(st.PINTriesLeft, st.PINTries, wire.FlagUserPINCountLow, wire.FlagUserPINFinalTry, wire.FlagUserPINLocked)
	}
	if st.PUKTriesLeft >= 0 {
		ti.PUKTriesLeft = st.PUKTriesLeft
		ti.Flags |= counterFlags(st.PUKTriesLeft, st.PUKTries, wire.FlagSOPINCountLow, wire.FlagSOPINFinalTry, wire.FlagSOPINLocked)
	}
	return ti
}

// counterFlags: count low after any failure, final try at one left, locked
// at none.
func counterFlags(left, limit int, low, final, locked wire.TokenFlags) wire.TokenFlags {
	var f wire.TokenFlags
	switch {
	case left <= 0:
		f |= locked
	case left == 1:
		f |= final
	}
	if left < limit && left > 0 {
		f |= low
	}
	return f
}

func (c *conn) mechanisms(m *wire.Mechanisms) (any, error) {
	if err := c.needUser(wire.TypeMechanisms); err != nil {
		return nil, err
	}
	if m.Slot != 0 || m.Serial == "" {
		if _, err := c.presentSlot(m.Slot); err != nil {
			return nil, err
		}
	} else if _, err := c.visibleCard(wire.TypeMechanisms, m.Serial); err != nil {
		return nil, err
	}
	return &wire.MechanismList{Mechanisms: mechanismList(!c.s.cfg.Simulated)}, nil
}

// ---------------------------------------------------------------------------
// Sessions and login.

func (c *conn) openSession(m *wire.OpenSession) (any, error) {
	if err := c.needUser(wire.TypeOpenSession); err != nil {
		return nil, err
	}
	gen := c.s.ownerGen.Load() // before the check: a change during it shows at next use
	serial, rw := m.Serial, m.ReadWrite
	if m.Slot != 0 || m.Serial == "" {
		// C_OpenSession (PKCS#11 v2.40 §5.6): the raw CK_FLAGS.
		if m.Flags&p11.CKFSerialSession == 0 {
			return nil, wire.NewError(wire.SessionParallel, "sessions must be serial (CKF_SERIAL_SESSION)")
		}
		rw = m.Flags&p11.CKFRWSession != 0
		var err error
		if serial, err = c.presentSlot(m.Slot); err != nil {
			return nil, err
		}
	} else if _, err := c.visibleCard(wire.TypeOpenSession, serial); err != nil {
		return nil, err
	}
	// §5.6: there is no read-only SO state, whichever form opens it.
	if _, so := c.s.logins.state(c, serial); so && !rw {
		return nil, wire.NewError(wire.SessionReadOnly, "the SO is logged in: only read-write sessions open")
	}
	if len(c.sessions) >= maxSessionsPerConn {
		return nil, wire.Errorf(wire.TooManySessions, "at most %d sessions per connection", maxSessionsPerConn)
	}
	for {
		c.nextSession++
		if c.nextSession == 0 {
			continue // 0 is CK_INVALID_HANDLE
		}
		if _, used := c.sessions[c.nextSession]; !used {
			break
		}
	}
	c.sessions[c.nextSession] = &session{serial: serial, rw: rw, gen: gen}
	return &wire.SessionOpened{Session: c.nextSession}, nil
}

func (c *conn) session(id uint32) (*session, error) {
	s, ok := c.sessions[id]
	if !ok {
		return nil, wire.Errorf(wire.SessionInvalid, "no session %d", id)
	}
	if err := c.checkSession(id, s); err != nil {
		if _, still := c.sessions[id]; !still {
			if c.revoked == nil {
				c.revoked = map[uint32]struct{}{}
			}
			c.revoked[id] = struct{}{}
		}
		return nil, err
	}
	return s, nil
}

// sessionsOn counts this connection's sessions on a card.
func (c *conn) sessionsOn(serial string) int {
	n := 0
	for _, s := range c.sessions {
		if s.serial == serial {
			n++
		}
	}
	return n
}

func (c *conn) closeSession(m *wire.CloseSession) (any, error) {
	s, err := c.session(m.Session)
	if _, ok := c.revoked[m.Session]; ok {
		// The service closed it (its card changed owner): to the
		// application, closing it now succeeds.
		delete(c.revoked, m.Session)
		return &wire.Ack{}, nil
	}
	if err != nil {
		return nil, err
	}
	delete(c.sessions, m.Session)
	c.endSession(s) // sessionkeys.go
	if c.sessionsOn(s.serial) == 0 {
		// PKCS#11 v2.40 §5.6: closing the application's last session on a
		// token logs it out.
		c.logoutCard(s.serial, "last session closed")
	}
	return &wire.Ack{}, nil
}

func (c *conn) closeAllSessions(m *wire.CloseAllSessions) (any, error) {
	serial := m.Serial
	if m.Slot != 0 || serial == "" {
		// A slot this connection was shown names its card, gone or not.
		var ok bool
		if serial, ok = c.slots[m.Slot]; !ok {
			ci, present, err := c.resolveSlot(m.Slot)
			if err != nil {
				return nil, err
			}
			if !present {
				return &wire.Ack{}, nil // the empty reader has no sessions
			}
			serial = ci.Serial
		}
	}
	for id, s := range c.sessions {
		if s.serial == serial {
			delete(c.sessions, id)
			c.endSession(s) // sessionkeys.go
		}
	}
	c.logoutCard(serial, "all sessions closed")
	return &wire.Ack{}, nil
}

func (c *conn) logoutCard(serial, why string) bool {
	c.endSigns(serial)
	if c.s.logins.logout(c, serial) {
		c.log.Info().Str("card", serial).Str("reason", why).Msg("logged out")
		return true
	}
	return false
}

// PKCS#11 session states (CK_STATE).
const (
	cksROPublic = p11.CKSROPublic
	cksROUser   = p11.CKSROUser
	cksRWPublic = p11.CKSRWPublic
	cksRWUser   = p11.CKSRWUser
	cksRWSO     = p11.CKSRWSO
)

func (c *conn) sessionInfo(m *wire.SessionInfo) (any, error) {
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	user, so := c.s.logins.state(c, s.serial)
	st := uint32(cksROPublic)
	switch {
	case so:
		st = cksRWSO
	case user && s.rw:
		st = cksRWUser
	case user:
		st = cksROUser
	case s.rw:
		st = cksRWPublic
	}
	flags := uint64(p11.CKFSerialSession)
	if s.rw {
		flags |= p11.CKFRWSession
	}
	return &wire.SessionState{State: st, ReadWrite: s.rw, Slot: c.slotFor(s.serial), Flags: flags}, nil
}

func (c *conn) login(m *wire.Login) (any, error) {
	if err := c.needUser(wire.TypeLogin); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if _, err := c.visibleCard(wire.TypeLogin, s.serial); err != nil {
		return nil, err
	}
	switch m.UserType {
	case wire.UserNormal:
		err := c.s.logins.loginUser(c, s.serial, m.PIN)
		c.auditCredential(s.serial, "login", err)
		if err != nil {
			return nil, err
		}
	case wire.UserSO:
		for _, o := range c.sessions {
			if o.serial == s.serial && !o.rw {
				return nil, wire.NewError(wire.SessionReadOnly, "an SO login needs every session on the card to be read-write")
			}
		}
		// The TPM checks the PUK now and counts a wrong one (PKCS#11
		// §5.6: C_Login returns CKR_PIN_INCORRECT, CKR_PIN_LOCKED).
		err := c.s.logins.loginSO(c, s.serial, m.PIN)
		c.auditCredential(s.serial, "SO login", err)
		if err != nil {
			return nil, err
		}
	case wire.UserContextSpecific:
		return c.loginContextSpecific(s, m.PIN) // logins.go
	default:
		return nil, wire.Errorf(wire.UserTypeInvalid, "user type %d", m.UserType)
	}
	// A signature still held was begun under a login that has ended.
	c.endSigns(s.serial)
	return &wire.Ack{}, nil
}

// auditCredential logs the outcome of a PIN or PUK use.
func (c *conn) auditCredential(serial, what string, err error) {
	if err == nil {
		c.log.Info().Str("card", serial).Msg(what)
		return
	}
	var pe *tpmcard.PINError
	switch {
	case errors.As(err, &pe):
		cred := "PIN"
		if pe.PUK {
			cred = "PUK"
		}
		c.log.Warn().Str("card", serial).Int("tries_left", pe.TriesLeft).Msg(what + " failed: wrong " + cred)
	case errors.Is(err, tpmcard.ErrCardBlocked):
		c.log.Warn().Str("card", serial).Msg(what + " failed: card blocked (PIN and PUK locked)")
	case errors.Is(err, tpmcard.ErrPINLocked):
		c.log.Warn().Str("card", serial).Msg(what + " failed: PIN locked")
	case errors.Is(err, tpmcard.ErrPUKLocked):
		c.log.Warn().Str("card", serial).Msg(what + " failed: PUK locked")
	default:
		se, _ := toStatus(err)
		c.log.Info().Str("card", serial).Stringer("status", se.Status).Msg(what + " failed")
	}
}

func (c *conn) logout(m *wire.Logout) (any, error) {
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if !c.logoutCard(s.serial, "logout") {
		return nil, wire.NewError(wire.NotLoggedIn, "not logged in")
	}
	return &wire.Ack{}, nil
}

func (c *conn) initPIN(m *wire.InitPIN) (any, error) {
	if err := c.needUser(wire.TypeInitPIN); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if _, err := c.visibleCard(wire.TypeInitPIN, s.serial); err != nil {
		return nil, err
	}
	puk := c.s.logins.puk(c, s.serial)
	if puk == nil {
		return nil, wire.NewError(wire.NotLoggedIn, "InitPIN needs an SO login")
	}
	defer puk.Wipe()
	err = c.s.logins.withCard(s.serial, func() error { return c.s.m.Unblock(s.serial, puk, m.NewPIN) })
	c.auditCredential(s.serial, "card unblocked (InitPIN)", err)
	if err != nil {
		return nil, err
	}
	return &wire.Ack{}, nil
}

func (c *conn) setPIN(m *wire.SetPIN) (any, error) {
	if err := c.needUser(wire.TypeSetPIN); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if _, err := c.visibleCard(wire.TypeSetPIN, s.serial); err != nil {
		return nil, err
	}
	if _, so := c.s.logins.state(c, s.serial); so {
		err := c.s.logins.withCard(s.serial, func() error { return c.s.m.ChangePUK(s.serial, m.OldPIN, m.NewPIN) })
		c.auditCredential(s.serial, "PUK changed", err)
		if err != nil {
			return nil, err
		}
		c.s.logins.setPUK(c, s.serial, m.NewPIN)
		return &wire.Ack{}, nil
	}
	// PKCS#11 allows C_SetPIN in a public session too: the old PIN is the
	// proof either way.
	err = c.s.logins.withCard(s.serial, func() error { return c.s.m.ChangePIN(s.serial, m.OldPIN, m.NewPIN) })
	if w, ok := notRecorded(err); ok {
		// The TPM has the new PIN: a failure would have the user keep
		// typing the old one.
		c.log.Warn().Str("card", s.serial).Err(err).Msg("PIN changed; its record was not written")
		return &wire.Ack{Warning: w}, nil
	}
	c.auditCredential(s.serial, "PIN changed", err)
	if err != nil {
		return nil, err
	}
	return &wire.Ack{}, nil
}

func (c *conn) unblock(m *wire.Unblock) (any, error) {
	// The PUK is the authorization: anyone who may use cards and holds it
	// (a user given the PUK by the helpdesk, say) may unblock.
	if err := c.needUser(wire.TypeUnblock); err != nil {
		return nil, err
	}
	if _, err := c.visibleCard(wire.TypeUnblock, m.Serial); err != nil {
		return nil, err
	}
	err := c.s.logins.withCard(m.Serial, func() error { return c.s.m.Unblock(m.Serial, m.PUK, m.NewPIN) })
	c.auditCredential(m.Serial, "card unblocked", err)
	if err != nil {
		return nil, err
	}
	return &wire.Ack{}, nil
}

// ---------------------------------------------------------------------------
// Keys.

func (c *conn) generateKeyPair(ctx context.Context, m *wire.GenerateKeyPair) (any, error) {
	s, err := c.keygenSession(wire.TypeGenerateKeyPair, m.Session)
	if err != nil {
		return nil, err
	}
	if m.PINPolicy != "" {
		return c.generateKeyWithPolicy(ctx, s, m) // keygen.go
	}
	kp, err := c.generateKeyIn(ctx, s, m.Algorithm, m.Label, m.ID)
	if err != nil {
		return nil, err
	}
	return kp, nil
}

// keygenSession checks that the peer may generate keys and that the
// session is a read-write one.
func (c *conn) keygenSession(t wire.Type, id uint32) (*session, error) {
	if err := c.needAdmin(t); err != nil {
		return nil, err
	}
	s, err := c.session(id)
	if err != nil {
		return nil, err
	}
	if !s.rw {
		return nil, wire.NewError(wire.SessionReadOnly, "generating a key needs a read-write session")
	}
	return s, nil
}

// generateKeyIn generates a key pair on the session's card.
func (c *conn) generateKeyIn(ctx context.Context, s *session, algorithm, label string, id []byte) (*wire.KeyPairGenerated, error) {
	alg, err := tpmcard.ParseAlgorithm(algorithm)
	if err != nil {
		return nil, wire.Errorf(wire.UnsupportedAlgorithm, "unknown key algorithm %q", algorithm)
	}
	expect := expectedKeygen(alg)
	k, err := c.s.m.GenerateKey(ctx, s.serial, tpmcard.KeyOptions{Algorithm: alg, Label: label, ID: id},
		func(p tpmcard.Progress) {
			pct := min(95, int(100*p.Elapsed/expect))
			c.progress(wire.Progress{Percent: pct, Message: fmt.Sprintf("generating %s key (%s)", alg, p.Elapsed.Round(100*time.Millisecond))})
		})
	if err != nil {
		c.log.Warn().Str("card", s.serial).Str("algorithm", string(alg)).Err(err).Msg("key generation failed")
		return nil, err
	}
	c.log.Info().Str("card", s.serial).Str("algorithm", string(alg)).Hex("key_id", k.ID).Str("label", k.Label).Msg("key generated")
	return &wire.KeyPairGenerated{
		Public:  c.objects.handle(objRef{serial: s.serial, id: string(k.ID), kind: objPublic}),
		Private: c.objects.handle(objRef{serial: s.serial, id: string(k.ID), kind: objPrivate}),
	}, nil
}

// expectedKeygen is a rough guess of key generation time, for Progress.
func expectedKeygen(a tpmcard.Algorithm) time.Duration {
	switch a {
	case tpmcard.RSA2048:
		return 10 * time.Second
	case tpmcard.RSA3072:
		return 40 * time.Second
	}
	return time.Second
}

func (c *conn) destroyObject(m *wire.DestroyObject) (any, error) {
	if r, ok := c.objects.byHandle[m.Object]; ok && isSessionKey(r.kind) {
		return c.destroySessionKeyObject(m) // sessionkeys.go
	}
	if err := c.needAdmin(wire.TypeDestroyObject); err != nil {
		return nil, err
	}
	s, err := c.session(m.Session)
	if err != nil {
		return nil, err
	}
	if !s.rw {
		return nil, wire.NewError(wire.SessionReadOnly, "deleting a key needs a read-write session")
	}
	ref, _, err := c.object(s, m.Object)
	if err != nil {
		return nil, err
	}
	if ref.kind == objCert {
		return c.destroyCert(s, ref) // certs.go
	}
	return c.destroyKeyHalf(s, m.Object, ref) // objects.go
}

// maxRandom bounds one GenerateRandom (tpmcard.Manager.Random's own limit).
const maxRandom = 4096

func (c *conn) generateRandom(m *wire.GenerateRandom) (any, error) {
	if err := c.needUser(wire.TypeGenerateRandom); err != nil {
		return nil, err
	}
	if _, err := c.session(m.Session); err != nil {
		return nil, err
	}
	if c.s.random == nil {
		return nil, wire.NewError(wire.Unsupported, "random numbers from the TPM are not available yet")
	}
	if m.N <= 0 || m.N > maxRandom {
		return nil, wire.Errorf(wire.DataLenRange, "random length must be 1 to %d", maxRandom)
	}
	b, err := c.s.random.Random(m.N)
	if err != nil {
		return nil, err
	}
	if len(b) != m.N {
		return nil, fmt.Errorf("random source gave %d bytes, want %d", len(b), m.N)
	}
	return &wire.Random{Bytes: b}, nil
}

// ---------------------------------------------------------------------------
// Administration.

func (c *conn) provision(m *wire.Provision) (any, error) {
	if err := c.needAdmin(wire.TypeProvision); err != nil {
		return nil, err
	}
	opts := tpmcard.CreateOptions{Label: m.Label, PINTries: m.PINTries, PUKTries: m.PUKTries}
	if len(m.PIN) > 0 {
		opts.PIN = m.PIN
	}
	if len(m.PUK) > 0 {
		opts.PUK = m.PUK
	}
	if m.PINPolicy != (wire.PINPolicy{}) {
		p := tpmcard.PINPolicy{
			MinLength: m.PINPolicy.MinLen, MaxLength: m.PINPolicy.MaxLen,
			Upper: tpmcard.CharRule(m.PINPolicy.Upper), Lower: tpmcard.CharRule(m.PINPolicy.Lower),
			Digit: tpmcard.CharRule(m.PINPolicy.Digit), Special: tpmcard.CharRule(m.PINPolicy.Special),
		}
		def := tpmcard.DefaultPINPolicy()
		if p.MinLength == 0 {
			p.MinLength = def.MinLength
		}
		if p.MaxLength == 0 {
			p.MaxLength = def.MaxLength
		}
		opts.PINPolicy = &p
	}
	if len(m.AdminKey) > 0 {
		pub, err := x509.ParsePKIXPublicKey(m.AdminKey)
		ek, ok := pub.(*ecdsa.PublicKey)
		if err != nil || !ok {
			return nil, wire.NewError(wire.BadRequest, "the admin key must be an ECDSA P-256 public key (PKIX DER)")
		}
		opts.AdminKey = ek
	}
	opts.NoPUK = m.NoPUK
	owner, err := c.provisionOwner(m) // owner.go
	if err != nil {
		return nil, err
	}
	opts.Owner = owner
	cr, err := c.s.m.Create(opts)
	if err != nil {
		c.log.Warn().Err(err).Msg("provisioning failed")
		return nil, err
	}
	c.log.Info().Str("card", cr.Card.Serial).Str("label", cr.Card.Label).Int("pin_tries", cr.Card.PINTries).
		Int("puk_tries", cr.Card.PUKTries).Bool("default_pin", opts.PIN == nil).Bool("generated_puk", cr.PUK != nil).
		Bool("admin_key", opts.AdminKey != nil).Bool("puk", !opts.NoPUK).Any("owner", wireOwner(owner)).
		Msg("card provisioned")
	return &wire.Provisioned{Serial: cr.Card.Serial, PUK: cr.PUK}, nil
}

func (c *conn) destroyCard(m *wire.DestroyCard) (any, error) {
	if err := c.needAdmin(wire.TypeDestroyCard); err != nil {
		return nil, err
	}
	if ci, err := c.s.m.Card(m.Serial); err == nil {
		c.destroyedOwner = ci.Owner // for the removal event (events.go)
	}
	err := c.s.logins.withCard(m.Serial, func() error { return c.s.m.Destroy(m.Serial) })
	if err != nil {
		c.log.Warn().Str("card", m.Serial).Err(err).Msg("destroying card failed")
		return nil, err
	}
	c.s.logins.forget(m.Serial)
	c.objects.dropCard(m.Serial)
	c.s.pivForget(m.Serial)
	c.log.Info().Str("card", m.Serial).Msg("card destroyed")
	return &wire.Ack{}, nil
}

func (c *conn) getStatus() (any, error) {
	if err := c.needAdmin(wire.TypeGetStatus); err != nil {
		return nil, err
	}
	cards, err := c.s.m.Cards()
	if err != nil {
		return nil, err
	}
	st := &wire.ServiceStatus{
		Backend:           c.s.cfg.Backend,
		Simulated:         c.s.cfg.Simulated,
		HardwareProtected: hardwareProtected(c.s.cfg.Backend, c.s.cfg.Simulated),
		Cards:             len(cards),
		Version:           c.s.cfg.Version,
		Manufacturer:      c.s.cfg.TPMManufacturer,
		Firmware:          c.s.cfg.TPMFirmware,
	}
	if c.s.cfg.TPMState != nil {
		ts := c.s.cfg.TPMState()
		st.TPMReconnects = ts.Reconnects
		if !ts.Up {
			st.TPMDownSince = ts.DownSince.Unix()
			if ts.Err != nil {
				st.TPMError = ts.Err.Error()
			}
		}
	}
	return st, nil
}

// hardwareProtected: only the device backend keeps keys in hardware.
func hardwareProtected(backend string, simulated bool) bool {
	return !simulated && (backend == "" || backend == "device" || strings.HasPrefix(backend, "device:"))
}
