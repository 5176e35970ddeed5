package tpmcard

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// Login proves the card's PIN to the TPM (PolicySecret on the PIN index,
// Part 3 §23.4) and keeps the proof for signing until Logout. A wrong PIN
// is counted by the TPM and gives a *PINError with the tries left; a
// locked PIN gives ErrPINLocked (ErrCardBlocked when the PUK is locked
// too). A card whose PIN must change can log in, but not sign.
func (m *Manager) Login(serial string, pin secret.Secret) error {
	// The slow derivation needs no TPM: run it before taking the lock,
	// which would otherwise hold every other card's signatures back for
	// as long (a card's derivation parameters never change).
	auth, err := m.deriveUnlocked(serial, "pin", pin)
	if err != nil {
		return err
	}
	r, err := m.lockCard(serial)
	if err != nil {
		wipe(auth)
		return err
	}
	defer m.unlock()
	hs, closer, err := m.saltedHMAC(auth)
	if err != nil {
		wipe(auth)
		return busy(err)
	}
	if err := m.prepareSignSession(); err != nil {
		closer()
		wipe(auth)
		return err
	}
	err = m.withRoom(func() error {
		_, err := tpm2.PolicySecret{
			AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMHandle(r.PINIndex), Name: tpm2.TPM2BName{Buffer: r.PINName}, Auth: hs},
			PolicySession: m.sig.sess.Handle(),
		}.Execute(m.tpm)
		return err
	})
	if err != nil {
		closer()
		wipe(auth)
		m.sig.dirty = true
		err = m.secretError(r, pinProof, err)
		if isPINFailure(err) {
			// A failed VERIFY drops a physical card's verified state: a
			// wrong PIN ends the card's login, so that a logged-in
			// signer's PIN proofs cannot keep resetting the counter
			// between someone else's guesses.
			m.logoutLocked(serial)
		}
		return err
	}
	m.logoutLocked(serial)
	m.sig.armedFor = serial
	m.logins[serial] = &login{auth: auth, sess: hs, close: closer, used: m.tick()}
	return nil
}

// deriveUnlocked derives a card's authValue from its record without the
// Manager's lock.
func (m *Manager) deriveUnlocked(serial, kind string, s []byte) ([]byte, error) {
	if err := m.usable(); err != nil {
		return nil, err
	}
	r, err := m.record(serial)
	if err != nil {
		return nil, err
	}
	if r.Version < recordVersion {
		return nil, fmt.Errorf("card %s: %w", serial, ErrCardOutdated)
	}
	return r.authValue(kind, s), nil
}

// isPINFailure reports whether err says the PIN was wrong or is locked.
func isPINFailure(err error) bool {
	var pe *PINError
	return errors.As(err, &pe) || errors.Is(err, ErrPINLocked) || errors.Is(err, ErrCardBlocked)
}

// Logout forgets the card's PIN proof. Logging out of a card that is not
// logged in does nothing.
func (m *Manager) Logout(serial string) {
	if m.lock() != nil {
		return
	}
	defer m.unlock()
	m.logoutLocked(serial)
}

// LoggedIn reports whether the card holds a PIN proof.
func (m *Manager) LoggedIn(serial string) bool {
	if m.lock() != nil {
		return false
	}
	defer m.unlock()
	return m.logins[serial] != nil
}

func (m *Manager) logoutLocked(serial string) {
	l := m.logins[serial]
	if l == nil {
		return
	}
	if l.close != nil {
		_ = l.close()
	}
	wipe(l.auth)
	delete(m.logins, serial)
	if m.sig.armedFor == serial {
		m.sig.armedFor, m.sig.dirty = "", true
	}
}

// prepareSignSession makes sure the shared policy session exists and holds
// no earlier proof.
func (m *Manager) prepareSignSession() error {
	m.sig.used = m.tick()
	if m.sig.sess == nil {
		s, closer, err := m.policySession()
		if err != nil {
			return busy(err)
		}
		m.sig = signSession{sess: s, close: closer, used: m.tick()}
		return nil
	}
	if m.sig.armedFor != "" || m.sig.dirty {
		if err := policyRestart(m.tpm, m.sig.sess.Handle()); err != nil {
			m.resetSignSession()
			return m.prepareSignSession()
		}
		m.sig.armedFor, m.sig.dirty = "", false
	}
	return nil
}

func (m *Manager) resetSignSession() {
	if m.sig.close != nil {
		_ = m.sig.close()
	}
	m.sig = signSession{}
}

// arm puts the PIN proof of a logged-in card into the sign session: one
// PolicySecret, reusing the login's HMAC session.
func (m *Manager) arm(r *record, l *login) error {
	if m.sig.armedFor == r.Serial && !m.sig.dirty {
		return nil
	}
	if err := m.prepareSignSession(); err != nil {
		return err
	}
	l.used = m.tick()
	if l.sess == nil {
		s, closer, err := m.saltedHMAC(l.auth)
		if err != nil {
			return busy(err)
		}
		l.sess, l.close = s, closer
	}
	err := m.withRoom(func() error {
		_, err := tpm2.PolicySecret{
			AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMHandle(r.PINIndex), Name: tpm2.TPM2BName{Buffer: r.PINName}, Auth: l.sess},
			PolicySession: m.sig.sess.Handle(),
		}.Execute(m.tpm)
		return err
	})
	if err != nil {
		m.sig.dirty = true
		err = m.secretError(r, pinProof, err)
		if _, wrong := err.(*PINError); wrong {
			// The PIN changed behind this login (another Manager on the
			// same TPM): the proof is stale.
			m.logoutLocked(r.Serial)
			return fmt.Errorf("%w (the PIN was changed elsewhere)", ErrNotLoggedIn)
		}
		if err == ErrPINLocked || err == ErrCardBlocked {
			m.logoutLocked(r.Serial)
		}
		return err
	}
	m.sig.armedFor = r.Serial
	return nil
}

// ChangePIN sets a new PIN after proving the old one. The proof is a
// PolicySecret on the PIN index, so a wrong old PIN counts as a try and a
// locked PIN cannot be changed.
func (m *Manager) ChangePIN(serial string, oldPIN, newPIN secret.Secret) error {
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	if err := r.Policy.Check(newPIN); err != nil {
		return err
	}
	if r.MustChange && newPIN.Equal(oldPIN) {
		return &PolicyError{Reason: "the new PIN must differ from the current one"}
	}
	// The TPM's NV_ChangeAuth is the commit point. A card whose record must
	// then lose "PIN must change" is written once first, unchanged: a state
	// directory that refuses writes refuses the change before a try is spent.
	if r.MustChange {
		if err := m.st.save(r); err != nil {
			return fmt.Errorf("PIN not changed: %w", err)
		}
	}
	oldAuth, newAuth := r.authValue("pin", oldPIN), r.authValue("pin", newPIN)
	defer wipe(oldAuth)
	err = m.changeAuth(tpm2.TPMHandle(r.PINIndex), r.PINName, newAuth, m.pinBranches(r), func(h tpm2.TPMHandle) error {
		if err := m.secretStep(h, tpm2.TPMHandle(r.PINIndex), r.PINName, oldAuth); err != nil {
			return m.secretError(r, pinProof, err)
		}
		return m.authorize(h, r.Approval, approvedChange(r.PINName), refPINChange, r.Approval.PINSig)
	})
	if err != nil {
		wipe(newAuth)
		return err
	}
	if l := m.logins[serial]; l != nil {
		// Keep the login: its proof now needs the new PIN.
		if l.close != nil {
			_ = l.close()
		}
		wipe(l.auth)
		l.auth, l.sess, l.close = newAuth, nil, nil
		if m.sig.armedFor == serial {
			m.sig.armedFor, m.sig.dirty = "", true
		}
	} else {
		wipe(newAuth)
	}
	if r.MustChange {
		c := r.clone()
		c.MustChange = false
		if err := m.saveRecord(c); err != nil {
			m.cacheRecord(c) // the PIN did change: this service knows it
			return &NotRecordedError{
				Done:   "the PIN was changed: use the new PIN",
				Undone: "the card's record still says the PIN must change, so after the service restarts the card asks for another PIN change",
				Err:    err,
			}
		}
	}
	return nil
}

// ChangePUK sets a new PUK after proving the old one.
func (m *Manager) ChangePUK(serial string, oldPUK, newPUK secret.Secret) error {
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	if r.NoPUK {
		return ErrNoPUK
	}
	if err := (PINPolicy{MinLength: 8, MaxLength: MaxPINLength}).Check(newPUK); err != nil {
		return fmt.Errorf("PUK: %w", err)
	}
	oldAuth, newAuth := r.authValue("puk", oldPUK), r.authValue("puk", newPUK)
	defer wipe(oldAuth)
	defer wipe(newAuth)
	return m.changeAuth(tpm2.TPMHandle(r.PUKIndex), r.PUKName, newAuth, pukBranches(approvalName(r)), func(h tpm2.TPMHandle) error {
		if err := m.secretStep(h, tpm2.TPMHandle(r.PUKIndex), r.PUKName, oldAuth); err != nil {
			return m.secretError(r, pukProof, err)
		}
		return m.authorize(h, r.Approval, approvedChange(r.PUKName), refPUKChange, r.Approval.PUKSig)
	})
}

// CheckPUK proves the PUK to the TPM and changes nothing: a PolicySecret
// on the PUK index in a policy session that then authorizes nothing. The
// TPM counts a wrong PUK as it counts a wrong PIN (a *PINError with the
// tries left, ErrPUKLocked at the limit); a right one clears the PUK's
// count, as a PIN login clears the PIN's. It is the SO login of PKCS#11.
func (m *Manager) CheckPUK(serial string, puk secret.Secret) error {
	auth, err := m.deriveUnlocked(serial, "puk", puk)
	if err != nil {
		return err
	}
	defer wipe(auth)
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	if r.NoPUK {
		return ErrNoPUK
	}
	s, closer, err := m.policySession()
	if err != nil {
		return busy(err)
	}
	defer closer()
	return m.secretError(r, pukProof, m.secretStep(s.Handle(), tpm2.TPMHandle(r.PUKIndex), r.PUKName, auth))
}

// Unblock sets a new PIN and resets the PIN counter with the PUK. The card
// then carries "PIN must change", as after an administrator's reset.
func (m *Manager) Unblock(serial string, puk, newPIN secret.Secret) error {
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.unlock()
	if r.NoPUK {
		return fmt.Errorf("%w: ask the administrator for an unblock with the admin key", ErrNoPUK)
	}
	if err := r.Policy.Check(newPIN); err != nil {
		return err
	}
	undo, err := m.beginUnblock(r)
	if err != nil {
		return err
	}
	pukAuth, newAuth := r.authValue("puk", puk), r.authValue("pin", newPIN)
	defer wipe(pukAuth)
	defer wipe(newAuth)
	// New PIN first, counter second: if the second step is cut short the
	// card is still locked and the same unblock can simply be repeated.
	err = m.changeAuth(tpm2.TPMHandle(r.PINIndex), r.PINName, newAuth, m.pinBranches(r), func(h tpm2.TPMHandle) error {
		return m.secretError(r, pukProof, m.secretStep(h, tpm2.TPMHandle(r.PUKIndex), r.PUKName, pukAuth))
	})
	if err != nil {
		if !errors.Is(err, ErrTPMUnreachable) { // else the new PIN may be set
			undo()
		}
		return err
	}
	if err := m.resetPIN(r, pukAuth, r.PINName); err != nil {
		return err
	}
	return m.unblocked(serial, r)
}

// beginUnblock records "PIN must change" before an unblock sets the new
// PIN, so that the record is written before the TPM changes anything: a
// state directory that refuses the write refuses the unblock, with the PUK
// (or the administrator's response) not yet used. undo puts the record
// back when the TPM then refuses the new PIN; once the new PIN is set the
// mark stays, whatever happens to the counter reset.
func (m *Manager) beginUnblock(r *record) (undo func(), err error) {
	if r.MustChange {
		return func() {}, nil
	}
	c := r.clone()
	c.MustChange = true
	if err := m.saveRecord(c); err != nil {
		return nil, fmt.Errorf("card not unblocked: %w", err)
	}
	return func() {
		// On failure the card asks for a PIN change it did not need: the
		// safe side.
		_ = m.saveRecord(r)
	}, nil
}

// unblocked ends the card's logins after an unblock; beginUnblock has
// recorded that the new PIN must be changed before the card signs.
func (m *Manager) unblocked(serial string, _ *record) error {
	m.logoutLocked(serial)
	return nil
}

// changeAuth runs NV_ChangeAuth on an index in a salted policy session
// whose branch steps builds after PolicyCommandCode(NV_ChangeAuth); the new
// authValue crosses the bus encrypted by a second, salted session.
func (m *Manager) changeAuth(h tpm2.TPMHandle, name, newAuth []byte, branches [][]byte, steps func(tpm2.TPMHandle) error) error {
	s, closer, err := m.policySession()
	if err != nil {
		return busy(err)
	}
	defer closer()
	return m.changeAuthIn(s, h, name, newAuth, branches, steps)
}

// changeAuthIn is changeAuth in a policy session the caller owns.
func (m *Manager) changeAuthIn(s tpm2.Session, h tpm2.TPMHandle, name, newAuth []byte, branches [][]byte, steps func(tpm2.TPMHandle) error) error {
	if _, err := (tpm2.PolicyCommandCode{PolicySession: s.Handle(), Code: tpm2.TPMCCNVChangeAuth}).Execute(m.tpm); err != nil {
		return busy(err)
	}
	if err := steps(s.Handle()); err != nil {
		return err
	}
	if _, err := (tpm2.PolicyOr{PolicySession: s.Handle(), PHashList: digestList(branches)}).Execute(m.tpm); err != nil {
		return fmt.Errorf("policy: %w", busy(err))
	}
	enc, encClose, err := m.saltedHMAC(nil, tpm2.AESEncryption(128, tpm2.EncryptIn))
	if err != nil {
		return busy(err)
	}
	defer encClose()
	if err := nvChangeAuth(m.tpm, h, name, newAuth, s, enc); err != nil {
		return fmt.Errorf("changing NV index %#x auth: %w", h, busy(err))
	}
	return nil
}
