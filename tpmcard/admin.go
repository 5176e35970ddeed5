package tpmcard

import (
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

// challenge is a pending administrator's unblock: a policy session whose
// nonce the administrator signs, saved out of the TPM's session slots.
type challenge struct {
	c        *adminkey.Challenge
	sess     tpm2.Session // the session object: it tracks the nonces
	context  tpm2.TPMSContext
	deadline time.Time
}

// AdminChallenge opens an unblock challenge for a card with an admin key.
// The TPM keeps the policy session (saved, so it holds no session slot)
// until the response arrives or validity passes; a new challenge for the
// same card replaces the old one.
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
	defer m.mu.Unlock()
	if r.AdminKey == nil {
		return nil, ErrNoAdminKey
	}
	m.dropChallenge(serial)
	for other, ch := range m.challenges {
		if time.Now().After(ch.deadline) {
			m.dropChallenge(other) // expired: free its TPM session
		}
	}
	s, closer, err := m.policySession()
	if err != nil {
		return nil, busy(err)
	}
	saved, err := tpm2.ContextSave{SaveHandle: s.Handle()}.Execute(m.tpm)
	if err != nil {
		closer()
		return nil, busy(err)
	}
	c := &adminkey.Challenge{Op: adminkey.Unblock, Serial: serial, Nonce: s.NonceTPM().Buffer, Validity: validity}
	if m.challenges == nil {
		m.challenges = map[string]*challenge{}
	}
	m.challenges[serial] = &challenge{c: c, sess: s, context: saved.Context, deadline: time.Now().Add(validity)}
	return c, nil
}

// dropChallenge forgets a pending challenge and flushes its session.
func (m *Manager) dropChallenge(serial string) {
	ch := m.challenges[serial]
	if ch == nil {
		return
	}
	delete(m.challenges, serial)
	// A saved session is flushed by its handle, loaded or not.
	flush(m.tpm, ch.sess.Handle())
}

// AdminUnblock answers a pending challenge: the TPM checks the
// administrator's signature (PolicySigned), then the card gets newPIN,
// marked "must change", and its counter is reset through the ticket the
// signature earned (PolicyTicket). The challenge is used up either way.
func (m *Manager) AdminUnblock(serial string, response string, newPIN secret.Secret) error {
	sig, err := adminkey.ParseResponse(response)
	if err != nil {
		return err
	}
	r, err := m.lockCard(serial)
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
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
	defer m.dropChallenge(serial)
	if time.Now().After(ch.deadline) {
		return ErrChallengeExpired
	}
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](r.AdminKey)
	if err != nil {
		return fmt.Errorf("reading the card's admin key: %w", err)
	}
	if _, err := (tpm2.ContextLoad{Context: ch.context}).Execute(m.tpm); err != nil {
		return fmt.Errorf("restoring the challenge's session: %w", busy(err))
	}
	admin, err := tpm2.LoadExternal{InPublic: tpm2.New2B(*pub), Hierarchy: tpm2.TPMRHOwner}.Execute(m.tpm)
	if err != nil {
		return fmt.Errorf("loading the admin key: %w", busy(err))
	}
	defer flush(m.tpm, admin.ObjectHandle)
	ref := adminkey.PolicyRef(adminkey.Unblock, serial)
	newAuth := r.authValue("pin", newPIN)
	defer wipe(newAuth)

	// One signature, two commands: PolicySigned in the challenge's session
	// authorizes the new PIN and returns a ticket, PolicyTicket in a
	// second session authorizes the counter reset.
	var signed *tpm2.PolicySignedResponse
	err = m.changeAuthIn(ch.sess, tpm2.TPMHandle(r.PINIndex), r.PINName, newAuth, m.pinBranches(r), func(h tpm2.TPMHandle) error {
		signed, err = tpm2.PolicySigned{
			AuthObject:    tpm2.NamedHandle{Handle: admin.ObjectHandle, Name: admin.Name},
			PolicySession: h,
			NonceTPM:      tpm2.TPM2BNonce{Buffer: ch.c.Nonce},
			PolicyRef:     tpm2.TPM2BNonce{Buffer: ref},
			Expiration:    ch.c.Expiration(),
			Auth: tpm2.TPMTSignature{
				SigAlg: tpm2.TPMAlgECDSA,
				Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
					Hash:       tpm2.TPMAlgSHA256,
					SignatureR: tpm2.TPM2BECCParameter{Buffer: sig[:32]},
					SignatureS: tpm2.TPM2BECCParameter{Buffer: sig[32:]},
				}),
			},
		}.Execute(m.tpm)
		switch {
		case isTPM(err, tpm2.TPMRCExpired):
			return ErrChallengeExpired
		case isTPM(err, tpm2.TPMRCSignature):
			return ErrBadResponse
		}
		return err
	})
	if err != nil {
		return err
	}
	err = m.policyWrite(tpm2.TPMHandle(r.PINIndex), r.PINName, pinData{0, r.PINLimit}, m.pinBranches(r),
		func(h tpm2.TPMHandle) error {
			if _, err := (tpm2.PolicyCommandCode{PolicySession: h, Code: tpm2.TPMCCNVWrite}).Execute(m.tpm); err != nil {
				return err
			}
			return policyTicket(m.tpm, h, signed, ref, admin.Name.Buffer)
		})
	if err != nil {
		return fmt.Errorf("resetting the PIN counter (the new PIN is set; a new challenge finishes the unblock): %w", busy(err))
	}
	return m.unblocked(serial, r)
}
