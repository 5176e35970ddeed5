package server

import (
	"errors"
	"sync"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// logins is the login state of every connection (PKCS#11 application) on
// every card. It lives in the server, not in the connections, because the
// Manager holds one PIN proof per card, shared by every application logged
// in to it: Manager.Logout runs only when the last application logs out.
//
// Each card has its own mutex, held across the Manager calls that depend
// on the login state (Login, Logout, Sign), so that one application's
// logout cannot pull the proof from under another's login or signature.
//
// A wrong PIN ends every application's login of the card, as a physical
// card drops its verified state after a failed VERIFY (ISO 7816-4 §11.5.6):
// otherwise a logged-in signer re-proves the PIN at every signature,
// which resets the TPM's counter, and wrong guesses from anyone else never
// add up to the limit. A wrong PUK ends every SO login of the card for the
// same reason.
type logins struct {
	m     *tpmcard.Manager
	mu    sync.Mutex
	cards map[string]*cardLogins
}

type cardLogins struct {
	mu    sync.Mutex
	users map[*conn]struct{}      // logged in as CKU_USER (PIN proven to the TPM)
	so    map[*conn]secret.Secret // logged in as CKU_SO: the PUK, kept for InitPIN
}

func (l *logins) init(m *tpmcard.Manager) {
	l.m = m
	l.cards = map[string]*cardLogins{}
}

func (l *logins) card(serial string) *cardLogins {
	l.mu.Lock()
	defer l.mu.Unlock()
	cl := l.cards[serial]
	if cl == nil {
		cl = &cardLogins{users: map[*conn]struct{}{}, so: map[*conn]secret.Secret{}}
		l.cards[serial] = cl
	}
	return cl
}

// state reports how c is logged in to the card.
func (l *logins) state(c *conn, serial string) (user, so bool) {
	cl := l.card(serial)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	_, user = cl.users[c]
	_, so = cl.so[c]
	return user, so
}

// loginUser proves the PIN to the TPM and marks c logged in. A wrong or
// locked PIN logs every application out of the card.
func (l *logins) loginUser(c *conn, serial string, pin secret.Secret) error {
	cl := l.card(serial)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if _, ok := cl.users[c]; ok {
		return wire.NewError(wire.AlreadyLoggedIn, "already logged in")
	}
	if _, ok := cl.so[c]; ok {
		return wire.NewError(wire.AnotherUserLoggedIn, "logged in as SO: log out first")
	}
	if err := l.m.Login(serial, pin); err != nil {
		l.failedLocked(cl, serial, err)
		l.syncLocked(cl, serial)
		return err
	}
	cl.users[c] = struct{}{}
	return nil
}

// loginSO logs c in as SO: the TPM checks the PUK (Manager.CheckPUK) and
// counts a wrong one, which, as any wrong PUK, ends every SO login of the
// card. The state is checked first (not logged in as SO already, nor as
// the user), so that a refused login costs no try. The PUK is kept for
// InitPIN and SetPIN.
func (l *logins) loginSO(c *conn, serial string, puk secret.Secret) error {
	cl := l.card(serial)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if _, ok := cl.so[c]; ok {
		return wire.NewError(wire.AlreadyLoggedIn, "already logged in as SO")
	}
	if _, ok := cl.users[c]; ok {
		return wire.NewError(wire.AnotherUserLoggedIn, "logged in as user: log out first")
	}
	err := l.m.CheckPUK(serial, puk)
	l.failedLocked(cl, serial, err)
	l.syncLocked(cl, serial)
	if err != nil {
		return err
	}
	cl.so[c] = puk.Clone()
	return nil
}

// puk returns a copy of c's SO PUK for the card, or nil.
func (l *logins) puk(c *conn, serial string) secret.Secret {
	cl := l.card(serial)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.so[c].Clone()
}

// setPUK replaces c's remembered PUK after a PUK change.
func (l *logins) setPUK(c *conn, serial string, puk secret.Secret) {
	cl := l.card(serial)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if old, ok := cl.so[c]; ok {
		old.Wipe()
		cl.so[c] = puk.Clone()
	}
}

// logout logs c out of the card; the Manager forgets the PIN proof when no
// other connection is logged in. It reports whether c was logged in.
func (l *logins) logout(c *conn, serial string) bool {
	cl := l.card(serial)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	_, user := cl.users[c]
	puk, so := cl.so[c]
	if so {
		puk.Wipe()
		delete(cl.so, c)
	}
	if user {
		delete(cl.users, c)
		if len(cl.users) == 0 {
			l.m.Logout(serial)
		}
	}
	return user || so
}

// logoutAll logs c out of every card: the application ended, and with it
// its signatures in progress and its session keys (sessionkeys.go).
func (l *logins) logoutAll(c *conn) (serials []string) {
	c.endApplication()
	l.mu.Lock()
	all := make(map[string]*cardLogins, len(l.cards))
	for s, cl := range l.cards {
		all[s] = cl
	}
	l.mu.Unlock()
	for s := range all {
		if l.logout(c, s) {
			serials = append(serials, s)
		}
	}
	return serials
}

// provePIN has the TPM check the PIN for one signature with a key that
// needs it for every signature (tpmcard.Manager.ProvePIN), while c is
// logged in to the card as user. A wrong or locked PIN logs every
// application out of the card, as at loginUser.
func (l *logins) provePIN(c *conn, serial string, pin secret.Secret) (*tpmcard.PINProof, error) {
	cl := l.card(serial)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if _, ok := cl.users[c]; !ok {
		return nil, wire.NewError(wire.NotLoggedIn, "not logged in: C_Login with CKU_USER first")
	}
	p, err := l.m.ProvePIN(serial, pin)
	if err != nil {
		l.failedLocked(cl, serial, err)
		l.syncLocked(cl, serial)
		return nil, err
	}
	return p, nil
}

// loginContextSpecific is C_Login(CKU_CONTEXT_SPECIFIC) (PKCS#11 v2.40
// §5.6): the PIN again, for the signature C_SignInit began in session s
// with a key that needs the PIN for every signature (CKA_ALWAYS_AUTHENTICATE,
// §4.9). The TPM checks the PIN now, counted as any entry of it; the proof
// waits in the operation for its one signature. Anywhere else the user
// type is used wrongly: CKR_OPERATION_NOT_INITIALIZED, as §5.6 says.
func (c *conn) loginContextSpecific(s *session, pin secret.Secret) (any, error) {
	op := s.sign
	if op == nil && s.signInitRV != nil {
		// The module sent SignInit without reading its reply, which was a
		// failure: to the application the operation is active, and its
		// next step answers with that failure (sign.go). The PIN is not
		// checked: nothing will sign with it.
		return &wire.Ack{}, nil
	}
	if op == nil || !op.always {
		return nil, wire.NewError(wire.OperationNotInitialized,
			"no signature with a key that needs the PIN for every signature is in progress in this session: C_Login with CKU_CONTEXT_SPECIFIC follows C_SignInit")
	}
	p, err := c.s.logins.provePIN(c, s.serial, pin)
	c.auditCredential(s.serial, "context-specific login", err)
	if err != nil {
		return nil, err
	}
	op.pin.Wipe()
	op.pin = p
	return &wire.Ack{}, nil
}

// withUser runs fn while c is logged in to the card as user, or returns
// NotLoggedIn. No other application can log the card out meanwhile.
func (l *logins) withUser(c *conn, serial string, fn func() error) error {
	cl := l.card(serial)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if _, ok := cl.users[c]; !ok {
		return wire.NewError(wire.NotLoggedIn, "not logged in")
	}
	err := fn()
	if err != nil {
		l.failedLocked(cl, serial, err)
		l.syncLocked(cl, serial)
	}
	return err
}

// withCard runs fn holding the card's login lock, then drops every user
// login if the Manager no longer holds the card's PIN proof (after an
// unblock, a lockout or a destroy).
func (l *logins) withCard(serial string, fn func() error) error {
	cl := l.card(serial)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	err := fn()
	l.failedLocked(cl, serial, err)
	l.syncLocked(cl, serial)
	return err
}

// failedLocked ends every user login of the card after a wrong or locked
// PIN, and every SO login after a wrong or locked PUK, and logs each.
func (l *logins) failedLocked(cl *cardLogins, serial string, err error) {
	if err == nil {
		return
	}
	var pe *tpmcard.PINError
	isPE := errors.As(err, &pe)
	blocked := errors.Is(err, tpmcard.ErrCardBlocked)
	if (isPE && !pe.PUK) || blocked || errors.Is(err, tpmcard.ErrPINLocked) {
		for c := range cl.users {
			c.log.Info().Str("card", serial).Msg("logged out: a wrong PIN was entered for the card")
		}
		if len(cl.users) > 0 {
			clear(cl.users)
			l.m.Logout(serial)
		}
	}
	if (isPE && pe.PUK) || blocked || errors.Is(err, tpmcard.ErrPUKLocked) {
		for c, puk := range cl.so {
			c.log.Info().Str("card", serial).Msg("SO logged out: a wrong PUK was entered for the card")
			puk.Wipe()
		}
		clear(cl.so)
	}
}

// revoke ends the logins of the card's connections that keep rejects,
// after the card changed owner, and returns them.
func (l *logins) revoke(serial string, keep func(*conn) bool) []*conn {
	cl := l.card(serial)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var out []*conn
	for c := range cl.users {
		if !keep(c) {
			delete(cl.users, c)
			out = append(out, c)
		}
	}
	for c, puk := range cl.so {
		if !keep(c) {
			puk.Wipe()
			delete(cl.so, c)
			out = append(out, c)
		}
	}
	if len(out) > 0 && len(cl.users) == 0 {
		l.m.Logout(serial)
	}
	return out
}

// syncLocked drops the user logins the Manager no longer backs: a PIN that
// locked, changed elsewhere, an unblock.
func (l *logins) syncLocked(cl *cardLogins, serial string) {
	if len(cl.users) > 0 && !l.m.LoggedIn(serial) {
		clear(cl.users)
	}
}

// forget drops all state of a destroyed card.
func (l *logins) forget(serial string) {
	l.mu.Lock()
	cl := l.cards[serial]
	delete(l.cards, serial)
	l.mu.Unlock()
	if cl == nil {
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, p := range cl.so {
		p.Wipe()
	}
	clear(cl.so)
	clear(cl.users)
}

// endAll ends every login of every card: the TPM was lost, and with it the
// Manager's PIN proofs. PUKs kept for InitPIN are wiped.
func (l *logins) endAll() {
	l.mu.Lock()
	cards := make([]*cardLogins, 0, len(l.cards))
	for _, cl := range l.cards {
		cards = append(cards, cl)
	}
	l.mu.Unlock()
	for _, cl := range cards {
		cl.mu.Lock()
		for _, p := range cl.so {
			p.Wipe()
		}
		clear(cl.so)
		clear(cl.users)
		cl.mu.Unlock()
	}
}
