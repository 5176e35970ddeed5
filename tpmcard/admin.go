package tpmcard

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/adminkey"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// Errors of the administrator's unblock.
var (
	ErrNoAdminKey       = errors.New("card has no admin key")
	ErrNoChallenge      = errors.New("no challenge is pending for this card: ask for a new one")
	ErrChallengeExpired = errors.New("the challenge expired: ask for a new one")
	ErrBadResponse      = errors.New("the response was not signed for this challenge by this card's admin key (another card, another challenge, another operation or another key)")
)

// DefaultChallengeValidity is how long an unblock challenge may be answered.
const DefaultChallengeValidity = 10 * time.Minute

// challenge is a pending administrator's unblock: two policy sessions
// whose nonces the administrator signs, one for the new PIN and one for the
// counter reset, saved out of the TPM's session slots.
type challenge struct {
	c          *adminkey.Challenge
	set, reset savedSession
	deadline   time.Time
}

// savedSession is a policy session context-saved out of the TPM.
type savedSession struct {
	sess    tpm2.Session // the session object: it tracks the nonces
	context tpm2.TPMSContext
}

// AdminChallenge opens an unblock challenge for a card with an admin key.
// The TPM keeps the two policy sessions (saved, so they hold no session
// slot) until the response arrives or validity passes; a new challenge for
// the same card replaces the old one.
func (m *Manager) AdminChallenge(serial string, validity time.Duration) (*adminkey.Challenge, error) {
	if validity == 0 {
		validity = DefaultChallengeValidity
	}
	validity = validity.Truncate(time.Second)
	if validity < time.Second || validity > adminkey.MaxValidity {
		return nil, fmt.Errorf("%w: challenge validity %v", ErrInvalidOptions, validity)
	}
	r, err := m.lockCard(serial)
	if err != nil {
		return nil, err
	}
	defer m.unlock()
	if r.AdminKey == nil {
		return nil, ErrNoAdminKey
	}
	m.dropChallenge(serial)
	for other, ch := range m.challenges {
		if time.Now().After(ch.deadline) {
			m.dropChallenge(other) // expired: free its TPM sessions
		}
	}
	// The PIN index as the record knows it, written: its Name must be the
	// record's, or the policies were computed from something else.
	pinPublic := pinIndexPublic(tpm2.TPMHandle(r.PINIndex), orDigest(m.pinBranches(r)), true)
	if !bytes.Equal(nvName(pinPublic), r.PINName) {
		return nil, fmt.Errorf("card %s: %w (the PIN index's Name does not follow from the record)", serial, ErrCardAltered)
	}
	set, err := m.savedPolicySession()
	if err != nil {
		return nil, err
	}
	reset, err := m.savedPolicySession()
	if err != nil {
		flush(m.tpm, set.sess.Handle())
		return nil, err
	}
	c := &adminkey.Challenge{
		Op: adminkey.Unblock, Serial: serial, Validity: validity,
		SetNonce: set.sess.NonceTPM().Buffer, ResetNonce: reset.sess.NonceTPM().Buffer,
		PINLimit: uint8(r.PINLimit), PINPublic: tpm2.Marshal(pinPublic),
	}
	if m.challenges == nil {
		m.challenges = map[string]*challenge{}
	}
	m.challenges[serial] = &challenge{c: c, set: set, reset: reset, deadline: time.Now().Add(validity)}
	return c, nil
}

// savedPolicySession starts a policy session and saves it out of the TPM.
func (m *Manager) savedPolicySession() (savedSession, error) {
	s, closer, err := m.policySession()
	if err != nil {
		return savedSession{}, busy(err)
	}
	saved, err := tpm2.ContextSave{SaveHandle: s.Handle()}.Execute(m.tpm)
	if err != nil {
		closer()
		return savedSession{}, busy(err)
	}
	return savedSession{sess: s, context: saved.Context}, nil
}

// load brings a saved session back into the TPM, making room for it.
func (m *Manager) loadSession(s savedSession) error {
	return m.withRoom(func() error {
		_, err := tpm2.ContextLoad{Context: s.context}.Execute(m.tpm)
		return err
	})
}

// dropChallenge forgets a pending challenge and flushes its sessions.
func (m *Manager) dropChallenge(serial string) {
	ch := m.challenges[serial]
	if ch == nil {
		return
	}
	delete(m.challenges, serial)
	// A saved session is flushed by its handle, loaded or not.
	flush(m.tpm, ch.set.sess.Handle())
	flush(m.tpm, ch.reset.sess.Handle())
}

// AdminUnblock answers a pending challenge: the TPM checks the
// administrator's first signature (PolicySigned) and the card gets newPIN,
// marked "must change"; it checks the second, bound to the one NV_Write
// of {0, pinLimit}, and the counter is reset. Each signature is good once,
// in its own session: nothing a bus observer sees can be used again. The
// challenge is used up either way.
func (m *Manager) AdminUnblock(serial string, response string, newPIN secret.Secret) error {
	resp, err := adminkey.ParseResponse(response)
	if err != nil {
		return err
	}
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	if r.AdminKey == nil {
		return ErrNoAdminKey
	}
	if err := r.Policy.Check(newPIN); err != nil {
		return err
	}
	ch := m.challenges[serial]
	if ch == nil {
		return ErrNoChallenge
	}
	// Before the challenge is used up: a state directory that refuses the
	// write leaves it pending.
	undo, err := m.beginUnblock(r)
	if err != nil {
		return err
	}
	pinSet := false
	defer func() {
		if !pinSet {
			undo()
		}
	}()
	defer m.dropChallenge(serial)
	if time.Now().After(ch.deadline) {
		return ErrChallengeExpired
	}
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](r.AdminKey)
	if err != nil {
		return fmt.Errorf("reading the card's admin key: %w", err)
	}
	// The TPM checks both signatures; checking them here first means a
	// half-right response changes nothing (on the reference TPM a new PIN
	// alone already clears the counter).
	if !adminkey.Verify(r.adminPublicKey(), ch.c, resp) {
		return ErrBadResponse
	}
	for _, s := range []savedSession{ch.set, ch.reset} {
		if err := m.loadSession(s); err != nil {
			return fmt.Errorf("restoring the challenge's session: %w", busy(err))
		}
	}
	var admin *tpm2.LoadExternalResponse
	err = m.withRoom(func() (err error) {
		admin, err = tpm2.LoadExternal{InPublic: tpm2.New2B(*pub), Hierarchy: tpm2.TPMRHOwner}.Execute(m.tpm)
		return err
	})
	if err != nil {
		return fmt.Errorf("loading the admin key: %w", busy(err))
	}
	defer flush(m.tpm, admin.ObjectHandle)
	signed := func(s tpm2.Session, nonce, cpHash, ref, sig []byte) error {
		_, err := tpm2.PolicySigned{
			AuthObject:    tpm2.NamedHandle{Handle: admin.ObjectHandle, Name: admin.Name},
			PolicySession: s.Handle(),
			NonceTPM:      tpm2.TPM2BNonce{Buffer: nonce},
			CPHashA:       tpm2.TPM2BDigest{Buffer: cpHash},
			PolicyRef:     tpm2.TPM2BNonce{Buffer: ref},
			Expiration:    ch.c.Expiration(),
			Auth:          ecdsaSignature(sig),
		}.Execute(m.tpm)
		switch {
		case isTPM(err, tpm2.TPMRCExpired):
			return ErrChallengeExpired
		case isTPM(err, tpm2.TPMRCSignature):
			return ErrBadResponse
		}
		return err
	}
	newAuth := r.authValue("pin", newPIN)
	defer wipe(newAuth)

	// New PIN first, counter second, as with the PUK.
	err = m.changeAuthIn(ch.set.sess, tpm2.TPMHandle(r.PINIndex), r.PINName, newAuth, m.pinBranches(r), func(h tpm2.TPMHandle) error {
		return signed(ch.set.sess, ch.c.SetNonce, nil, adminkey.SetPINRef(serial), resp.SetSig)
	})
	if err != nil {
		pinSet = errors.Is(err, ErrTPMUnreachable) // then it may be set
		return err
	}
	pinSet = true
	err = m.policyWriteIn(ch.reset.sess, tpm2.TPMHandle(r.PINIndex), r.PINName, pinData{0, r.PINLimit}, m.pinBranches(r),
		func(s tpm2.Session) error {
			if _, err := (tpm2.PolicyCommandCode{PolicySession: s.Handle(), Code: tpm2.TPMCCNVWrite}).Execute(m.tpm); err != nil {
				return err
			}
			return signed(s, ch.c.ResetNonce, ch.c.ResetCpHash(), adminkey.ResetRef(serial), resp.ResetSig)
		})
	if err != nil {
		return fmt.Errorf("resetting the PIN counter (the new PIN is set; a new challenge finishes the unblock): %w", busy(err))
	}
	return m.unblocked(serial, r)
}
